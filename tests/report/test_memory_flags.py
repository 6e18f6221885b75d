"""'Savings the runtime did not show' compares the memory the model controls, never the whole
process's peak (mostly the runtime's own), and flags a measured figure only outside its noise
band: hand-made records whose verdicts can be worked out by hand."""

from __future__ import annotations

from edgeslim.report.runtimes import memory_metric, memory_noise_kb, unshown_savings

BASE = {
    "name": "baseline",
    "runtime": "onnxruntime",
    "storage_kb": 1000.0,
    "peak_memory_mb": 12.0,
    "model_memory_kb": 2400.0,
    "activation_memory_kb": 16.0,
    "measured_with": {"model_memory": {"noise_kb": 0}},
}


def cand(name: str, storage: float, model: float, **extra) -> dict:
    return {**BASE, "name": name, "candidate": name, "storage_kb": storage,
            "model_memory_kb": model, **extra}  # fmt: skip


def test_a_smaller_file_with_as_much_model_memory_is_flagged_with_its_figures():
    flags = unshown_savings([BASE, cand("int4", storage=150, model=2390)])
    # noise band: max(160 KB, 5% of 2400 KB = 120 KB) = 160 KB; the file lost 850 KB
    assert flags == {
        "int4": [
            "6.7x smaller file but no less RAM (model_memory_kb: 2390 KB against the baseline's "
            "2400 KB, while the file lost 850 KB; noise ±160 KB) on onnxruntime"
        ]
    }


def test_model_memory_that_shrank_beyond_the_noise_is_not_flagged_whatever_the_peak():
    # the whole peak did not move (the runtime's own ~10 MB): that is no flag any more
    flags = unshown_savings([BASE, cand("int8", storage=260, model=1200, peak_memory_mb=12.0)])
    assert flags == {}


def test_a_saving_inside_the_noise_band_is_neither_flagged_nor_taken_as_shown():
    records = [
        BASE,
        cand("no-less", storage=250, model=2300),  # 100 KB less memory: inside ±160 KB
        cand("small-saving", storage=850, model=2400),  # the file lost 150 KB: inside too
    ]
    assert set(unshown_savings(records)) == {"no-less"}  # its file lost 750 KB: outside
    # a worker that measured a wider spread for its reference widens the band
    wide = {"measured_with": {"model_memory": {"noise_kb": 800}}}
    assert unshown_savings([BASE, cand("int8", storage=250, model=2400, **wide)]) == {}


def test_the_memory_compared_is_the_most_exact_both_records_hold():
    arena = {"tensor_arena_kb": 40.0, "planned_memory_kb": 30.0}
    assert memory_metric({**BASE, **arena}, {**BASE, **arena}) == "tensor_arena_kb"
    plan = {"planned_memory_kb": 30.0}
    assert memory_metric({**BASE, **plan}, {**BASE, **plan}) == "planned_memory_kb"
    assert memory_metric({**BASE, **plan}, BASE) == "model_memory_kb"  # the plan on one only
    older = {k: v for k, v in BASE.items() if k != "model_memory_kb"}
    assert memory_metric(older, BASE) == "activation_memory_kb"  # never the process's peak
    assert memory_metric({"peak_memory_mb": 12.0}, {"peak_memory_mb": 12.0}) is None
    assert memory_noise_kb("tensor_arena_kb", BASE, BASE) == 0.0  # exact: no band
    assert memory_noise_kb("model_memory_kb", BASE, cand("x", 10, 40_000)) == 2000  # 5%


def test_an_exact_arena_flags_without_a_band():
    base = {**BASE, "runtime": "tflite-micro", "tensor_arena_kb": 40.0}
    same = cand("slim", storage=500, model=100, runtime="tflite-micro", tensor_arena_kb=39.0)
    smaller = cand("fast", storage=500, model=100, runtime="tflite-micro", tensor_arena_kb=12.0)
    assert unshown_savings([base, same, smaller]) == {
        "slim": ["2.0x smaller file but no less RAM (tensor_arena_kb) on tflite-micro"]
    }
