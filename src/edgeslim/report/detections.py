"""Boxes on test images, for a detection run: the baseline's and the recommended model's
predictions (solid, with class and score) over the true boxes (dashed)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

PALETTE = ("#e63946", "#2a9d8f", "#f4a261", "#457b9d", "#8338ec", "#ff006e", "#3a86ff",
           "#fb5607", "#06d6a0", "#8d99ae")  # fmt: skip
SCALE = 4  # screen pixels per image pixel


def load_examples(folder: Path) -> dict[str, Any] | None:
    path = folder / "examples.json"
    return json.loads(path.read_text()) if path.exists() else None


def svg(image: str, truth: list, found: list, examples: dict[str, Any]) -> str:
    h, w = examples["size"]
    names = examples["class_names"]
    parts = [
        f"<svg width='{w * SCALE}' height='{h * SCALE}' viewBox='0 0 {w} {h}' "
        "xmlns='http://www.w3.org/2000/svg'>",
        f"<image href='data:image/png;base64,{image}' width='{w}' height='{h}' "
        "style='image-rendering:pixelated'/>",
    ]
    for _cls, x1, y1, x2, y2 in truth:
        parts.append(
            f"<rect x='{x1}' y='{y1}' width='{x2 - x1}' height='{y2 - y1}' fill='none' "
            "stroke='#fff' stroke-width='0.4' stroke-dasharray='1.5 1'/>"
        )
    for x1, y1, x2, y2, score, cls in found:
        color = PALETTE[int(cls) % len(PALETTE)]
        name = html.escape(names[int(cls)] if int(cls) < len(names) else str(int(cls)))
        parts.append(
            f"<rect x='{x1}' y='{y1}' width='{x2 - x1}' height='{y2 - y1}' fill='none' "
            f"stroke='{color}' stroke-width='0.6'/><text x='{x1 + 0.5}' y='{max(y1 - 0.8, 3)}' "
            f"font-size='3.2' fill='{color}'>{name} {score:.2f}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def detections_html(
    examples: dict[str, Any] | None, records: list[dict[str, Any]], recommended: dict | None
) -> str:
    if not examples:
        return ""
    shown = [r for r in records if r.get("name") == "baseline"]
    if recommended is not None and recommended.get("name") != "baseline":
        shown.append(recommended)
    rows = []
    for record in shown:
        found = record.get("example_detections")
        if not found:
            continue
        cells = "".join(
            f"<td>{svg(image, truth, boxes, examples)}</td>"
            for image, truth, boxes in zip(
                examples["images"], examples["truth"], found, strict=False
            )
        )
        rows.append(f"<tr><th>{html.escape(record['name'])}</th>{cells}</tr>")
    if not rows:
        return ""
    return (
        "<h2>Detections on test images</h2><p class='muted'>Dashed white: the true boxes; "
        f"solid: the model's boxes scoring at least {examples['threshold']} (class and score)."
        f"</p><div class='scroll'><table id='detections'>{''.join(rows)}</table></div>"
    )
