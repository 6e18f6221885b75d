import numpy as np
import onnx
import onnxruntime as ort
import pytest

import edgeslim as es
from edgeslim.compress import PRESETS
from edgeslim.compress.quantize import StaticSettings, quantize_static
from edgeslim.errors import ConfigError
from edgeslim.export import onnx_outputs
from edgeslim.train import predict
from tests.conftest import QUICK


@pytest.fixture(scope="module")
def fp32(trained_small_cnn, digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32")
    candidate = es.export(trained_small_cnn, digits, out)
    return candidate, es.measure(candidate, digits, QUICK)


@pytest.fixture(scope="module")
def quantized(trained_small_cnn, digits, tmp_path_factory):
    kinds = ["static-int8", "dynamic-int8", "fp16", "weight-int8", "weight-int4"]
    candidates = es.compress(
        trained_small_cnn,
        digits,
        [[{"quantize": {"kind": k}}] for k in kinds],
        names=kinds,
        out_dir=tmp_path_factory.mktemp("q"),
        show_progress=False,
    )
    return {k: (c, es.measure(c, digits, QUICK)) for k, c in zip(kinds, candidates, strict=True)}


@pytest.mark.slow
def test_static_int8_keeps_accuracy_and_is_3x_smaller(fp32, quantized):
    candidate, record = quantized["static-int8"]
    _, dense = fp32
    assert record["accuracy"] >= dense["accuracy"] - 0.01
    assert record["storage_kb"] * 3 <= dense["storage_kb"]
    ops = {n.op_type for n in onnx.load(str(candidate.artifact)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    step = candidate.step("quantize")
    assert step["kind"] == "static-int8" and step["result"]["top1_agreement"] >= 0.97


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dynamic-int8", "fp16", "weight-int8", "weight-int4"])
def test_other_forms_run_are_smaller_and_agree(kind, fp32, quantized):
    candidate, record = quantized[kind]
    _, dense = fp32
    assert record["storage_kb"] < dense["storage_kb"]
    assert record["accuracy"] >= dense["accuracy"] - 0.03
    assert candidate.step("quantize")["result"]["top1_agreement"] >= 0.95
    ort.InferenceSession(str(candidate.artifact))  # loads in ONNX Runtime
    # every weight is still counted, however it is stored (integer ops read theirs directly)
    assert record["params"] == pytest.approx(dense["params"], rel=0.01)


@pytest.mark.slow
def test_weight_only_int4_stores_below_one_byte_per_weight(quantized, fp32):
    candidate, record = quantized["weight-int4"]
    assert record["storage_kb"] * 1024 < record["params"]  # < 1 byte per parameter
    assert set(candidate.step("quantize")["result"]["layers"]) == set(
        fp32[1]["macs_by_layer"]
    )  # every conv and linear layer is covered


def calibrated(trained_small_cnn, digits, tmp_path, methods: list[str]) -> dict[str, list[float]]:
    """Each method's activation scales, quantizing through a recipe on 1024 samples."""
    recipes = [
        [
            {
                "quantize": {
                    "kind": "static-int8",
                    "calibration_method": m,
                    "calibration_samples": 1024,
                }
            }
        ]
        for m in methods
    ]
    candidates = es.compress(
        trained_small_cnn, digits, recipes, names=methods, out_dir=tmp_path, show_progress=False
    )
    scales = {}
    for method, candidate in zip(methods, candidates, strict=True):
        assert candidate.step("quantize")["result"]["top1_agreement"] >= 0.9, method
        scales[method] = activation_scales(candidate.artifact)
    return scales


def test_calibration_methods(trained_small_cnn, digits, tmp_path):
    """The method a recipe names reaches the quantizer and calibrates its own ranges: on the
    same 1024 samples, percentile (the 99.999th of each histogram) leaves out the few largest
    activations min-max spans, so no hidden scale is larger and some are clearly smaller
    (measured: up to 12% smaller); both keep the answers."""
    scales = calibrated(trained_small_cnn, digits, tmp_path, ["minmax", "percentile"])
    assert len(scales["minmax"]) == len(scales["percentile"]) >= 4
    pairs = list(zip(scales["percentile"][1:], scales["minmax"][1:], strict=True))
    assert all(p <= m * 1.0001 for p, m in pairs), scales
    assert any(p < 0.97 * m for p, m in pairs), scales


@pytest.mark.xfail(
    strict=True,
    reason="ONNX Runtime's quantize_static builds its entropy calibrator with 128 histogram bins "
    "and 128 quantized bins, and passes no setting to change them: the KL search then has one "
    "candidate, the whole range, so 'entropy' gives min-max's scales (edgeslim bug to fix: "
    "calibrate with a wider histogram; this test then passes and its xfail must go)",
)
def test_entropy_calibration_is_not_min_max(trained_small_cnn, digits, tmp_path):
    scales = calibrated(trained_small_cnn, digits, tmp_path, ["minmax", "entropy"])
    assert scales["entropy"] != pytest.approx(scales["minmax"], rel=1e-3), scales


def activation_scales(path) -> list[float]:
    """The scale of every per-tensor QuantizeLinear (activations), in graph order."""
    model = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    return [
        float(inits[n.input[1]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].size == 1
    ]


def test_percentile_calibration_clips_an_outlier_that_minmax_spans(fp32, digits, tmp_path):
    """One pixel at 300 (the rest within a few units) in 1258 samples, a count that is not a
    multiple of the calibration batch (ORT's histogram calibrators failed on the short last
    batch): min-max stretches the hidden layers' ranges to the outlier, the 99.999th
    percentile of each histogram leaves most of it out."""
    candidate, _ = fp32
    x = digits.train.x.copy()
    x[0, 0, 0, 0] = 300.0
    scales = {}
    for method in ("minmax", "percentile", "entropy"):
        out = tmp_path / f"{method}.onnx"
        settings = StaticSettings(calibration_method=method, calibration_samples=len(x))
        quantize_static(candidate.artifact, out, x, settings)
        scales[method] = activation_scales(out)
    hidden = slice(1, 4)  # the convolutions' inputs after the first
    pairs = zip(scales["percentile"][hidden], scales["minmax"][hidden], strict=True)
    assert all(p < 0.9 * m for p, m in pairs), scales
    assert scales["minmax"][0] > 1.0  # the input's range spans the outlier (normally ~0.01)


def test_bad_calibration_sets(fp32, tmp_path):
    candidate, _ = fp32
    with pytest.raises(ConfigError, match="calibration set is empty"):
        quantize_static(
            candidate.artifact, tmp_path / "q.onnx", np.zeros((0, 1, 8, 8), "f4"), StaticSettings()
        )
    with pytest.raises(ConfigError, match=r"calibration samples of shape \(1, 28, 28\)"):
        quantize_static(
            candidate.artifact,
            tmp_path / "q.onnx",
            np.zeros((4, 1, 28, 28), "f4"),
            StaticSettings(),
        )


@pytest.mark.slow
@pytest.mark.parametrize("reduce_range", ["auto", False])
def test_qat_recovers_accuracy_where_static_ptq_loses_it(
    reduce_range, trained_small_cnn, digits, tmp_path, fp32
):
    """With full-range weights on a CPU without VNNI, static PTQ saturates (about -5 points on
    digits); QAT under the same setting must do at least as well. Where PTQ loses nothing,
    QAT must stay within a point of FP32."""
    ptq, qat = es.compress(
        trained_small_cnn,
        digits,
        [
            [{"quantize": {"kind": "static-int8", "reduce_range": reduce_range}}],
            [{"qat": {"reduce_range": reduce_range}}],
        ],
        names=["ptq", "qat"],
        out_dir=tmp_path,
        show_progress=False,
    )
    ptq_acc = es.measure(ptq, digits, QUICK)["accuracy"]
    record = es.measure(qat, digits, QUICK)
    fp32_acc = fp32[1]["accuracy"]
    if ptq_acc < fp32_acc - 0.01:
        assert record["accuracy"] >= ptq_acc
    else:
        assert record["accuracy"] >= fp32_acc - 0.01
    graph = onnx.load(str(qat.artifact)).graph
    assert any(n.op_type == "DequantizeLinear" for n in graph.node)
    int8 = [
        t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) > 1
    ]
    assert len(int8) == 4  # every conv/linear weight stored as INT8
    assert record["storage_kb"] * 3 <= fp32[1]["storage_kb"]


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_runs_end_to_end(preset, trained_small_cnn, digits, tmp_path):
    (candidate,) = es.compress(
        trained_small_cnn, digits, [preset], out_dir=tmp_path, show_progress=False
    )
    assert candidate.name == preset and candidate.artifact == tmp_path / f"{preset}.onnx"
    session = ort.InferenceSession(str(candidate.artifact))
    logits = session.run(None, {"input": digits.test.x[:256]})[0]
    reference = predict(trained_small_cnn.model, digits.test.x[:256]).argmax(1)
    agreement = float((logits.argmax(1) == reference).mean())
    assert agreement >= 0.9, agreement
    assert list(tmp_path.iterdir()) == [candidate.artifact]  # no stray intermediates


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        (
            [
                {"quantize": {"kind": "static-int8"}},
                {"prune": {"kind": "unstructured", "sparsity": 0.5}},
            ],
            "already works on the exported ONNX file",
        ),
        ([{"qat": {}}, {"quantize": {"kind": "static-int8"}}], "would quantize twice"),
        ([{"qat": {}}, {"prune": {"kind": "nm"}}], "would undo its quantization"),
        ([{"qat": {"bits": 4, "activations": True}}], "weight-only INT4"),
        ([{"quantize": {"kind": "static-int8", "calibration_method": "kl"}}], "calibration_method"),
        ([{"quantize": {"kind": "int3"}}], "quantize.kind: expected one of"),
        (
            [{"quantize": {"kind": "static-int8", "calibration_samples": 0}}],
            "greater than or equal",
        ),
    ],
)
def test_bad_quantization_recipes(recipe, message, trained_small_cnn, digits):
    with pytest.raises(ConfigError, match=message):
        es.compress(trained_small_cnn, digits, [recipe], show_progress=False)


def test_qat_export_stores_every_weight_as_int8_in_a_residual_net(digits, tmp_path):
    base = es.Candidate("resnet8", model=es.models.build("resnet8", digits.spec))
    (qat,) = es.compress(
        base, digits, [[{"qat": {"epochs": 0}}]], out_dir=tmp_path, show_progress=False
    )
    graph = onnx.load(str(qat.artifact)).graph
    weights = [t for t in graph.initializer if len(t.dims) > 1]
    assert len(weights) == 10  # 9 convolutions (two 1x1 shortcuts) and the classifier
    assert all(t.data_type == onnx.TensorProto.INT8 for t in weights)
    assert not any(
        n.op_type == "QuantizeLinear" and n.input[0] in {t.name for t in weights}
        for n in graph.node
    )


@pytest.mark.slow
def test_int4_qat_recovers_what_int4_rounding_loses_and_stores_it_exactly(digits, tmp_path):
    """A quarter-width small CNN loses about 5 points when its weights are rounded to INT4
    after training; three epochs of weight-only INT4 QAT win them back, in a file of the same
    bytes whose outputs are the trained model's."""
    base = es.train(
        es.models.build("small-cnn", digits.spec, width=0.25),
        digits,
        epochs=15,
        show_progress=False,
    )
    fp32 = es.export(base, digits, tmp_path)
    ptq, qat = es.compress(
        base,
        digits,
        [[{"quantize": {"kind": "weight-int4"}}], [{"qat": {"bits": 4, "epochs": 3}}]],
        names=["ptq", "qat"],
        out_dir=tmp_path,
        show_progress=False,
    )
    # read on ORT directly: es.measure refuses the INT4-rounded file (too far from PyTorch)
    fp32_acc, ptq_acc, qat_acc = (
        float((onnx_outputs(c.artifact, digits.test.x).argmax(1) == digits.test.y).mean())
        for c in (fp32, ptq, qat)
    )
    assert ptq_acc < fp32_acc - 0.02, (fp32_acc, ptq_acc)  # rounding alone loses
    assert qat_acc >= ptq_acc + 0.02 and qat_acc >= fp32_acc - 0.01, (fp32_acc, ptq_acc, qat_acc)
    graph = onnx.load(str(qat.artifact)).graph
    weights = [t for t in graph.initializer if len(t.dims) > 1]
    assert len(weights) == 4 and all(t.data_type == onnx.TensorProto.INT4 for t in weights)
    assert "QuantizeLinear" not in {n.op_type for n in graph.node}  # activations stay float
    assert qat.artifact.stat().st_size == ptq.artifact.stat().st_size  # the same INT4 bytes
    dense = [t for t in onnx.load(str(fp32.artifact)).graph.initializer if len(t.dims) > 1]
    assert sum(len(t.raw_data) for t in weights) * 7 < sum(len(t.raw_data) for t in dense)
    x = digits.test.x[:256]
    got = ort.InferenceSession(str(qat.artifact)).run(None, {"input": x})[0]
    assert np.abs(got - predict(qat.model, x)).max() < 1e-3  # the runtime computes the trained


def test_weight_only_int8_qat_stores_the_trained_weights(trained_small_cnn, digits, tmp_path):
    (qat,) = es.compress(
        trained_small_cnn,
        digits,
        [[{"qat": {"activations": False, "epochs": 1}}]],
        out_dir=tmp_path,
        show_progress=False,
    )
    graph = onnx.load(str(qat.artifact)).graph
    weights = [t for t in graph.initializer if len(t.dims) > 1]
    assert len(weights) == 4 and all(t.data_type == onnx.TensorProto.INT8 for t in weights)
    assert "QuantizeLinear" not in {n.op_type for n in graph.node}
    x = digits.test.x[:256]
    got = ort.InferenceSession(str(qat.artifact)).run(None, {"input": x})[0]
    assert np.abs(got - predict(qat.model, x)).max() < 1e-3


def test_qat_trains_on_shifted_and_flipped_images_when_asked(trained_small_cnn, digits):
    recipes = [
        [{"qat": {"bits": 4, "epochs": 1}}],
        [{"qat": {"bits": 4, "epochs": 1, "shift": 1, "flip": True}}],
    ]
    plain, moved = es.compress(trained_small_cnn, digits, recipes, show_progress=False)
    x = digits.test.x[:256]
    # same seed, same start: only the augmented images can make the trained weights differ
    assert np.abs(predict(plain.model, x) - predict(moved.model, x)).max() > 1e-3
