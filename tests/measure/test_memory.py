import torch

import edgeslim as es
from edgeslim.measure.graph import summarize
from edgeslim.measure.memory import activation_memory
from tests.measure.helpers import export, random_data, relu_chain_onnx


def test_activation_memory_is_the_peak_of_live_tensors(tmp_path):
    record = activation_memory(summarize(relu_chain_onnx(tmp_path / "chain.onnx")))
    assert record["activation_memory_kb"] == 192 / 1024


def test_peak_memory_grows_with_the_model(tmp_path, quick):
    data = random_data((64,), n=30)
    small = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    big = torch.nn.Sequential(
        torch.nn.Linear(64, 2048),
        torch.nn.ReLU(),
        torch.nn.Linear(2048, 2048),
        torch.nn.ReLU(),
        torch.nn.Linear(2048, 3),
    )  # about 17 MB of weights
    peaks = {
        name: es.measure(export(m, data, tmp_path / f"{name}.onnx"), data, quick)["peak_memory_mb"]
        for name, m in (("small", small), ("big", big))
    }
    assert peaks["big"] > peaks["small"] + 10
