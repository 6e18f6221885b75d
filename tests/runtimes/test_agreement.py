"""``check_agreement`` against a runtime whose answers are made by hand: a float file off by more
than its tolerance is refused, a quantized file is judged on top-1 only (at least 9 in 10), the
figures say what was compared, and the advice names what the file's quantizer reads."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from edgeslim.errors import ExportError, MeasurementError
from edgeslim.runtimes.agreement import advice, check_agreement, quantized


class Engine:
    """A runtime whose session answers ``answer(batch)``; it records the batches it ran."""

    def __init__(self, answer, input_shape=("batch", 4), fail=None, **traits):
        self.name = traits.pop("name", "fake")
        self.reads_onnx = traits.pop("reads_onnx", True)
        self.converter = traits.pop("converter", None)
        self.quantize_kinds = traits.pop("quantize_kinds", None)
        self.answer, self.input_shape, self.fail = answer, input_shape, fail
        self.batches: list[int] = []
        self.loaded: list[tuple[str, int]] = []

    def version(self) -> str:
        return "1.2.3"

    def load(self, path, threads):
        self.loaded.append((path, threads))

        def run(_names, feed):
            (x,) = feed.values()
            if self.fail is not None:
                raise self.fail
            self.batches.append(len(x))
            return [self.answer(x)]

        return SimpleNamespace(input_name="input", input_shape=self.input_shape, run=run)


def samples(n: int) -> np.ndarray:
    """``n`` rows of 4 scores, each row's class ``i % 4`` ahead of the others by at least 0.25."""
    x = np.zeros((n, 4), dtype=np.float32)
    x[np.arange(n), np.arange(n) % 4] = 0.5
    x[:, 3] += 0.25  # class 3 second everywhere else (0.25), never tied
    x[np.arange(n) % 4 == 3, 3] = 0.5
    return x


def swap_first(k: int):
    """Answers with the winning class of the first ``k`` rows moved to another class."""

    def answer(x):
        out = x.copy()
        out[:k] = out[:k, ::-1]
        return out

    return answer


IDENTITY = nn.Identity()


def test_a_float_file_that_matches_gives_its_figures():
    engine = Engine(lambda x: x + np.float32(2**-11))  # 0.00049 off: inside 1e-3
    figures = check_agreement(engine, "m.onnx", IDENTITY, samples(10), is_quantized=False)
    assert figures == {
        "runtime": "fake",
        "samples": 10,
        "max_abs_diff": pytest.approx(2**-11),
        "top1_agreement": 1.0,
        "quantized": False,
    }
    assert engine.loaded == [("m.onnx", 1)]  # one thread
    assert engine.batches == [10]


def test_a_float_file_off_by_more_than_the_tolerance_is_refused_with_both_figures():
    engine = Engine(lambda x: x + np.float32(0.0025))
    with pytest.raises(ExportError) as caught:
        check_agreement(engine, "m.onnx", IDENTITY, samples(10), is_quantized=False)
    assert str(caught.value) == (
        "m.onnx: fake's outputs differ from PyTorch's by up to 0.0025 (top1_agreement 100.0% "
        "on 10 samples); at most 0.001 expected"
    )


def test_the_float_tolerance_grows_with_outputs_larger_than_one():
    """Outputs up to 20: the tolerance is 20 x 1e-3 = 0.02; 0.015 off passes, 0.03 does not."""
    x = samples(8) * 40  # the largest score is 20
    ok = check_agreement(Engine(lambda b: b + np.float32(0.015)), "m", IDENTITY, x, False)
    assert ok["max_abs_diff"] == pytest.approx(0.015, abs=1e-5)
    with pytest.raises(ExportError, match=r"by up to 0\.03 .*; at most 0\.02 expected$"):
        check_agreement(Engine(lambda b: b + np.float32(0.03)), "m", IDENTITY, x, False)


def test_a_float_file_off_by_exactly_the_tolerance_passes():
    """Outputs up to 1000: the tolerance is 1e-3 x 1000 = 1.0, and 1.0 off is not more."""
    x = np.zeros((4, 3), dtype=np.float32)
    x[:, 0] = 1000.0

    def one_off(b):
        out = b.copy()
        out[:, 2] = 1.0
        return out

    figures = check_agreement(Engine(one_off), "m", IDENTITY, x, is_quantized=False)
    assert figures["max_abs_diff"] == 1.0 and figures["top1_agreement"] == 1.0


def test_the_model_is_run_in_eval_mode_without_gradients():
    """Dropout in training mode would zero most outputs; a Linear's weights want gradients."""
    linear = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(4))
    model = nn.Sequential(nn.Dropout(0.9), linear).train()
    figures = check_agreement(Engine(lambda x: x), "m", model, samples(6), is_quantized=False)
    assert figures["max_abs_diff"] == 0.0 and figures["top1_agreement"] == 1.0


def test_a_quantized_file_agreeing_on_9_in_10_passes_whatever_its_diff():
    # row 0, [0.5, 0, 0, 0.25], answered as [0.25, 0, 0, 0.5]: class 3 instead of 0, 0.25 off
    engine = Engine(swap_first(1))
    figures = check_agreement(engine, "q.onnx", IDENTITY, samples(10), is_quantized=True)
    assert figures["top1_agreement"] == 0.9 and figures["quantized"] is True
    assert figures["max_abs_diff"] == 0.25  # 250 times the float tolerance


