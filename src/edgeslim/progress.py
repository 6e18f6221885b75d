"""What the user sees of long work: one progress-bar helper for every loop, and one way to
silence libraries that narrate on stdout (the ONNX exporter, ORT's calibrators)."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, status: str = "", steps: int = 1) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, status=status)


@contextmanager
def progress_bar(desc: str, total: int, enabled: bool = True) -> Iterator[Bar]:
    """A transient rich bar on a terminal; silent when output is not a terminal or disabled."""
    if not enabled or not sys.stderr.isatty():
        yield Bar(None, None)
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        transient=True,
    )
    with progress:
        yield Bar(progress, progress.add_task(desc, total=total, status=""))


@contextmanager
def spinner(desc: str, enabled: bool = True) -> Iterator[None]:
    """A transient spinner for work without steps to count (a measurement in its worker)."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(desc):
        yield


@contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """Swallow stdout, warnings, and records below ERROR from the named loggers."""
    chosen = [logging.getLogger(name) for name in loggers]
    levels = [logger.level for logger in chosen]
    for logger in chosen:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(chosen, levels, strict=True):
            logger.setLevel(level)
