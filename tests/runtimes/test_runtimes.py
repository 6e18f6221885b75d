"""Every runtime measures the same candidates the same way: same accuracy as ONNX Runtime,
every metric present, a torch-free worker, INT8 made by the runtime's own quantizer, and a clear
error where a runtime is missing or cannot express a step."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

import edgeslim as es
from edgeslim.errors import ConfigError, ExportError, MissingRuntimeError
from edgeslim.runtimes import RUNTIMES, runtime
from tests.ci import missing
from tests.conftest import QUICK


def require(name: str) -> None:
    try:
        RUNTIMES[name].check_available()
    except MissingRuntimeError:
        missing(f"{name} is not installed (pip install 'edgeslim[{RUNTIMES[name].extra}]')")


@pytest.fixture(scope="module")
def tiny_mlp(digits):
    """An untrained 17k-parameter MLP and its figures on ONNX Runtime: converting it takes
    seconds where the zoo's CNNs take a minute, so the fast tier visits every converting runtime
    (ExecuTorch's first import alone takes 20 s: it stays in the slow tier)."""
    model = es.models.build("mlp", digits.spec).eval()
    return model, es.measure(model, digits, QUICK)


@pytest.mark.parametrize("name", ["litert", "tflite-micro"])
def test_a_small_model_converts_and_measures_like_onnx_runtime(name, tiny_mlp, digits):
    require(name)
    model, onnx_record = tiny_mlp
    record = es.measure(model, digits, replace(QUICK, runtime=name))
    how = record["measured_with"]
    assert how["runtime"] == name and how["conversion"]["format"] == "tflite"
    assert how["torch_loaded_in_worker"] is False
    params = sum(p.numel() for p in model.parameters())
    assert record["params"] == params and record["storage_kb"] * 1024 >= 4 * params  # float32
    # the same weights give the same answers, but for a near tie or two in float rounding
    flips = abs(record["accuracy"] - onnx_record["accuracy"]) * how["accuracy_samples"]
    assert flips <= 2, (record["accuracy"], onnx_record["accuracy"])
    assert 0 < record["latency_p50_ms"] <= record["latency_p95_ms"]


@pytest.fixture(scope="module")
def candidates(trained_small_cnn, digits, tmp_path_factory):
    """The FP32 small CNN and its static INT8 form, each with its PyTorch model and ONNX file."""
    out = tmp_path_factory.mktemp("runtimes")
    fp32 = es.export(trained_small_cnn, digits, out)
    (int8,) = es.compress(
        fp32, digits, [[{"quantize": {"kind": "static-int8"}}]], out_dir=out, show_progress=False
    )
    return {"fp32": fp32, "int8": int8}


@pytest.fixture(scope="module")
def records(candidates, digits):
    """Each candidate measured on each installed runtime (ONNX Runtime always)."""
    measured = {}
    for name, engine in RUNTIMES.items():
        try:
            engine.check_available()
        except MissingRuntimeError:
            continue
        for form, candidate in candidates.items():
            measured[name, form] = es.measure(candidate, digits, replace(QUICK, runtime=name))
    return measured


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_every_runtime_measures_every_metric_like_onnx_runtime(name, records):
    require(name)
    reference = records["onnxruntime", "fp32"]
    for form in ("fp32", "int8"):
        record = records[name, form]
        assert "errors" not in record, record["errors"]
        assert abs(record["accuracy"] - records["onnxruntime", form]["accuracy"]) <= 0.01
        assert record["latency_p50_ms"] > 0 and record["throughput"] > 0
        not_everywhere = {"errors", "activation_sparsity", "activation_sparsity_by_layer"}
        expected = set(reference) - not_everywhere  # activations: ONNX files only
        assert expected <= set(record), expected - set(record)
        how = record["measured_with"]
        assert how["runtime"] == name and how["runtime_version"]
        assert how["torch_loaded_in_worker"] is RUNTIMES[name].worker_imports_torch
        agreement = record["agreement"]
        assert agreement["runtime"] == name and agreement["quantized"] == (form == "int8")
        assert agreement["top1_agreement"] >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_int8_by_the_runtimes_own_quantizer_is_at_least_3x_smaller(name, records):
    require(name)
    fp32, int8 = records[name, "fp32"], records[name, "int8"]
    assert fp32["storage_kb"] >= 3 * int8["storage_kb"], (fp32["storage_kb"], int8["storage_kb"])
    conversion = int8["measured_with"].get("conversion")
    if not RUNTIMES[name].reads_onnx:  # converted from PyTorch, quantized by its own tool
        assert conversion["quantize"]["kind"] == "static-int8"
        own = "XNNPACKQuantizer" if name == "executorch" else "ai-edge-quantizer"
        assert own in conversion["quantizer"]
        assert int8["measured_with"]["model_file"].endswith(RUNTIMES[name].formats)


@pytest.mark.slow
def test_tflite_micro_reports_the_smallest_arena_it_runs_in(records, candidates):
    require("tflite-micro")
    from edgeslim.runtimes.tflite_micro import ArenaTooSmall, interpreter

    for form in ("fp32", "int8"):
        record = records["tflite-micro", form]
        arena = round(record["tensor_arena_kb"] * 1024)
        model_file = record["measured_with"]["model_file"]
        runs = interpreter(model_file, arena)
        sample = np.zeros(runs.get_input_details(0)["shape"], runs.get_input_details(0)["dtype"])
        runs.set_input(sample, 0)
        runs.invoke()
        with pytest.raises(ArenaTooSmall):
            interpreter(model_file, arena - 1)
        assert record["measured_with"]["latency_caveat"].startswith("TFLite Micro's portable")
    # the INT8 model's activations are 8-bit: a much smaller arena than FP32's
    assert records["tflite-micro", "int8"]["tensor_arena_kb"] < (
        records["tflite-micro", "fp32"]["tensor_arena_kb"] / 2
    )
    assert "tensor_arena_kb" not in records["onnxruntime", "int8"]  # only where it is exact


@pytest.mark.slow
def test_executorch_reports_its_memory_plan_for_float_programs(records):
    """ExecuTorch plans every activation buffer ahead of time; for the float small CNN the plan
    equals edgeslim's graph estimate (no buffer shared between live tensors either way)."""
    require("executorch")
    fp32, int8 = records["executorch", "fp32"], records["executorch", "int8"]
    assert fp32["planned_memory_kb"] == pytest.approx(fp32["activation_memory_kb"], rel=0.25)
    assert "planned_memory_kb" not in int8  # a Q/DQ program's plan counts float copies
    assert "not reported" in int8["measured_with"]["conversion"]["planned_memory"]


def test_openvino_computes_in_fp32_not_bf16(small_cnn_onnx, digits):
    """Left to its defaults OpenVINO runs bf16 on CPUs that have it: outputs would differ from
    ONNX Runtime's by ~1e-2. In FP32 they agree to float rounding."""
    require("openvino")
    x = digits.test.x[:64]
    outputs = {}
    for name in ("onnxruntime", "openvino"):
        session = runtime(name).load(str(small_cnn_onnx), threads=1)
        outputs[name] = session.run(None, {session.input_name: x})[0]
    assert outputs["openvino"].shape == (64, digits.spec.num_classes)
    np.testing.assert_allclose(outputs["openvino"], outputs["onnxruntime"], atol=1e-4)


@pytest.mark.slow
def test_a_step_the_runtime_cannot_express_is_refused_before_any_work(candidates, digits):
    fp16 = candidates["fp32"].with_step({"quantize": {"kind": "fp16"}})
    dynamic = candidates["fp32"].with_step({"quantize": {"kind": "dynamic-int8"}})
    for name, candidate, step in (
        ("litert", fp16, "quantize fp16"),
        ("tflite-micro", dynamic, "quantize dynamic-int8"),
        ("tflite-micro", candidates["fp32"].with_step({"qat": {}}), "qat"),
    ):
        with pytest.raises(ConfigError, match=f"runtime '{name}' cannot express the step '{step}'"):
            RUNTIMES[name].check_recipe(candidate.recipe)


@pytest.mark.slow
def test_an_artifact_that_disagrees_with_pytorch_fails_with_the_figures(candidates, digits):
    import torch

    other = es.models.build("small-cnn", digits.spec)  # untrained: not what the file holds
    torch.manual_seed(1)
    wrong = candidates["fp32"].replace(model=other)
    with pytest.raises(ExportError, match=r"differ from PyTorch's by up to .*top1_agreement"):
        es.measure(wrong, digits, QUICK)


def test_a_runtime_that_is_not_installed_names_its_extra(small_cnn_onnx, digits, monkeypatch):
    absent = replace(RUNTIMES["openvino"], name="absent", package="edgeslim_absent_runtime")
    monkeypatch.setitem(RUNTIMES, "absent", absent)
    with pytest.raises(MissingRuntimeError, match=r'pip install "edgeslim\[openvino\]"'):
        es.measure(small_cnn_onnx, digits, replace(QUICK, runtime="absent"))


def test_a_converting_runtime_needs_the_pytorch_model(small_cnn_onnx, digits):
    require("litert")
    with pytest.raises(ConfigError, match="converts from the PyTorch model"):
        es.measure(small_cnn_onnx, digits, replace(QUICK, runtime="litert"))


@pytest.mark.slow
def test_an_unknown_runtime_is_a_config_error_everywhere(small_cnn_onnx):
    with pytest.raises(ConfigError, match="unknown runtime 'tflite'"):
        es.MeasureSettings(runtime="tflite")
    from edgeslim import config
    from tests.experiments import experiment_dict

    with pytest.raises(ConfigError, match=r"measure\.runtime"):
        config.parse(experiment_dict(measure={"runtime": "tflite"}))
    out = subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", "measure", small_cnn_onnx, "--runtime", "tflite"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and out.stderr.startswith("error: "), out.stderr
    assert "unknown runtime 'tflite'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", ["litert", "tflite-micro"])
