"""Progress reporting that suits where the output goes.

- a terminal: tqdm's text bar (redrawn in place);
- a Jupyter kernel with ipywidgets: tqdm's notebook widget; without ipywidgets: the text bar
  (no ``TqdmWarning: IProgress not found``);
- anything else (a log file, CI, a SLURM job's output): plain lines, one every 10 % or 60 s,
  never a carriage return.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"
    except Exception:  # noqa: BLE001
        return False


class LineProgress:
    """A tqdm-like counter that writes a plain line every ``step`` of the total or ``every`` seconds."""

    def __init__(self, total: int, desc: str = "", unit: str = "it", initial: int = 0, delay: float = 0.0,
                 disable: bool = False, file=None, step: float = 0.1, every: float = 60.0, **_: Any):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.disable, self.file, self.delay = disable, file or sys.stderr, delay
        self.step, self.every = step, every
        self.start = self.last_time = time.monotonic()
        self.last_fraction = initial / total if total else 0.0
        self.last_n, self.lines = initial, 0

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable or not self.total:
            return
        now = time.monotonic()
        fraction = self.n / self.total
        if now - self.start < self.delay and fraction < 1.0:
            return
        if fraction - self.last_fraction >= self.step or now - self.last_time >= self.every or fraction >= 1.0:
            # the elapsed time, and from the second line on the rate since the line before and the time left:
            # the first line's time holds the compilation, so it says nothing of the rate
            pace = ""
            if self.lines and self.n > self.last_n and now > self.last_time:
                rate = (self.n - self.last_n) / (now - self.last_time)
                pace = f"; {_count(rate)} {plural(self.unit)}/s" + (f", ≈ {clock((self.total - self.n) / rate)} left"
                                                             if self.n < self.total else "")
            self.last_fraction, self.last_time, self.last_n, self.lines = fraction, now, self.n, self.lines + 1
            print(f"{self.desc}: {100 * fraction:3.0f}% ({self.n}/{self.total} {plural(self.unit)}, "
                  f"{clock(now - self.start)}{pace})", file=self.file, flush=True)

    def set_postfix_str(self, text: str) -> None:
        """As tqdm's; a non-empty status (e.g. "compiling …") is printed at once, since what follows may be slow."""
        self.desc = self.desc.split(" [")[0]
        if text and not self.disable:
            print(f"{self.desc}: {self.n}/{self.total} {plural(self.unit)}, {clock(time.monotonic() - self.start)} [{text}]",
                  file=self.file, flush=True)

    def close(self) -> None:
        pass


def plural(unit: str) -> str:
    """``point`` → ``points``, ``batch`` → ``batches``."""
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")


def counted(n: int, unit: str) -> str:
    """``1 seed``, ``3 seeds``: ``n`` and the unit, plural (:func:`plural`) unless one."""
    return f"{n} {unit if n == 1 else plural(unit)}"


def clock(seconds: float) -> str:
    """A duration as a reader wants it: ``0.42 s``, ``15.3 s``, ``2 min 05 s``, ``1 h 02 min``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _count(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"


def bar(total: int, desc: str, unit: str, disable: bool = False, **kw: Any):
    """A progress bar for ``total`` items, of the kind that suits the current output (module docstring)."""
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401

            from tqdm.notebook import tqdm
        except ImportError:
            from tqdm.std import tqdm
        return tqdm(total=total, desc=desc, unit=unit, disable=disable, **kw)
    if sys.stderr.isatty():
        from tqdm.std import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, **kw)
    return LineProgress(total, desc=desc, unit=unit, disable=disable, **kw)
