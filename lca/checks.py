"""The exercise checkers' shared machinery: a learner calls ``check_<name>(their_function)``, the
checker compares it with the reference on random inputs of several shapes and on edge cases, and
prints one short pass message or the first failing input (expected against got). A stub that
raises ``NotImplementedError`` gets a friendly "not implemented yet".

The checker is not fooled by a function that edits its inputs in place (the expected value is
computed first, on a copy, and the learner's function gets copies of its own), nor by an answer of
the wrong type that claims to be equal to everything (answers are type-checked before they are
compared, and a comparison must give a plain True or False). A function that runs longer than
``time_limit`` seconds is stopped (where the platform has ``SIGALRM``, i.e. Linux and macOS,
Colab included)."""

from __future__ import annotations

import copy
import functools
import numbers
import signal
import threading
import traceback
from typing import Callable

import torch

from ._validate import _numpy_bool

TIME_LIMIT = 60.0  # seconds per call of the learner's function


class CheckResult:
    """Outcome of a check: truthy when the learner's function passed. Its repr is the message."""

    def __init__(self, passed: bool, message: str):
        self.passed, self.message = bool(passed), message

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:
        """Nothing: the checker has printed its message already, so a notebook cell that ends
        with ``check_x(f)`` shows it once (``repr`` still gives it, e.g. in a plain REPL)."""


class _TimeLimit(Exception):
    pass


