"""Reports of a run folder: ``report.html`` (interactive, self-contained) and ``report.md``.

Both are rebuilt from ``results.jsonl`` and ``experiment.json`` alone, so
``edgeslim report RUN_DIR`` works long after the run, on any machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeslim.errors import ConfigError
from edgeslim.results import RunFolder, write_atomic
from edgeslim.select import Selection, select

if TYPE_CHECKING:
    from edgeslim.config import Experiment


def selection_for(records: list[dict[str, Any]], experiment: Experiment) -> Selection:
    return select(records, experiment.budget, objectives=experiment.config.objectives)


def write_reports(
    folder: RunFolder, records: list[dict[str, Any]], experiment: Experiment
) -> tuple[Selection, dict[str, Path]]:
    from edgeslim.report.detections import load_examples
    from edgeslim.report.html import render_html
    from edgeslim.report.markdown import render_markdown

    selection = selection_for(records, experiment)
    paths = {"html": folder.path / "report.html", "markdown": folder.path / "report.md"}
    examples = load_examples(folder.path)
    write_atomic(paths["html"], render_html(records, selection, experiment, examples))
    write_atomic(paths["markdown"], render_markdown(records, selection, experiment))
    return selection, paths


def report(run_dir: str | Path) -> tuple[Selection, dict[str, Path]]:
    """Rebuild ``report.html`` and ``report.md`` of a run folder from its records."""
    from edgeslim.config import parse

    folder = RunFolder.at(run_dir)
    spec = folder.path / "experiment.json"
    if not spec.exists() or not folder.results.exists():
        raise ConfigError(f"{folder.path}: not a run folder (no experiment.json / results.jsonl)")
    experiment = parse(json.loads(spec.read_text()), spec)
    records = folder.current(experiment.names)
    return write_reports(folder, records, experiment)
