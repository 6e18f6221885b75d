"""What the user sees of long work: one progress-bar helper for every loop, and one way to
silence libraries that narrate on stdout (the ONNX exporter, ORT's calibrators).

On a terminal (stderr is one) a loop shows a transient rich bar there. Elsewhere (a CI log, a
pipe, a test capturing the output) bars are silent, except a loop long enough for a person to
wonder (training, which names its ``unit``: epoch): it prints one plain line per step on stdout,
where the run's own progress lines go, with the time so far and an estimate of the time left."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class Bar:
    def __init__(
        self,
        progress: Progress | None,
        task: int | None,
        line: tuple[str, str, int] | None = None,
    ) -> None:
        self._progress, self._task = progress, task
        self._line = line  # (desc, unit, total): one plain line per step
        self._done, self._started = 0, time.monotonic()

    def advance(self, status: str = "", steps: int = 1, last: bool = False) -> None:
        """``last``: the loop ends here, before its total (no time left to estimate)."""
        self._done += steps
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, status=status)
        elif self._line is not None:
            print(self.line(status, time.monotonic() - self._started, last), flush=True)

    def line(self, status: str, elapsed: float, last: bool = False) -> str:
        """``train baseline: epoch 3/12: loss 0.41, val_accuracy 0.93; 41s, about 1m 40s left``"""
        desc, unit, total = self._line or ("", "", 0)
        timing = duration(elapsed)
        if self._done < total and not last:
            timing += f", about {duration(elapsed / self._done * (total - self._done))} left"
        return f"{desc}: {unit} {self._done}/{total}: " + (f"{status}; " if status else "") + timing


@contextmanager
def progress_bar(desc: str, total: int, enabled: bool = True, unit: str = "") -> Iterator[Bar]:
    """A transient rich bar on a terminal; elsewhere silent, or, with ``unit``, one plain line
    per step on stdout; nothing at all when disabled."""
    if not enabled:
        yield Bar(None, None)
        return
    if not sys.stderr.isatty():
        yield Bar(None, None, (desc, unit, total) if unit else None)
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("so far,"),
        TimeRemainingColumn(),
        TextColumn("left"),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),  # where the check above looked
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