def run_cases(
    name: str,
    fn: Callable,
    reference: Callable,
    cases: list,
    compare: Callable | None = None,
    describe: Callable | None = None,
    time_limit: float | None = TIME_LIMIT,
    report: bool = True,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> CheckResult:
    """Call ``reference`` and then ``fn`` on each case (a tuple of positional arguments), each on
    its own copy of the case, and compare.

    ``compare(expected, got) -> bool`` defaults to ``close`` with tolerances ``rtol`` and
    ``atol`` (after a type check of ``got`` against ``expected``); ``describe(case) -> str`` says
    what the failing input was; ``time_limit`` bounds each call of ``fn`` in seconds (None: no
    limit). Returns a ``CheckResult`` and prints its message (so a notebook cell shows it) unless
    ``report`` is False (for a checker that adds checks of its own and prints once at the end).
    """
    if compare is None:
        compare = functools.partial(close, rtol=rtol, atol=atol)
    res = _run_cases(name, fn, reference, cases, compare, describe, time_limit)
    if report:
        print(res.message)
    return res


def _run_cases(name, fn, reference, cases, compare, describe, time_limit) -> CheckResult:
    if not callable(fn):
        return CheckResult(False, f"{name}: expected a function, got {_short(fn)}")
    compare = compare or close
    describe = describe or (lambda case: ", ".join(_short(a) for a in case))
    for i, case in enumerate(cases):
        expected = reference(*_copy(case))
        try:
            got = _call_with_limit(fn, _copy(case), time_limit)
        except NotImplementedError:
            return CheckResult(
                False,
                f"{name}: not implemented yet - replace the "
                "`raise NotImplementedError` with your code and run the cell again.",
            )
        except _TimeLimit:
            return CheckResult(
                False,
                f"{name}: your function ran for more than {time_limit:g} s and was stopped "
                f"(an infinite loop?)\n  on input: {_describe(describe, case)}",
            )
        except Exception as exc:  # the learner's bug: show the last frame only
            last = _last_line(exc)
            return CheckResult(
                False, f"{name}: your function raised {last}\n  on input: {_describe(describe, case)}"
            )
        problem = type_problem(expected, got)
        if problem is None:
            try:
                verdict = compare(expected, got)
            except Exception as exc:
                problem = f"its answer could not be compared ({type(exc).__name__})"
            else:
                if not _is_plain_bool(verdict):
                    problem = (
                        f"its answer could not be compared (the comparison gave {type(verdict).__name__})"
                    )
                elif not verdict:
                    problem = "wrong answer"
        if problem is not None:
            return CheckResult(
                False,
                f"{name}: {problem} on test {i + 1} of {len(cases)}\n"
                f"  input:    {_describe(describe, case)}\n"
                f"  expected: {_short(expected)}\n  got:      {_short(got)}",
            )
    return CheckResult(True, f"{name}: all {len(cases)} tests passed.")


def seed_problem(sample: Callable[[torch.Generator], object]) -> str | None:
    """For a sampler ``sample(generator)``: None if it is reproducible (the same seed twice gives
    the same draw) and responds to its generator (two seeds give different draws), else a sentence
    saying which of the two fails. Draws are compared with ``close``."""
    try:
        a, b, c = (
            _call_with_limit(sample, (torch.Generator().manual_seed(s),), TIME_LIMIT)
            for s in (1234, 1234, 4321)
        )
    except _TimeLimit:
        return f"the function ran for more than {TIME_LIMIT:g} s and was stopped"
    except Exception as exc:
        return f"the function raised {_last_line(exc)}"
    if not _safe(lambda: close(a, b, rtol=0, atol=0), False):
        return "the same generator seed gave two different draws: draw every random number from `generator`"
    if _safe(lambda: close(a, c, rtol=0, atol=0), True):
        return "two different generator seeds gave the same draw: your function ignores `generator`"
    return None


def safe_compare(compare: Callable) -> Callable:
    """Wrap a comparison so that a malformed answer (wrong type or shape) counts as wrong instead
    of raising inside the checker."""

    def inner(expected, got):
        try:
            return _is_plain_bool(verdict := compare(expected, got)) and bool(verdict)
        except Exception:
            return False

    return inner


def type_problem(expected: object, got: object) -> str | None:
    """None if ``got`` has a type an answer to ``expected`` may have, else a short reason: a str
    answer must be a plain ``str``, a tensor answer a tensor (or a list/tuple/number of the same
    values), a number a real number, a tuple a tuple or list of the same length. Objects that
    merely claim to equal everything are refused."""
    if isinstance(expected, bool):
        ok = isinstance(got, bool) or _numpy_bool(got) or _scalar_tensor(got, bool_ok=True)
        return None if ok else f"expected True or False, got a {type(got).__name__}"
    if isinstance(expected, str):
        return None if type(got) is str else f"expected a str, got a {type(got).__name__}"
    if isinstance(expected, numbers.Real) or _scalar_tensor(expected):
        ok = (isinstance(got, numbers.Real) and not isinstance(got, bool)) or (
            isinstance(got, torch.Tensor) and got.numel() == 1 and got.dtype != torch.bool
        )
        return None if ok else f"expected a number, got a {type(got).__name__}"
    if isinstance(expected, torch.Tensor):
        if isinstance(got, torch.Tensor):
            return None
        if type(got) in (list, tuple) or isinstance(got, numbers.Real) or type(got).__name__ == "ndarray":
            return None
        return f"expected a tensor, got a {type(got).__name__}"
    if isinstance(expected, (tuple, list)):
        if type(got) not in (tuple, list) and not isinstance(got, tuple):
            return f"expected a tuple of {len(expected)}, got a {type(got).__name__}"
        if len(got) != len(expected):
            return f"expected a tuple of {len(expected)}, got {len(got)} values"
        for e, g in zip(expected, got):
            problem = type_problem(e, g)
            if problem is not None:
                return problem
    return None


def close(expected: object, got: object, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Tensors (or numbers, or tuples of them) equal in shape and value up to tolerance. Answers
    of another type than ``expected`` (see ``type_problem``) are never close."""
    if type_problem(expected, got) is not None:
        return False
    if isinstance(expected, (tuple, list)):
        return all(close(e, g, rtol, atol) for e, g in zip(expected, got))
    if isinstance(expected, str):
        return str.__eq__(expected, got) is True
    try:
        e = torch.as_tensor(expected, dtype=torch.float64)
        g = torch.as_tensor(got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        if type(got) is not type(expected):
            return False
        verdict = _safe(lambda: expected == got, False)
        return _is_plain_bool(verdict) and bool(verdict)
    return e.shape == g.shape and bool(torch.allclose(e, g, rtol=rtol, atol=atol, equal_nan=True))


def _call_with_limit(fn: Callable, args: tuple, seconds: float | None):
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        return fn(*args)

    def alarm(signum, frame):
        raise _TimeLimit

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _copy(case):
    """A copy of a case that the callee may change freely (tensors cloned, containers rebuilt)."""
    if isinstance(case, torch.Tensor):
        return case.detach().clone()
    if isinstance(case, tuple):
        return tuple(_copy(x) for x in case)
    if isinstance(case, list):
        return [_copy(x) for x in case]
    if isinstance(case, dict):
        return {k: _copy(v) for k, v in case.items()}
    if isinstance(case, (str, bytes, numbers.Number, type(None), torch.Generator)) or callable(case):
        return case
    return _safe(lambda: copy.deepcopy(case), case)


def _is_plain_bool(x) -> bool:
    return isinstance(x, bool) or _numpy_bool(x)


def _scalar_tensor(x, bool_ok: bool = False) -> bool:
    return isinstance(x, torch.Tensor) and x.ndim == 0 and (bool_ok or x.dtype != torch.bool)


def _safe(thunk: Callable, default):
    try:
        return thunk()
    except Exception:
        return default


def _last_line(exc: BaseException) -> str:
    try:
        return traceback.format_exception_only(type(exc), exc)[-1].strip()
    except Exception:  # an exception whose str() raises
        return type(exc).__name__


def _describe(describe: Callable, case) -> str:
    return _safe(lambda: str(describe(case)), "(the input could not be printed)")


def _short(x, width: int = 160) -> str:
    if isinstance(x, torch.Tensor):
        body = f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}"
        if x.numel() <= 12:
            body += f": {_safe(x.tolist, '?')}"
        return body
    text = _safe(lambda: repr(x), None)
    if not isinstance(text, str):
        text = f"<a {type(x).__name__} whose repr failed>"
    return text if len(text) <= width else text[: width - 3] + "..."
