"""What the benchmarks share: data with a fallback, cached baselines, markdown tables."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

import edgeslim as es

CACHE = Path(__file__).parent / ".cache"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def load_data(quick: bool) -> tuple[es.data.Dataset, str]:
    """Fashion-MNIST when installed (a 12k-sample training subset with --quick), else digits."""
    if not FASHION.is_dir():
        print("Fashion-MNIST not installed; falling back to digits", file=sys.stderr)
        return es.data.load("digits"), "digits"
    data = es.data.load(f"fashion-mnist:{FASHION}")
    if quick:
        from dataclasses import replace

        from edgeslim.data.bundle import Split

        data = replace(data, train=Split(data.train.x[:12000], data.train.y[:12000]))
    return data, "fashion-mnist" + (" (12k train subset)" if quick else "")


def baseline(name: str, data: es.data.Dataset, label: str, epochs: int) -> es.Candidate:
    """Train once per (model, data, epochs) and cache the weights under bench/.cache."""
    key = hashlib.sha1(f"{name}|{label}|{epochs}|{len(data.train)}".encode()).hexdigest()[:12]
    path = CACHE / f"{name}-{key}.pt"
    model = es.models.build(name, data.spec)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return es.Candidate(
            "dense", recipe=({"train": {"epochs": epochs, "cached": True}},), model=model.eval()
        )
    candidate = es.train(model, data, epochs=epochs, name="dense")
    CACHE.mkdir(exist_ok=True)
    torch.save(candidate.model.state_dict(), path)
    return candidate


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
