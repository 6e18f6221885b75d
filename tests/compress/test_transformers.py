"""Quantization and distillation of the zoo's transformers, on built-in digits: accuracy held
against FP32, bytes saved, and a narrower, shallower ViT student taught by a wider one."""

from __future__ import annotations

import pytest

import edgeslim as es
from edgeslim.errors import MeasurementError
from tests.conftest import QUICK

pytestmark = pytest.mark.slow  # each test here takes over 4 s on 2 cores


@pytest.fixture(scope="module")
def trained_vit(digits):
    return es.train(es.models.build("vit", digits.spec), digits, epochs=12, show_progress=False)


@pytest.fixture(scope="module")
def vit_records(trained_vit, digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("vit")
    base = es.export(trained_vit, digits, out)
    quantized = es.compress(
        trained_vit, digits, ["int8-static", "int8-dynamic"], out_dir=out, show_progress=False
    )
    return {c.name: es.measure(c, digits, QUICK) for c in (base, *quantized)}


def test_int8_keeps_a_vit_accurate_and_a_third_of_its_size(vit_records):
    fp32 = vit_records["baseline"]
    assert fp32["accuracy"] > 0.9
    for name in ("int8-static", "int8-dynamic"):
        record = vit_records[name]
        assert record["accuracy"] >= fp32["accuracy"] - 0.02, name
        assert record["storage_kb"] < 0.4 * fp32["storage_kb"], name
        assert record["macs"] == fp32["macs"]  # attention products counted in every form


def test_a_shallower_narrower_vit_student_learns_from_tokens(trained_vit, digits, tmp_path):
    student = {"model": "vit", "width": 0.5, "depth": 0.5}
    hints = [["blocks.1", "blocks.3"]]  # the student's last block learns the teacher's tokens
    step = {"distill": {"epochs": 8, "lr": 3e-3, "student": student, "hints": hints}}
    (taught,) = es.compress(trained_vit, digits, [[step]], out_dir=tmp_path, show_progress=False)
    assert len(taught.model.blocks) == 2 and taught.model.head.in_features == 32
    record = es.measure(taught, digits, QUICK)
    assert record["accuracy"] > 0.85
    assert record["macs"] < es.measure(trained_vit, digits, QUICK)["macs"] / 5


def test_tflite_micro_says_it_has_no_gelu(digits):
    vit = es.models.build("vit", digits.spec)
    with pytest.raises(MeasurementError, match="tflite-micro .* cannot run this model: .*GELU"):
        es.measure(vit, digits, QUICK, runtime="tflite-micro")
