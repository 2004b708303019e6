"""Argument checks shared by the package: every public function fails with a ValueError that
names the parameter, the value it got and the range it allows."""

from __future__ import annotations

import math

import torch


def check_int(name: str, value: object, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an int, or raise ValueError if it is not an integer in [lo, hi]."""
    if isinstance(value, bool) or isinstance(value, float) or not hasattr(value, "__index__"):
        raise ValueError(f"{name} must be an integer, got {value!r}")
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
    """Return ``value`` as a float, or raise ValueError if it is not a finite number in range."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
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
