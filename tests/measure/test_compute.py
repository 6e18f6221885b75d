import numpy as np

from edgeslim.graph import summarize
from edgeslim.measure.compute import compute
from tests.measure.helpers import conv_linear, export, matmul_onnx, random_data


def test_macs_and_params_match_hand_counts(tmp_path):
    path = export(conv_linear(), random_data((1, 4, 4)), tmp_path / "m.onnx")
    record = compute(summarize(path))
    assert record["macs"] == 384
    assert sorted(record["macs_by_layer"].values()) == [96, 288]
    assert record["params"] == 119
    assert record["nonzero_params"] == 119


def test_zero_weights_lower_nonzero_params_only(tmp_path):
    weight = np.ones((8, 5))
    weight[:4] = 0  # 20 of 40 weights are zero
    record = compute(summarize(matmul_onnx(tmp_path / "mm.onnx", weight)))
    assert (record["params"], record["nonzero_params"], record["macs"]) == (40, 20, 40)
