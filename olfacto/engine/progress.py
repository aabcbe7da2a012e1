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

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable or not self.total:
            return
        now = time.monotonic()
        fraction = self.n / self.total
        if now - self.start < self.delay and fraction < 1.0:
            return
        if fraction - self.last_fraction >= self.step or now - self.last_time >= self.every or fraction >= 1.0:
            self.last_fraction, self.last_time = fraction, now
            print(f"{self.desc}: {100 * fraction:3.0f}% ({self.n}/{self.total} {self.unit}s, {now - self.start:.0f} s)",
                  file=self.file, flush=True)

    def set_postfix_str(self, text: str) -> None:
        """As tqdm's; a non-empty status (e.g. "compiling …") is printed at once, since what follows may be slow."""
        self.desc = self.desc.split(" [")[0]
        if text and not self.disable:
            print(f"{self.desc}: {self.n}/{self.total} {self.unit}s [{text}]", file=self.file, flush=True)

    def close(self) -> None:
        pass


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