def test_a_full_integer_model_is_timed_on_samples_quantized_before_the_clock(
    name, records, digits, monkeypatch
):
    """The timed call is the runtime's own set-invoke-get on an INT8 sample quantized once,
    as a device does it in C; numpy's quantization is never inside the timed loop."""
    require(name)
    import importlib

    from edgeslim.measure.latency import latency
    from edgeslim.measure.runtime import RuntimeContext

    module = importlib.import_module(RUNTIMES[name].module)
    quantized = []
    original = module.to_input

    def counting(x, *fmt):
        quantized.append(x.dtype)
        return original(x, *fmt)

    monkeypatch.setattr(module, "to_input", counting)
    record = records[name, "int8"]
    settings = {**QUICK.to_dict(), "runtime": name, "runs": 50, "min_runs": 50}
    ctx = RuntimeContext(record["measured_with"]["model_file"], digits.test.x, digits.test.y,
                         settings)  # fmt: skip
    figures = latency(ctx)
    assert ctx.info["latency_runs"] == 50 and figures["latency_p50_ms"] > 0
    assert quantized == [np.float32]  # once, before timing; not once per timed call
    session = ctx.session()
    x = digits.test.x[:1]
    prepared = session.prepared({session.input_name: x})[session.input_name]
    assert prepared.dtype == np.int8  # a full-integer model's input
    (raw,) = session.run_prepared(None, {session.input_name: prepared})
    (dequantized,) = session.run(None, {session.input_name: x})
    assert raw.dtype == np.int8 and dequantized.dtype == np.float32
    np.testing.assert_allclose(dequantized, (raw.astype(np.float32) - session.output_scale[1])
                               * session.output_scale[0])  # fmt: skip


