"""Progress of a preprocessing run: a rich bar on a terminal, plain periodic log lines otherwise.

Plain lines (one per ~5% and at least every 30 s) keep Slurm and CI logs readable, like the
trainer's PlainProgress (engine/callbacks.py); `none` is silent.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("fermix")


class Progress:
    """`advance(failed)` once per finished image; use as a context manager."""

    def __init__(self, total: int, mode: str = "auto", description: str = "preprocess") -> None:
        if mode == "auto":
            mode = "rich" if sys.stderr.isatty() else "plain"
        self.mode = mode
        self.total = total
        self.description = description
        self.done = 0
        self.failed = 0
        self._start = time.monotonic()
        self._last_line = self._start
        self._every = max(1, total // 20)
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        self._start = self._last_line = time.monotonic()
        if self.mode == "rich" and self.total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, failed=0)
        return self

    def advance(self, failed: bool = False) -> None:
        self.done += 1
        self.failed += int(failed)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed)
        elif self.mode == "plain":
            now = time.monotonic()
            if self.done % self._every == 0 or self.done == self.total or now - self._last_line > 30:
                self._last_line = now
                log.info("%s: %s", self.description, self.status())

    def status(self) -> str:
        seconds = time.monotonic() - self._start
        rate = self.done / seconds if seconds > 0 else 0.0
        return f"{self.done}/{self.total} images, {self.failed} failed, {rate:.1f} images/s"

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
