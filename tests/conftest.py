"""Shared fixtures: digits data, a trained small CNN, quick measurement settings."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import edgeslim as es
from edgeslim import config
from edgeslim.measure.settings import MeasureSettings
from tests.experiments import experiment_dict

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
QUICK = MeasureSettings(
    runs=200,
    min_runs=50,
    warmup_runs=5,
    batch_sizes=(1, 16),
    throughput_seconds=0.05,
    activation_samples=64,
    timeout_s=120,
)


@pytest.fixture(scope="session")
def digits() -> es.data.Dataset:
    return es.data.load("digits")


@pytest.fixture(scope="session")
def trained_small_cnn(digits):
    """A small CNN trained once per session (about two seconds on two cores)."""
    return es.train(
        es.models.build("small-cnn", digits.spec), digits, epochs=15, show_progress=False
    )


@pytest.fixture(scope="session")
def small_cnn_onnx(trained_small_cnn, digits, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    return es.export(trained_small_cnn, digits, out).artifact


@pytest.fixture
def quick() -> MeasureSettings:
    return QUICK


@pytest.fixture(scope="session")
def first_run(tmp_path_factory):
    """One real run (baseline, INT8, two sparsities, one failing candidate), ~25 s."""
    runs = tmp_path_factory.mktemp("runs")
    said: list[str] = []
    outcome = es.run(config.parse(experiment_dict()), runs, say=said.append, show_progress=False)
    return runs, outcome, said


@pytest.fixture
def ctrl_c_interrupts():
    """Ctrl-C raises KeyboardInterrupt, as in a terminal, however the suite was started: one
    started in the background (``pytest &``, nohup) inherits SIGINT ignored, and ``handled()``
    rightly goes on ignoring it, which would leave nothing for these tests to see."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