def advised_settings(text: str) -> set[str]:
    """The ``name: value`` settings a piece of advice names."""
    import re

    return set(re.findall(r"\b([a-z_]+): ", text)) - {"kind"}


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_agreement_advice_names_only_settings_its_quantizer_reads(name):
    """Every setting the advice names is one the quantizer that makes this runtime's file reads
    (ONNX Runtime's: the quantize kinds' and qat's settings models; a converter: its source),
    and every kind it names is one the runtime can express."""
    import importlib
    import inspect
    import re

    from edgeslim.compress.mixed import MixedSettings
    from edgeslim.compress.qat import QATSettings
    from edgeslim.compress.quantize import StaticSettings
    from edgeslim.compress.registry import TECHNIQUES
    from edgeslim.runtimes.agreement import advice

    engine = RUNTIMES[name]
    text = advice(engine)
    kinds = set(re.findall(r"\bkind: ([a-z0-9-]+)(?: or ([a-z0-9-]+))?", text))
    kinds = {kind for pair in kinds for kind in pair if kind}
    assert kinds and all(f"quantize.{kind}" in TECHNIQUES for kind in kinds), kinds
    named = advised_settings(text)
    if engine.reads_onnx:
        known = {
            *StaticSettings.model_fields,
            *MixedSettings.model_fields,
            *QATSettings.model_fields,
        }
        assert named <= known, named - known
        assert {"calibration_samples", "calibration_method", "per_channel", "bits"} <= named
    else:
        source = inspect.getsource(importlib.import_module(engine.converter))
        for setting in named:
            assert f'settings.get("{setting}"' in source, (name, setting)
        assert "calibration_samples" in named, text
        assert kinds <= {*(engine.quantize_kinds or ()), "mixed"}, kinds


def test_a_quantized_file_that_disagrees_says_what_to_try_and_on_how_many_samples(
    candidates, digits
):
    other = es.models.build("small-cnn", digits.spec)  # untrained: not what the file holds
    wrong = candidates["int8"].replace(model=other)
    with pytest.raises(ExportError) as failed:
        es.measure(wrong, digits, QUICK)
    message = str(failed.value)
    assert f"of 128 samples (the first 128 of the test split's {len(digits.test)};" in message
    assert "at least 90% expected (a fixed threshold, not a setting)" in message
    assert "calibration_samples: 1000" in message and "kind: mixed and bits: [8, 32]" in message


@pytest.fixture(scope="module")
def wide_mlps(digits, tmp_path_factory):
    """Two MLPs on digits whose weights dwarf their activations, the second with exactly 4x
    the first's weights (64 -> width -> 10: 1.2 MB and 4.8 MB of float32)."""
    out = tmp_path_factory.mktemp("wide")
    made = []
    for width in (4096, 16384):
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(64, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, 10),
        )
        made.append(es.export(es.Candidate(f"wide-{width}", model=model), digits, out))
    return made


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_a_model_with_4x_the_weights_shows_at_least_3x_the_model_memory(name, wide_mlps, digits):
    """model_memory_kb is the model's share of the peak: the runtime's own memory (its code,
    its session) is left out, so it scales with the weights on every runtime."""
    require(name)
    settings = replace(
        QUICK, runtime=name, runs=20, min_runs=5, batch_sizes=(1,), activation_samples=8
    )
    small, big = (es.measure(c, digits, settings)["model_memory_kb"] for c in wide_mlps)
    assert big >= 3 * small, (small, big)
    assert small >= 1000, small  # 1.2 MB of weights, far above the noise band (160 KB)
