"""The latent space {0,1}^m, the token <-> latent bijection, Hamming distance and neighbourhoods.

Token ``i`` *is* the latent vector whose bits are the binary digits of ``i``, most significant bit
first: ``latents[i, 0]`` is the first latent bit z_1. So the cluster "same first k bits" is a block
of ``2**(m-k)`` consecutive token ids, which keeps heat maps readable.

A neighbourhood family says, for every target token y, which tokens may appear in y's context.
Every family has ``contains(space, y, x)`` (broadcasting over token-id tensors), ``mask(space)``
(``BoolTensor[V, V]``, ``mask[y, x]``) and ``table(space)`` (padded neighbour lists used by the
sampler). The target is never its own neighbour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from ._validate import ArgumentTypeError, check_int, check_size, check_tokens

M_MAX = 16
# Dense V x V tables (masks, distances, laws) are built for m <= 13 only: 2**26 entries.
DENSE_LIMIT = 2**26


class LatentSpace:
    """The latent space {0,1}^m with V = 2**m tokens.

    Args:
        m: number of binary latent concepts, 1..16.
    """

    def __init__(self, m: int):
        self.m = check_int("m", m, 1, M_MAX)
        self.V = 2**self.m

    def __repr__(self) -> str:
        return f"LatentSpace(m={self.m}, V={self.V})"

    def __eq__(self, other) -> bool:
        return isinstance(other, LatentSpace) and other.m == self.m

    def __hash__(self) -> int:
        return hash(("LatentSpace", self.m))

    @property
    def latents(self) -> torch.Tensor:
        """``LongTensor[V, m]`` of 0/1: row i is the latent vector of token i (MSB first)."""
        return _latents(self.m).clone()

    def token(self, z: torch.Tensor | list) -> torch.Tensor:
        """Token id(s) of latent vector(s) ``z`` (``[..., m]`` of 0/1)."""
        z = torch.as_tensor(z)
        if z.shape[-1:] != (self.m,):
            raise ValueError(f"z must have last dimension m={self.m}, got shape {tuple(z.shape)}")
        if z.numel() and not bool(((z == 0) | (z == 1)).all()):
            raise ValueError("z must hold only 0/1 entries")
        weights = 2 ** torch.arange(self.m - 1, -1, -1)
        return (z.long() * weights).sum(-1)

    def popcount(self) -> torch.Tensor:
        """``LongTensor[V]``: number of ones in each token's latent vector."""
        return _popcount_table(self.m).clone()

    def hamming(self, x: torch.Tensor | int, y: torch.Tensor | int) -> torch.Tensor:
        """Hamming distance between token ids ``x`` and ``y`` (broadcasting)."""
        x = check_tokens("x", torch.as_tensor(x), self.V)
        y = check_tokens("y", torch.as_tensor(y), self.V)
        return _popcount_table(self.m)[x ^ y]

    def distances(self) -> torch.Tensor:
        """``LongTensor[V, V]`` of Hamming distances between all token pairs (m <= 13)."""
        check_size("m", self.V * self.V, DENSE_LIMIT, "entries of a V x V table")
        t = torch.arange(self.V)
        return _popcount_table(self.m)[t[:, None] ^ t[None, :]]


def popcounts(bits: int) -> torch.Tensor:
    """``LongTensor[2**bits]``: entry t is the number of ones in the binary digits of t (bits in
    0..30, so that the table fits in memory)."""
    bits = check_int("bits", bits, 0, 30)
    t = torch.arange(2**bits)
    out = torch.zeros_like(t)
    for b in range(bits):
        out += (t >> b) & 1
    return out


# Memoised tables of the latent space, one per m (m <= M_MAX, so at most 16 entries each). They are
# shared and never written to: the public accessors (``LatentSpace.latents``, ``popcount``) return
# copies, and the package only indexes into them.
@lru_cache(maxsize=None)
def _latents(m: int) -> torch.Tensor:
    t = torch.arange(2**m)
    shifts = torch.arange(m - 1, -1, -1)
    return (t[:, None] >> shifts[None, :]) & 1


@lru_cache(maxsize=None)
def _popcount_table(m: int) -> torch.Tensor:
    return popcounts(m)


def xor_invariant(mask: torch.Tensor) -> bool:
    """Whether a neighbourhood mask ``[V, V]`` is invariant under the translations z -> z xor u
    (``mask[y, x] = mask[0, y xor x]``), as Hamming spheres, balls and clusters are: then one
    target stands for all in an enumeration."""
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(
            f"mask must be a square tensor [V, V], got {type(mask).__name__} "
            f"{tuple(getattr(mask, 'shape', ()))}"
        )
    V = mask.shape[0]
    if V < 1 or V & (V - 1):
        raise ValueError(f"mask must be V x V with V a power of two, got V={V}")
    t = torch.arange(mask.shape[0])
    return bool(torch.equal(mask, mask[0][t[:, None] ^ t[None, :]]))


