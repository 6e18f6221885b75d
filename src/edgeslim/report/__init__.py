"""Reports of a run folder: ``report.html`` (interactive, self-contained) and ``report.md``.

Both are rebuilt from ``results.jsonl`` and ``experiment.json`` alone, so
``edgeslim report RUN_DIR`` works long after the run, on any machine.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeslim.config import parse
from edgeslim.errors import ConfigError, kind_of
from edgeslim.files import write_atomic
from edgeslim.report.detections import load_examples
from edgeslim.report.html import render_html
from edgeslim.report.markdown import render_markdown
from edgeslim.results import RunFolder
from edgeslim.select import Selection, select
from edgeslim.yamlfiles import read_bounded

if TYPE_CHECKING:
    from edgeslim.config import Experiment


def selection_for(records: list[dict[str, Any]], experiment: Experiment) -> Selection:
    return select(records, experiment.budget, objectives=experiment.config.objectives)


def write_reports(
    folder: RunFolder, records: list[dict[str, Any]], experiment: Experiment
) -> tuple[Selection, dict[str, Path]]:

    selection = selection_for(records, experiment)
    paths = {"html": folder.path / "report.html", "markdown": folder.path / "report.md"}
    examples = load_examples(folder.path)
    write_atomic(paths["html"], render_html(records, selection, experiment, examples))
    write_atomic(paths["markdown"], render_markdown(records, selection, experiment))
    return selection, paths


def report(run_dir: str | Path) -> tuple[Selection, dict[str, Path]]:
    """Rebuild ``report.html`` and ``report.md`` of a run folder from its records."""
    path = Path(os.path.abspath(run_dir))  # ``.`` and ``runs/t/..`` name a folder too
    try:
        folder = RunFolder.at(path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: not a run folder ({exc})") from exc
    spec = folder.path / "experiment.json"
    if not spec.is_file() or not folder.results.is_file():
        raise ConfigError(f"{folder.path}: not a run folder (no experiment.json / results.jsonl)")
    try:
        raw = json.loads(read_bounded(spec, "experiment record"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ConfigError(
            f"{spec}: not valid JSON ({' '.join(str(exc).split())[:200]}); edgeslim writes it "
            "when a run starts: restore it, or run the experiment again"
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{spec}: expected the experiment as a JSON object, got {kind_of(raw)}")
    experiment = parse(raw, spec)
    check_records(folder)
    records = folder.current(experiment.names)
    return write_reports(folder, records, experiment)


def check_records(folder: RunFolder) -> None:
    """Every intact record names its candidate (a record edited by hand may not)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged lines are reported once, when read for real
        records = folder.read()
    for record in records:
        if not isinstance(record.get("name"), str):
            line = line_of(folder.results, record)
            raise ConfigError(
                f"{folder.results}:{line}: a record without a candidate name (edited by "
                "hand?); restore its name, or remove that line"
            )


def line_of(results: Path, record: dict[str, Any]) -> int | str:
    """The line of ``results`` that holds ``record`` (``?`` if none does)."""
    for number, raw in enumerate(results.read_bytes().splitlines(), start=1):
        try:
            if json.loads(raw) == record:
                return number
        except ValueError:
            continue
    return "?"
