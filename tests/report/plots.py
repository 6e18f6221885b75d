"""Reading the plotly figures back out of a report page."""

from __future__ import annotations

import json
import re
from typing import Any

NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"(?P<id>[^"]+)",\s*')


def figures(page: str) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Div id -> (traces, layout) of every plotly figure in ``page``."""
    decoder = json.JSONDecoder()
    found = {}
    for match in NEW_PLOT.finditer(page):
        data, end = decoder.raw_decode(page, match.end())
        comma = re.compile(r"\s*,\s*").match(page, end)
        assert comma is not None, page[end : end + 40]
        layout, _ = decoder.raw_decode(page, comma.end())
        found[match["id"]] = (data, layout)
    return found


def axis_title(layout: dict[str, Any], axis: str) -> str:
    title = layout.get(axis, {}).get("title", {})
    return title.get("text", "") if isinstance(title, dict) else str(title)