def _as_space(space: LatentSpace | int) -> LatentSpace:
    if isinstance(space, LatentSpace):
        return space
    return LatentSpace(space)


class Neighbourhood:
    """Base class of neighbourhood families. Subclasses implement ``contains``."""

    name = "neighbourhood"

    def _fits(self, space: LatentSpace) -> None:
        """Raise ValueError if the family's parameters do not fit ``space`` (cheap checks only;
        ``mask``, ``degrees`` and ``table`` call it, ``validate`` adds the degree check)."""

    def contains(self, space: LatentSpace, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def validate(self, space: LatentSpace) -> None:
        """Raise ValueError if the family does not fit ``space`` or some target has no neighbour."""
        self._fits(space)
        deg = self.degrees(space)
        if int(deg.min()) == 0:
            y = int(torch.argmin(deg))
            raise ValueError(
                f"neighbourhood {self!r} is empty for target token {y} at m={space.m}; "
                "every target needs at least one neighbour"
            )

    def mask(self, space: LatentSpace | int) -> torch.Tensor:
        """``BoolTensor[V, V]``: ``mask[y, x]`` is True iff x may appear in y's context."""
        space = _as_space(space)
        self._fits(space)
        check_size("m", space.V * space.V, DENSE_LIMIT, "entries of a V x V mask")
        t = torch.arange(space.V)
        return self.contains(space, t[:, None], t[None, :])

    def degrees(self, space: LatentSpace | int) -> torch.Tensor:
        """``LongTensor[V]``: the neighbourhood size of every target."""
        return self.mask(space).sum(1)

    def table(self, space: LatentSpace | int) -> tuple[torch.Tensor, torch.Tensor]:
        """Neighbour lists padded to equal length: ``(table LongTensor[V, K], degree LongTensor[V])``.

        ``table[y, :degree[y]]`` are y's neighbours in increasing order; the padding repeats the
        first neighbour (it is never drawn by a sampler that indexes below ``degree[y]``).
        """
        space = _as_space(space)
        mask = self.mask(space)
        deg = mask.sum(1)
        K = max(int(deg.max()), 1)
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :K]
        first = order[:, :1].expand(-1, K)
        pos = torch.arange(K)[None, :]
        return torch.where(pos < deg[:, None], order, first), deg


