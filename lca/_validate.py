"""Argument checks shared by the package: every public function fails with a ValueError that
names the parameter, the value it got and the range it allows."""

from __future__ import annotations

import math
import numbers
import warnings

import torch


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. A TypeError, and also a ValueError so that callers who
    catch the package's usual ValueError for bad input still catch it."""


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is True or False (or a NumPy bool), else raise TypeError naming the
    parameter: a string such as ``"False"`` is truthy and would silently mean True, and an int
    such as 2 is no flag either."""
    if isinstance(value, bool):
        return value
    if _numpy_bool(value):
        return bool(value)
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool and value.numel() == 1:
        return bool(value)
    raise ArgumentTypeError(f"{name} must be True or False, got {_brief(value)}")


def _numpy_bool(value: object) -> bool:
    """Whether ``value`` is a NumPy bool scalar (``numpy.bool_``, named ``numpy.bool`` in NumPy 2)."""
    return type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool")


def _brief(value: object, width: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:  # a raising __repr__ must not hide the real message
        text = f"<{type(value).__name__}>"
    text = text if len(text) <= width else text[: width - 3] + "..."
    return f"{text} ({type(value).__name__})"


def check_int(name: str, value: object, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an int, or raise ValueError if it is not an integer in [lo, hi]."""
    if isinstance(value, bool) or isinstance(value, float) or not hasattr(value, "__index__"):
        raise ArgumentTypeError(f"{name} must be an integer, got {_brief(value)}")
    if isinstance(value, torch.Tensor) and (value.numel() != 1 or value.is_floating_point()):
        raise ArgumentTypeError(f"{name} must be an integer, got {_brief(value)}")
    value = int(value.__index__())
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in {_range(lo, hi)}, got {value}")
    return value


def check_float(
    name: str,
    value: object,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Return ``value`` as a float, or raise ValueError if it is not a finite number in range
    (TypeError if it is not a number at all: a str such as ``"0.5"`` or a bool is rejected, not
    converted)."""
    ok = isinstance(value, numbers.Real) or (
        isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool
    )
    if isinstance(value, bool) or _numpy_bool(value) or not ok:
        raise ArgumentTypeError(f"{name} must be a real number, got {_brief(value)}")
    try:
        value = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ArgumentTypeError(f"{name} must be a real number, got {_brief(value)}") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")
    bad = (lo is not None and (value < lo or (lo_open and value == lo))) or (
        hi is not None and (value > hi or (hi_open and value == hi))
    )
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ValueError(f"{name} must be in {left}{lo_s}, {hi_s}{right}, got {value:g}")
    return value


def check_dtype(name: str, value: object, floating: bool = True) -> torch.dtype:
    """Return ``value`` if it is a ``torch.dtype`` (a floating one if ``floating``), else raise
    TypeError naming the parameter (a string such as ``"float32"`` is no dtype)."""
    if not isinstance(value, torch.dtype):
        raise ArgumentTypeError(f"{name} must be a torch.dtype such as torch.float64, got {_brief(value)}")
    if floating and not value.is_floating_point:
        raise ValueError(f"{name} must be a floating dtype (torch.float32 or torch.float64), got {value}")
    return value


def check_size(name: str, elements: int, limit: int, what: str = "elements") -> None:
    """Raise ValueError naming ``name`` if an allocation of ``elements`` would exceed ``limit``."""
    if elements > limit:
        raise ValueError(
            f"{name} is too large: this needs {elements:,} {what}, more than the limit of {limit:,}"
        )


def check_finite(name: str, value: torch.Tensor) -> torch.Tensor:
    """Raise ValueError naming ``name`` if a floating tensor holds NaN or infinity."""
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} must hold finite numbers, got NaN or infinity")
    return value


def check_choice(name: str, value: object, choices: tuple | set) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_tokens(
    name: str, tokens: object, V: int, ndim: int | tuple[int, ...] | None = None
) -> torch.Tensor:
    """Check that ``tokens`` is an integer tensor of token ids in 0..V-1 with the given ndim."""
    if not isinstance(tokens, torch.Tensor):
        raise ValueError(f"{name} must be a torch.LongTensor, got {type(tokens).__name__}")
    if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"{name} must have an integer dtype (torch.long), got {tokens.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if tokens.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(str(a) for a in allowed)} dimensions, "
                f"got shape {tuple(tokens.shape)}"
            )
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= V):
        raise ValueError(
            f"{name} must hold token ids in 0..{V - 1}, got values in "
            f"{int(tokens.min())}..{int(tokens.max())}"
        )
    return tokens.long()


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    if lo is not None:
        return f">= {lo}"
    return f"<= {hi}"


def make_generator(seed: int | None = None, generator: torch.Generator | None = None) -> torch.Generator:
    """A ``torch.Generator``: ``generator`` itself if given, else a fresh one seeded with ``seed``
    (an int >= 0; None draws a random seed)."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(check_int("seed", seed, 0, 2**63 - 1))
    return g


def warn_if_transposed(name: str, W_E: torch.Tensor, stacklevel: int = 3) -> None:
    """Warn (UserWarning) when an embedding ``[V, d]`` (or ``[E, V, d]``) whose V is not known to
    the caller has fewer rows than columns and a power-of-two number of columns: then its
    transpose ``[d, V]`` would be read as a valid embedding too, and a W_E.T is silently taken for
    V = d tokens. (An overparameterised W_E with d > V a power of two warns too: pass a model or
    a task, where V is known, to avoid it.)"""

    rows, cols = W_E.shape[-2], W_E.shape[-1]
    if rows < cols and cols >= 2 and not cols & (cols - 1):
        warnings.warn(
            f"{name} has fewer rows ({rows}) than columns ({cols}): {name} must be [V, d] "
            f"(row = token), so it is read as V={rows} tokens of dimension d={cols}; it may be "
            f"transposed (pass {name}.T if it is [d, V])",
            UserWarning,
            stacklevel=stacklevel,
        )


def check_reals(name: str, value: object, integer: bool = False) -> torch.Tensor:
    """``value`` (a tensor, array or sequence of real numbers) as a float64 tensor (int64 when
    ``integer``), or an error naming ``name``: TypeError for a str, None or anything that is not
    numbers, ValueError for NaN or infinity (and for non-integral entries when ``integer``)."""
    if value is None or isinstance(value, (str, bytes)):
        raise ArgumentTypeError(
            f"{name} must be a tensor or a sequence of real numbers, got {type(value).__name__}"
        )
    try:
        t = torch.as_tensor(value)
        if t.is_floating_point() and not isinstance(value, torch.Tensor):
            t = torch.as_tensor(value, dtype=torch.float64)  # a list of floats: no float32 rounding
    except (TypeError, ValueError, RuntimeError):
        raise ArgumentTypeError(
            f"{name} must be a tensor or a sequence of real numbers, got {type(value).__name__}"
        ) from None
    if t.dtype == torch.bool or t.is_complex():
        raise ArgumentTypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    t = t.detach().double().cpu()
    check_finite(name, t)
    if integer:
        if bool((t != t.round()).any()):
            raise ValueError(f"{name} must hold integers, got non-integral entries")
        return t.long()
    return t