def test_a_quantized_file_agreeing_on_fewer_is_refused_with_advice():
    engine = Engine(swap_first(2))
    with pytest.raises(ExportError) as caught:
        check_agreement(engine, "q.onnx", IDENTITY, samples(10), is_quantized=True)
    assert str(caught.value) == (
        "q.onnx: fake agrees with PyTorch on the answer (top1_agreement) for 80.0% of 10 "
        "samples (the whole test split; max abs diff 0.5); at least 90% expected (a fixed "
        f"threshold, not a setting). To agree more: {advice(engine)}"
    )


def test_only_the_first_128_samples_are_compared_and_the_message_says_so():
    x = samples(200)
    engine = Engine(swap_first(64))  # half of the 128 compared
    with pytest.raises(ExportError, match=r"for 50\.0% of 128 samples \(the first 128 of the "
                       r"test split's 200; max abs diff 0\.5\)"):  # fmt: skip
        check_agreement(engine, "q", IDENTITY, x, is_quantized=True)
    assert engine.batches == [128]
    assert check_agreement(Engine(lambda b: b), "q", IDENTITY, x, True)["samples"] == 128


def test_a_fixed_batch_is_run_in_slices():
    engine = Engine(lambda b: b, input_shape=(4, 4))
    figures = check_agreement(engine, "m.tflite", IDENTITY, samples(10), is_quantized=False)
    assert figures["samples"] == 10 and figures["top1_agreement"] == 1.0
    assert engine.batches == [4, 4, 4]  # the last slice padded, its padding's answers dropped


@pytest.mark.parametrize("error", [RuntimeError, ValueError])
def test_a_runtime_that_cannot_run_the_model_says_so_in_one_line(error):
    engine = Engine(None, fail=error("  op   Foo\n  is not supported "))
    with pytest.raises(MeasurementError) as caught:
        check_agreement(engine, "m.onnx", IDENTITY, samples(4), is_quantized=False)
    assert str(caught.value) == "m.onnx: fake 1.2.3 cannot run this model: op Foo is not supported"
    assert isinstance(caught.value.__cause__, error)


def test_other_errors_are_not_taken_for_the_runtime_s_words():
    engine = Engine(None, fail=KeyError("input"))
    with pytest.raises(KeyError):
        check_agreement(engine, "m.onnx", IDENTITY, samples(4), is_quantized=False)


def test_a_task_given_names_and_computes_the_agreement():
    task = SimpleNamespace(agreement_name="box_agreement", agreement=lambda got, exp: 0.75)
    engine = Engine(lambda x: x)
    figures = check_agreement(engine, "d", IDENTITY, samples(4), False, task=task)
    assert figures["box_agreement"] == 0.75 and "top1_agreement" not in figures
    with pytest.raises(ExportError, match=r"\(box_agreement\) for 75\.0% of 4 samples"):
        check_agreement(engine, "d", IDENTITY, samples(4), True, task=task)


def test_onnx_runtimes_get_the_onnx_quantizer_s_settings():
    text = advice(Engine(None, reads_onnx=True))
    assert text.startswith(
        "with kind: static-int8, calibrate on more samples (calibration_samples: 1000), try "
        "calibration_method: entropy or percentile"
    )


def test_a_converter_s_own_quantizer_gets_the_settings_it_reads():
    engine = Engine(
        None,
        name="litert",
        reads_onnx=False,
        converter="edgeslim.runtimes.tflite_convert",
        quantize_kinds=("static-int8", "weight-int8", "fp16", "weight-int4"),
    )
    assert advice(engine) == (
        "litert's file is quantized by its own quantizer, which reads the quantize step's "
        "calibration_samples and seed; try calibration_samples: 1000, seed: 1; or keep the "
        "activations float (kind: weight-int8 or weight-int4); keeping single layers float is "
        "not a setting of this quantizer here (on a runtime that reads ONNX, kind: mixed does it)"
    )


def test_an_unknown_converter_gets_no_settings_and_no_float_activation_kinds():
    bare = Engine(None, name="npu", reads_onnx=False, converter=None, quantize_kinds=None)
    assert advice(bare) == (
        "npu's file is quantized by its own quantizer; keeping single layers float is not a "
        "setting of this quantizer here (on a runtime that reads ONNX, kind: mixed does it)"
    )
    static_only = Engine(
        None, name="npu", reads_onnx=False, converter="vendor.convert", quantize_kinds=("x",)
    )
    assert advice(static_only) == advice(bare)


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ([], False),
        ([{"prune": {"ratio": 0.5}}, {"finetune": {"epochs": 1}}], False),
        ([{"prune": {}}, {"quantize": {"kind": "static-int8"}}], True),
        (({"qat": {"bits": 8}},), True),
    ],
)
def test_a_recipe_is_quantized_when_a_step_quantizes(recipe, expected):
    assert quantized(recipe) is expected
