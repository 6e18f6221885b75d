import numpy as np
import torch

import edgeslim as es
from edgeslim.graph import summarize
from edgeslim.measure.sparsity import weight_sparsity
from tests.measure.helpers import conv_linear, export, matmul_onnx, random_data


def test_weight_sparsity_overall_and_per_layer(tmp_path):
    model = conv_linear()
    with torch.no_grad():
        model[0].weight[0] = 0  # 9 of the conv's 18 weights
        model[2].weight[:, :8] = 0  # 24 of the linear's 96 weights
    record = weight_sparsity(summarize(export(model, random_data((1, 4, 4)), tmp_path / "m.onnx")))
    assert record["weight_sparsity"] == (9 + 24) / (18 + 96)
    assert sorted(record["weight_sparsity_by_layer"].values()) == [0.25, 0.5]


def test_activation_sparsity_of_a_known_zero_pattern(tmp_path, quick):
    """Hidden units 0 and 1 always get -1 before the ReLU: exactly half the layer input is 0."""
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(16, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3)
    )
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([-1.0, -1.0, 1.0, 2.0]))
    data = random_data((1, 4, 4))
    record = es.measure(export(model, data, tmp_path / "m.onnx"), data, quick)
    assert record["activation_sparsity"] == 0.5
    assert list(record["activation_sparsity_by_layer"].values()) == [0.5]


def test_dense_random_weights_have_no_zeros(tmp_path):
    weight = np.random.default_rng(0).normal(size=(6, 4))
    record = weight_sparsity(summarize(matmul_onnx(tmp_path / "mm.onnx", weight)))
    assert record["weight_sparsity"] == 0.0
