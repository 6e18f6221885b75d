"""One progress-bar helper for every long loop, so they all look and behave the same."""

from __future__ import annotations

import sys
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
