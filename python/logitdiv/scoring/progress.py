"""Progress reporting for long scoring runs: tqdm if installed, else rich, else a minimal bar on
stderr; or a user callable ``callback(rows_done, rows_total)``."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional, TextIO

__all__ = ["Progress", "make_progress"]


class Progress:
    """Reports rows done: ``update(done)`` with the running total, ``close()`` at the end."""

    def update(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Callback(Progress):
    def __init__(self, fn: Callable[[int, int], Any], total: int) -> None:
        self.fn, self.total = fn, total

    def update(self, done: int) -> None:
        self.fn(done, self.total)


class _Tqdm(Progress):
    def __init__(self, total: int, desc: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="row", unit_scale=True, leave=False, file=sys.stderr, dynamic_ncols=True)
        self.done = 0

    def update(self, done: int) -> None:
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        self.bar.close()


class _Rich(Progress):
    def __init__(self, total: int, desc: str) -> None:
        from rich.progress import Progress as RichProgress

        self.p = RichProgress(transient=True)
        self.p.start()
        self.task = self.p.add_task(desc, total=total)

    def update(self, done: int) -> None:
        self.p.update(self.task, completed=done)

    def close(self) -> None:
        self.p.stop()


class _Bar(Progress):
    """A minimal one-line bar: ``scoring  42% |██████▍        | 4,096/9,728 rows  1.2s``."""

    def __init__(self, total: int, desc: str, stream: Optional[TextIO] = None, width: int = 30) -> None:
        self.total, self.desc, self.width = max(total, 0), desc, width
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def update(self, done: int) -> None:
        now = time.monotonic()
        if done < self.total and now - self.last < 0.1:
            return
        self.last = now
        frac = 1.0 if self.total == 0 else min(done / self.total, 1.0)
        full = int(frac * self.width)
        bar = "█" * full + ("▌" if frac * self.width - full >= 0.5 else "")
        self.stream.write(
            f"\r{self.desc} {frac:4.0%} |{bar:<{self.width}}| {done:,}/{self.total:,} rows  {now - self.start:.1f}s"
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * (len(self.desc) + self.width + 50) + "\r")
            self.stream.flush()


def make_progress(progress: Any, total: int, desc: str = "scoring") -> Progress:
    """`progress`: False/None (nothing), True (a bar on stderr), or a callable(rows_done, rows_total)."""
    if progress is None or progress is False:
        return Progress()
    if callable(progress):
        return _Callback(progress, total)
    if progress is not True:
        raise TypeError(f"progress must be True, False or a callable(rows_done, rows_total); got {progress!r}")
    for cls in (_Tqdm, _Rich):
        try:
            return cls(total, desc)
        except ImportError:
            continue
    return _Bar(total, desc)
