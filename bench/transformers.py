"""Transformers on Fashion-MNIST: a ViT and a MobileViT-like hybrid, FP32 against whole heads
pruned, static INT8, channels and heads pruned to half the MACs, and that pruned model distilled
from the dense one and quantized; next to Torch-Pruning's own ViT example
(``examples/transformers/prune_timm_vit.py``) with its defaults, and at edgeslim's MACs.

    python bench/transformers.py [--quick]

MACs are edgeslim's graph count (attention's QK^T and attention x V included); latency is ONNX
Runtime at batch 1 on one pinned core. Every pruned model is fine-tuned the same epochs with the
same trainer. Target: at 2x fewer MACs, accuracy within 1.5 points of FP32, >= 1.5x faster.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import torch

import edgeslim as es
from common import Bench, Section, Speed, Table, run_alone
from edgeslim.compress import attention

MODELS = ("vit", "mobilevit")
QUICK_MODELS = ("vit",)  # --quick: the section runs through; the tests prune mobilevit
# channels and head dimensions at this ratio, and half the heads, halve each model's MACs
HALF_MACS = {"vit": 0.16, "mobilevit": 0.22}
HEADERS = [
    "model",
    "form",
    "MACs",
    "MACs ÷",
    "accuracy",
    "Δ pts",
    "p50 ms",
    "p95 ms",
    "speed-up",
    "storage KB",
]


def recipes(model: str, epochs: int) -> dict[str, list[dict[str, Any]]]:
    halve = {"kind": "structured", "ratio": HALF_MACS[model], "head_ratio": 0.5}
    return {
        "heads pruned 50% + fine-tune": [
            {"prune": {"kind": "structured", "head_ratio": 0.5}},
            {"finetune": {"epochs": epochs}},
        ],
        "INT8 (static)": [{"quantize": {"kind": "static-int8"}}],
        "channels + heads, MACs ÷ 2, fine-tune": [
            {"prune": halve},
            {"finetune": {"epochs": epochs}},
        ],
        "channels + heads → KD → INT8": [
            {"prune": halve},
            {"distill": {"epochs": epochs}},
            {"quantize": {"kind": "static-int8"}},
        ],
    }


def torch_pruning_example(
    base: es.Candidate, data: es.data.Dataset, ratio: float
) -> torch.nn.Module:
    """Torch-Pruning's ViT example with its defaults: L1 group magnitude, uniform ``ratio``
    (0.5 by default), ``num_heads`` given, head dimensions pruned (not whole heads),
    ``round_to=1``, the classifier kept; then each attention block's head count and width
    updated as the example does."""
    import torch_pruning as tp

    model = copy.deepcopy(base.model).eval()
    blocks = attention.find_attention(model)
    qkv = {id(m.qkv): m for m in model.modules() if hasattr(m, "num_heads")}
    pruner = tp.pruner.BasePruner(
        model,
        torch.from_numpy(data.train.x[:1]),
        importance=tp.importance.GroupMagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=[model.head if hasattr(model, "head") else list(model.modules())[-1]],
        num_heads=attention.num_heads_map(blocks),
        prune_num_heads=False,
        prune_head_dims=True,
        round_to=1,
    )
    pruner.step()
    for layer, heads in pruner.num_heads.items():
        if id(layer) in qkv:
            block = qkv[id(layer)]
            block.num_heads = heads
            block.head_dim = layer.out_features // (3 * heads)
    return model


def graph_macs(model: torch.nn.Module, data: es.data.Dataset, folder: str) -> int:
    from edgeslim.graph import summarize
    from edgeslim.measure.compute import compute

    exported = es.export(es.Candidate("probe", model=model), data, folder)
    return compute(summarize(exported.artifact, data.spec.input_shape))["macs"]


def ratio_for(base: es.Candidate, data: es.data.Dataset, reduction: float, folder: str) -> float:
    """The Torch-Pruning example's ratio that divides the graph MACs (attention products
    included) by ``reduction``, by bisection."""
    dense = graph_macs(base.model, data, folder)
    low, high = 0.0, 0.8
    for _ in range(7):
        middle = (low + high) / 2
        pruned = torch_pruning_example(base, data, middle)
        if dense / graph_macs(pruned, data, folder) < reduction:
            low = middle
        else:
            high = middle
    return round(high, 3)


def run(bench: Bench) -> Section:
    note = (
        f"{bench.label}; each model trained {bench.epochs} epochs, every pruned model fine-tuned "
        f"(or distilled) {bench.finetune} epochs with edgeslim's trainer; ONNX Runtime, batch 1, "
        "1 thread. Heads pruned: `prune: {kind: structured, head_ratio: 0.5}` (whole heads, "
        f"nothing else). MACs ÷ 2: `ratio` ({HALF_MACS}) on channels and head dimensions plus "
        "`head_ratio: 0.5`. Torch-Pruning: its ViT example's defaults (`BasePruner`, "
        "`GroupMagnitudeImportance(p=1)`, ratio 0.5, `num_heads`, head dimensions), and the same "
        "at the ratio that halves the MACs; fine-tuned with cross-entropy."
    )
    table = Table("Transformers: pruned, distilled, quantized", HEADERS, note=note)
    speeds = []
    with tempfile.TemporaryDirectory(prefix="bench-transformers-") as tmp:
        for name in QUICK_MODELS if bench.quick else MODELS:
            base = bench.baseline(name)
            dense = bench.measure(es.export(base, bench.data, tmp))
            rows: list[tuple[str, dict]] = [("FP32", dense)]
            ours = recipes(name, bench.finetune)
            built = es.compress(
                base,
                bench.data,
                list(ours.values()),
                names=[f"{name}-{i}" for i in range(len(ours))],
                out_dir=tmp,
            )
            rows += [(form, bench.measure(c)) for form, c in zip(ours, built, strict=True)]
            same = ratio_for(base, bench.data, 2.0, tmp)
            for label, ratio in (("defaults, ratio 0.5", 0.5), (f"ratio {same}, MACs ÷ 2", same)):
                pruned = es.Candidate(
                    f"{name}-tp-{ratio}",
                    recipe=({"torch_pruning_vit_example": {"ratio": ratio}},),
                    model=torch_pruning_example(base, bench.data, ratio),
                )
                (tuned,) = es.compress(
                    pruned, bench.data, [[{"finetune": {"epochs": bench.finetune}}]], out_dir=tmp
                )
                rows.append((f"Torch-Pruning ViT example, {label}", bench.measure(tuned)))
            for form, record in rows:
                table.rows.append(
                    [
                        name,
                        form,
                        f"{record['macs']:,}",
                        f"{dense['macs'] / record['macs']:.2f}",
                        f"{record['accuracy']:.4f}",
                        f"{(record['accuracy'] - dense['accuracy']) * 100:+.2f}",
                        f"{record['latency_p50_ms']:.4f}",
                        f"{record['latency_p95_ms']:.4f}",
                        f"{dense['latency_p50_ms'] / record['latency_p50_ms']:.2f}x",
                        f"{record['storage_kb']:.1f}",
                    ]
                )
                speeds.append(
                    Speed(name, form, "ONNX Runtime", record["macs"], record["latency_p50_ms"])
                )
    return Section([table], speeds)


if __name__ == "__main__":
    run_alone(run, __doc__)
