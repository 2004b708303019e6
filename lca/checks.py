"""The exercise checkers' shared machinery: a learner calls ``check_<name>(their_function)``, the
checker compares it with the reference on random inputs of several shapes and on edge cases, and
prints one short pass message or the first failing input (expected against got). A stub that
raises ``NotImplementedError`` gets a friendly "not implemented yet"."""

from __future__ import annotations

import traceback
from typing import Callable

import torch


class CheckResult:
    """Outcome of a check: truthy when the learner's function passed. Its repr is the message."""

    def __init__(self, passed: bool, message: str):
        self.passed, self.message = bool(passed), message

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    def _repr_pretty_(self, p, cycle: bool) -> None:
        p.text(self.message)


def run_cases(
    name: str,
    fn: Callable,
    reference: Callable,
    cases: list,
    compare: Callable | None = None,
    describe: Callable | None = None,
) -> CheckResult:
    """Call ``fn`` and ``reference`` on each case (a tuple of positional arguments) and compare.

    ``compare(expected, got) -> bool`` defaults to an exact/close tensor comparison;
    ``describe(case) -> str`` says what the failing input was. Returns a ``CheckResult`` and prints
    its message (so a notebook cell shows it).
    """
    compare = compare or close
    describe = describe or (lambda case: ", ".join(_short(a) for a in case))
    for i, case in enumerate(cases):
        try:
            got = fn(*case)
        except NotImplementedError:
            res = CheckResult(
                False,
                f"{name}: not implemented yet - replace the "
                "`raise NotImplementedError` with your code and run the cell again.",
            )
            print(res.message)
            return res
        except Exception as exc:  # the learner's bug: show the last frame only
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            res = CheckResult(False, f"{name}: your function raised {last}\n  on input: {describe(case)}")
            print(res.message)
            return res
        expected = reference(*case)
        if not compare(expected, got):
            res = CheckResult(
                False,
                f"{name}: wrong answer on test {i + 1} of {len(cases)}\n"
                f"  input:    {describe(case)}\n"
                f"  expected: {_short(expected)}\n  got:      {_short(got)}",
            )
            print(res.message)
            return res
    res = CheckResult(True, f"{name}: all {len(cases)} tests passed.")
    print(res.message)
    return res


def safe_compare(compare: Callable) -> Callable:
    """Wrap a comparison so that a malformed answer (wrong type or shape) counts as wrong instead
    of raising inside the checker."""

    def inner(expected, got):
        try:
            return bool(compare(expected, got))
        except Exception:
            return False

    return inner


def close(expected: object, got: object, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Tensors (or numbers, or tuples of them) equal in shape and value up to tolerance."""
    if isinstance(expected, (tuple, list)):
        return (
            isinstance(got, (tuple, list))
            and len(got) == len(expected)
            and all(close(e, g, rtol, atol) for e, g in zip(expected, got))
        )
    try:
        e = torch.as_tensor(expected, dtype=torch.float64)
        g = torch.as_tensor(got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return expected == got
    return e.shape == g.shape and bool(torch.allclose(e, g, rtol=rtol, atol=atol, equal_nan=True))


def _short(x, width: int = 160) -> str:
    if isinstance(x, torch.Tensor):
        body = f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}"
        if x.numel() <= 12:
            body += f": {x.tolist()}"
        return body
    text = repr(x)
    return text if len(text) <= width else text[: width - 3] + "..."
