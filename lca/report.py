"""Printing numbers so that the stored outputs hold on every CPU (the course's precision rule).

- **Exact quantities** (closed forms, enumerations, counts, float64 arithmetic on integers) print at
  full precision: ``exact(x)`` gives 10 significant digits, far above float64 round-off.
- **Estimates** (anything after training, sampling with floating-point draws, or a language model)
  print at the precision their reproducibility supports: ``pm(mean, se)`` rounds a mean to the
  leading digit of its standard error over seeds ("0.84 ± 0.01"); ``sig(x, 2)`` keeps two
  significant digits of a single run.
- **Floating-point residuals** print as a bound, never as digits: ``bound(r, 1e-10)`` gives
  "< 1e-10" when ``|r|`` is below the tolerance and a visible failure text otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["DATA", "bound", "exact", "load_stored", "pm", "sig"]

#: the package's data folder: stored results of long experiments that chapters load
DATA = Path(__file__).with_name("data")


def load_stored(path: str | Path, script: str) -> dict:
    """The JSON results that ``script`` (a bench/ or tools/ script) stored at ``path`` (a file
    name in ``DATA``, or a path); FileNotFoundError saying which script writes it."""
    path = Path(path)
    path = path if path.parent != Path(".") else DATA / path
    if not path.is_file():
        raise FileNotFoundError(f"no stored results at {path}: run `.venv/bin/python {script}`")
    return json.loads(path.read_text(encoding="utf-8"))


def _real(x, name: str) -> float:
    if isinstance(x, bool) or not hasattr(x, "__float__"):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    return float(x)


def bound(residual: float, tol: float = 1e-10) -> str:
    """``"< tol"`` if ``|residual| < tol``; otherwise ``"NOT < tol (residual = ...)"``.

    The text does not depend on the residual's digits, so a residual that is floating-point noise
    prints the same on every machine, and one that breaks the tolerance shows (and fails nbval).
    """
    r, t = _real(residual, "residual"), _real(tol, "tol")
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"tol must be a positive finite number, got {tol!r}")
    if math.isfinite(r) and abs(r) < t:
        return f"< {t:.0e}"
    return f"NOT < {t:.0e} (residual = {r:.3e})"


def exact(x: float, digits: int = 10) -> str:
    """An exact quantity at ``digits`` significant digits (default 10)."""
    v = _real(x, "x")
    if not 1 <= int(digits) <= 17:
        raise ValueError(f"digits must be in 1..17, got {digits!r}")
    return f"{v:.{int(digits)}g}"


def sig(x: float, digits: int = 2) -> str:
    """A single-run estimate at ``digits`` significant digits (default 2), fixed-point when possible."""
    v = _real(x, "x")
    if not 1 <= int(digits) <= 6:
        raise ValueError(f"digits must be in 1..6, got {digits!r}")
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    places = int(digits) - 1 - math.floor(math.log10(abs(v)))
    return f"{round(v, places):.{max(places, 0)}f}" if places >= 0 else f"{round(v, places):.0f}"


def pm(mean: float, se: float) -> str:
    """``"mean ± se"`` with the mean rounded to the leading digit of its standard error."""
    m, s = _real(mean, "mean"), _real(se, "se")
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"se must be a finite non-negative number, got {se!r}")
    if s == 0:
        return f"{m:g} ± 0"
    places = max(0, -math.floor(math.log10(s)))
    return f"{m:.{places}f} ± {s:.{places}f}"
