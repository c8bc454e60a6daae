"""Progress bars on the terminal for the long steps of runs the command line executes in-process.

The command line opens a display around a run (:func:`terminal_progress`); steps that take long
(embedding, training) ask for a bar with :func:`progress_bar` and get ``None`` when no display is
open. A display is opened only when its stream (stderr) is a terminal, so CI logs, pipes and the
Dagster daemon's runs never see a bar. No Dagster here: the embedder in ``features`` uses it too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress

ProgressCallback = Callable[[int, int], None]
"""``callback(done, total)``, as the embedder reports chunks."""


class TerminalProgress:
    """Bars drawn with rich on a terminal stream; log lines written to stderr while they are
    shown are printed above them. Started with the first bar, stopped by :meth:`close`."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress: Progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=stream, force_terminal=True),
            # stdout carries results (--json); only stderr's log lines are moved above the bars.
            redirect_stdout=False,
            redirect_stderr=stream is sys.stderr,
        )
        self._started = False

    def bar(self, description: str) -> ProgressCallback:
        """A callback that draws a bar named `description`. A new pass (``done`` going back)
        draws a new bar, so a step that embeds twice shows both; a bar completed before the
        display was closed is not drawn again."""
        state: dict[str, Any] = {"task": None, "done": -1}

        def update(done: int, total: int) -> None:
            task = state["task"]
            new_pass = task is None or done < state["done"]
            state["done"] = done
            if not new_pass and task not in self._progress.task_ids:
                return
            if new_pass:
                self._start()
                task = state["task"] = self._progress.add_task(description, total=total)
            self._progress.update(task, completed=done, total=total)
            if self._progress.finished:
                self.close()

        return update

    def close(self) -> None:
        """Stop drawing; the bars drawn so far stay on the screen as they last were."""
        if self._started:
            self._progress.stop()
            for task in list(self._progress.task_ids):
                self._progress.remove_task(task)
            self._started = False

    def _start(self) -> None:
        if not self._started:
            self._progress.start()
            self._started = True


_active: TerminalProgress | None = None


@contextmanager
def terminal_progress(stream: TextIO | None = None) -> Iterator[TerminalProgress | None]:
    """Show bars on `stream` (default stderr) during the block, if it is a terminal; yields the
    display, or None (and nothing is ever drawn) when it is not."""
    global _active
    stream = sys.stderr if stream is None else stream
    if _active is not None or not _is_terminal(stream):
        yield None
        return
    display = TerminalProgress(stream)
    _active = display
    try:
        yield display
    finally:
        _active = None
        display.close()


def active_display() -> TerminalProgress | None:
    """The open display, if the command line opened one on a terminal."""
    return _active


def stop_bars() -> None:
    """Stop drawing the open display's bars (a run that drew them is over)."""
    if _active is not None:
        _active.close()


def progress_bar(description: str) -> ProgressCallback | None:
    """A bar named `description` on the open display, or None when there is none."""
    return None if _active is None else _active.bar(description)


def both(*callbacks: ProgressCallback | None) -> ProgressCallback | None:
    """One callback calling each given one (None when none is given)."""
    present = [callback for callback in callbacks if callback is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def report(done: int, total: int) -> None:
        for callback in present:
            callback(done, total)

    return report


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