@dataclass(frozen=True)
class HammingSphere(Neighbourhood):
    """Tokens at Hamming distance exactly ``r`` from the target."""

    r: int = 1
    name = "sphere"

    def __post_init__(self):
        check_int("r", self.r, 1, M_MAX)

    def contains(self, space: LatentSpace, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        d = _popcount_table(space.m)[torch.as_tensor(y) ^ torch.as_tensor(x)]
        return d == self.r

    def validate(self, space: LatentSpace) -> None:
        if self.r > space.m:
            raise ValueError(f"r must be in 1..m={space.m} for a Hamming sphere, got {self.r}")

    _fits = validate

    def degrees(self, space: LatentSpace | int) -> torch.Tensor:
        space = _as_space(space)
        self._fits(space)
        return torch.full((space.V,), math.comb(space.m, self.r), dtype=torch.long)

    def table(self, space: LatentSpace | int) -> tuple[torch.Tensor, torch.Tensor]:
        space = _as_space(space)
        self._fits(space)
        patterns = _weight_patterns(space.m, (self.r,))
        t = torch.arange(space.V)
        return t[:, None] ^ patterns[None, :], self.degrees(space)


@dataclass(frozen=True)
class HammingBall(Neighbourhood):
    """Tokens at Hamming distance 1..``r`` from the target (the target itself excluded)."""

    r: int = 1
    name = "ball"

    def __post_init__(self):
        check_int("r", self.r, 1, M_MAX)

    def contains(self, space: LatentSpace, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        d = _popcount_table(space.m)[torch.as_tensor(y) ^ torch.as_tensor(x)]
        return (d >= 1) & (d <= self.r)

    def validate(self, space: LatentSpace) -> None:
        if self.r > space.m:
            raise ValueError(f"r must be in 1..m={space.m} for a Hamming ball, got {self.r}")

    _fits = validate

    def degrees(self, space: LatentSpace | int) -> torch.Tensor:
        space = _as_space(space)
        self._fits(space)
        k = sum(math.comb(space.m, j) for j in range(1, min(self.r, space.m) + 1))
        return torch.full((space.V,), k, dtype=torch.long)

    def table(self, space: LatentSpace | int) -> tuple[torch.Tensor, torch.Tensor]:
        space = _as_space(space)
        self._fits(space)
        patterns = _weight_patterns(space.m, tuple(range(1, min(self.r, space.m) + 1)))
        t = torch.arange(space.V)
        return t[:, None] ^ patterns[None, :], self.degrees(space)


@dataclass(frozen=True)
class Cluster(Neighbourhood):
    """Tokens sharing the target's first ``k`` latent bits (the target itself excluded)."""

    k: int = 2
    name = "cluster"

    def __post_init__(self):
        check_int("k", self.k, 0, M_MAX)

    def contains(self, space: LatentSpace, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = torch.as_tensor(y), torch.as_tensor(x)
        s = space.m - self.k
        return ((y >> s) == (x >> s)) & (y != x)

    def validate(self, space: LatentSpace) -> None:
        if self.k >= space.m:
            raise ValueError(
                f"k must be in 0..m-1={space.m - 1} for a cluster neighbourhood "
                f"(k = m leaves every cluster with only its target), got {self.k}"
            )

    _fits = validate

    def degrees(self, space: LatentSpace | int) -> torch.Tensor:
        space = _as_space(space)
        self._fits(space)
        return torch.full((space.V,), 2 ** (space.m - self.k) - 1, dtype=torch.long)

    def table(self, space: LatentSpace | int) -> tuple[torch.Tensor, torch.Tensor]:
        space = _as_space(space)
        self._fits(space)
        size = 2 ** (space.m - self.k)
        t = torch.arange(space.V)
        base = (t >> (space.m - self.k)) << (space.m - self.k)
        j = torch.arange(size - 1)[None, :]
        offset = (t - base)[:, None]
        return base[:, None] + j + (j >= offset).long(), self.degrees(space)


@dataclass(frozen=True)
class OtherClusters(Neighbourhood):
    """Tokens whose first ``k`` latent bits differ from the target's (a law for noise tokens)."""

    k: int = 2
    name = "other_clusters"

    def __post_init__(self):
        check_int("k", self.k, 1, M_MAX)

    def contains(self, space: LatentSpace, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = torch.as_tensor(y), torch.as_tensor(x)
        s = space.m - self.k
        return (y >> s) != (x >> s)

    def validate(self, space: LatentSpace) -> None:
        if self.k > space.m:
            raise ValueError(f"k must be in 1..m={space.m} for other_clusters, got {self.k}")

    _fits = validate


@dataclass(frozen=True, eq=False)
class CustomNeighbourhood(Neighbourhood):
    """A user-defined neighbourhood given as a ``BoolTensor[V, V]`` mask (``mask[y, x]``)."""

    user_mask: torch.Tensor = field(repr=False, default=None)
    label: str = "custom"
    name = "custom"

    def __post_init__(self):
        m = self.user_mask
        if not isinstance(m, torch.Tensor) or m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(
                "mask (user_mask) must be a square BoolTensor[V, V], got "
                f"{type(m).__name__} {tuple(getattr(m, 'shape', ()))}"
            )
        if not isinstance(self.label, str):
            raise ArgumentTypeError(f"label must be a str, got {type(self.label).__name__}")
        V = m.shape[0]
        if V < 2 or V & (V - 1):
            raise ValueError(f"mask must be V x V with V = 2**m (m >= 1), got V={V}")
        object.__setattr__(self, "user_mask", m.bool().clone())
        if bool(torch.diagonal(self.user_mask).any()):
            y = int(torch.nonzero(torch.diagonal(self.user_mask))[0])
            raise ValueError(
                f"mask must not make a target its own neighbour (mask[{y}, {y}] is "
                "True); the target never appears in its own context"
            )

    def __repr__(self):
        return f"CustomNeighbourhood({self.label!r}, V={self.user_mask.shape[0]})"

    def contains(self, space: LatentSpace, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.user_mask[torch.as_tensor(y), torch.as_tensor(x)]

    def _fits(self, space: LatentSpace) -> None:
        if self.user_mask.shape[0] != space.V:
            raise ValueError(
                f"mask must be {space.V} x {space.V} for m={space.m}, got {tuple(self.user_mask.shape)}"
            )


def hamming_sphere(r: int = 1) -> HammingSphere:
    """Neighbourhood: latents at Hamming distance exactly r (N_1 is ``hamming_sphere(1)``)."""
    return HammingSphere(r)


def hamming_ball(r: int = 1) -> HammingBall:
    """Neighbourhood: latents at Hamming distance 1..r."""
    return HammingBall(r)


def cluster(k: int = 2) -> Cluster:
    """Neighbourhood: latents sharing the first k bits with the target (target excluded)."""
    return Cluster(k)


def other_clusters(k: int = 2) -> OtherClusters:
    """Latents whose first k bits differ from the target's: a noise law for the cluster task."""
    return OtherClusters(k)


def custom(mask: torch.Tensor, label: str = "custom") -> CustomNeighbourhood:
    """Wrap a user mask ``BoolTensor[V, V]`` (``mask[y, x]``: x may appear in y's context)."""
    return CustomNeighbourhood(mask, label)


@lru_cache(maxsize=None)
def _weight_patterns(m: int, weights: tuple[int, ...]) -> torch.Tensor:
    pop = _popcount_table(m)
    keep = torch.zeros(2**m, dtype=torch.bool)
    for w in weights:
        keep |= pop == w
    return torch.nonzero(keep).flatten()
