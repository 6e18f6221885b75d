"""Cross-layer equalisation and bias correction: the FP32 function is kept, channel ranges even
out, per-tensor INT8 gets closer to FP32, and quantization's output shift shrinks."""

import numpy as np
import onnx
import pytest
import torch

import edgeslim as es
from edgeslim.compress.equalize import equalize
from edgeslim.compress.quantize import StaticSettings, calibration_set, quantize_static
from edgeslim.export import onnx_outputs
from tests.measure.helpers import export, random_data


def uneven_model() -> torch.nn.Module:
    """conv -> relu -> maxpool -> conv -> relu -> flatten -> linear, the first conv's channels
    scaled from 0.01 to 100: one scale per tensor cannot cover them all."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 3),
    )
    with torch.no_grad():
        spread = torch.logspace(-2, 2, 8)
        model[0].weight.mul_(spread.view(-1, 1, 1, 1))
        model[0].bias.mul_(spread)
        model[3].weight.div_(spread.view(1, -1, 1, 1))  # the same function, uneven ranges
    return model.eval()


def test_equalisation_keeps_the_function_and_evens_the_ranges(tmp_path):
    data = random_data((1, 8, 8), n=96)
    path = export(uneven_model(), data, tmp_path / "uneven.onnx")
    model = onnx.load(str(path))
    info = equalize(model)
    assert len(info["pairs"]) == 1  # conv -> relu -> maxpool -> conv; the flatten changes length
    assert info["channel_range_spread"]["before"] > 1000
    assert info["channel_range_spread"]["after"] < 10
    onnx.save(model, str(tmp_path / "equalized.onnx"))
    before, after = (
        onnx_outputs(path, data.test.x),
        onnx_outputs(tmp_path / "equalized.onnx", data.test.x),
    )
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * np.abs(before).max())

    def error(**options) -> float:
        out = tmp_path / f"q{len(options)}.onnx"
        settings = StaticSettings(per_channel=False, reduce_range=False, **options)
        quantize_static(path, out, calibration_set(data, 64, 0), settings)
        return float(np.abs(onnx_outputs(out, data.test.x) - before).mean())

    assert error(equalize=True) < error() / 3  # per tensor: equalised is much closer to FP32


def test_cle_finds_depthwise_pairs_and_bias_correction_shrinks_the_shift(digits, tmp_path):
    base = es.train(
        es.models.build("mobilenet-v1", digits.spec, width=0.25),
        digits,
        epochs=2,
        show_progress=False,
    )
    recipe = [
        {
            "quantize": {
                "kind": "static-int8",
                "per_channel": False,
                "equalize": True,
                "bias_correction": True,
            }
        }
    ]
    (c,) = es.compress(base, digits, [recipe], out_dir=tmp_path, show_progress=False)
    result = c.step("quantize")["result"]
    assert len(result["equalization"]["pairs"]) >= 26  # 13 depthwise + 13 pointwise convs
    spread = result["equalization"]["channel_range_spread"]
    assert spread["after"] < spread["before"]
    shift = result["bias_correction"]["mean_shift"]
    assert result["bias_correction"]["layers"] >= 27
    assert shift["after"] < shift["before"] / 2
    assert result["top1_agreement"] >= 0.9


@pytest.mark.parametrize("options", [{"equalize": True}, {"bias_correction": True}])
def test_options_leave_per_channel_int8_as_accurate(trained_small_cnn, digits, options, tmp_path):
    plain, refined = es.compress(
        trained_small_cnn,
        digits,
        [
            [{"quantize": {"kind": "static-int8"}}],
            [{"quantize": {"kind": "static-int8", **options}}],
        ],
        names=["plain", "refined"],
        out_dir=tmp_path,
        show_progress=False,
    )
    accuracy = {
        c.name: float((onnx_outputs(c.artifact, digits.test.x).argmax(1) == digits.test.y).mean())
        for c in (plain, refined)
    }
    assert accuracy["refined"] >= accuracy["plain"] - 0.01


def test_adaround_rounds_each_weight_up_or_down_on_the_same_grid(
    trained_small_cnn, digits, tmp_path
):
    from onnx import numpy_helper

    plain, learned = es.compress(
        trained_small_cnn,
        digits,
        [
            [{"quantize": {"kind": "static-int8", "per_channel": False}}],
            [
                {
                    "quantize": {
                        "kind": "static-int8",
                        "per_channel": False,
                        "adaround": True,
                        "adaround_iterations": 200,
                    }
                }
            ],
        ],
        names=["plain", "learned"],
        out_dir=tmp_path,
        show_progress=False,
    )
    result = learned.step("quantize")["result"]["adaround"]
    assert result["layers"] == 4
    assert result["output_mse"]["adaptive"] < result["output_mse"]["nearest"] * 0.8

    def weights(candidate) -> dict[str, np.ndarray]:
        model = onnx.load(str(candidate.artifact))
        return {
            t.name: numpy_helper.to_array(t)
            for t in model.graph.initializer
            if t.data_type == onnx.TensorProto.INT8 and t.name.endswith("weight_quantized")
        }

    a, b = weights(plain), weights(learned)
    assert set(a) == set(b) and len(a) == 4
    moved = 0
    for name in a:
        difference = np.abs(a[name].astype(int) - b[name].astype(int))
        assert difference.max() <= 1  # up or down from nearest, never further
        moved += int(difference.sum())
    assert moved > 0  # some weights took the other rounding
    accuracy = {
        c.name: float((onnx_outputs(c.artifact, digits.test.x).argmax(1) == digits.test.y).mean())
        for c in (plain, learned)
    }
    assert accuracy["learned"] >= accuracy["plain"] - 0.01
