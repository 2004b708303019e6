"""Tests of lca.latent: the bijection with {0,1}^m, Hamming distances, neighbourhood masks."""

import pytest
import torch

import lca
from lca.latent import LatentSpace, popcounts, xor_invariant
from lca.task import TaskSpec


def brute_hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


# --------------------------------------------------------------------------- latent space
@pytest.mark.parametrize("m", [1, 3, 5])
def test_latents_bijection_and_distances(m):
    space = LatentSpace(m)
    Z = space.latents
    assert Z.shape == (2**m, m)
    # MSB first: token i's bits read left to right are the binary digits of i
    for i in range(space.V):
        assert "".join(str(int(b)) for b in Z[i]) == format(i, f"0{m}b")
    assert torch.equal(space.token(Z), torch.arange(space.V))
    D = space.distances()
    want = torch.tensor([[brute_hamming(a, b) for b in range(space.V)] for a in range(space.V)])
    assert torch.equal(D, want)
    # Hamming distance of latent vectors equals the number of differing bits
    assert torch.equal(D, (Z[:, None, :] != Z[None, :, :]).sum(-1))
    assert torch.equal(space.popcount(), Z.sum(1))


def test_popcounts():
    for bits in (0, 1, 5, 13):
        assert popcounts(bits).tolist() == [bin(t).count("1") for t in range(2**bits)]
    with pytest.raises(ValueError, match="bits"):
        popcounts(31)


def brute_mask(space, rule):
    V = space.V
    return torch.tensor([[rule(y, x) for x in range(V)] for y in range(V)])


@pytest.mark.parametrize("m", [2, 4, 5])
def test_neighbourhood_masks_match_definitions(m):
    space = LatentSpace(m)
    shift = lambda k: m - k  # noqa: E731
    cases = [(lca.hamming_sphere(r), lambda y, x, r=r: brute_hamming(y, x) == r) for r in range(1, m + 1)]
    cases += [(lca.hamming_ball(r), lambda y, x, r=r: 1 <= brute_hamming(y, x) <= r) for r in range(1, m + 1)]
    cases += [
        (lca.cluster(k), lambda y, x, k=k: (y >> shift(k)) == (x >> shift(k)) and x != y) for k in range(0, m)
    ]
    cases += [
        (lca.other_clusters(k), lambda y, x, k=k: (y >> shift(k)) != (x >> shift(k))) for k in range(1, m + 1)
    ]
    for fam, rule in cases:
        mask = fam.mask(space)
        assert torch.equal(mask, brute_mask(space, rule)), fam
        if not isinstance(fam, lca.latent.OtherClusters):
            assert not bool(torch.diagonal(mask).any()), f"{fam}: a target is its own neighbour"
        # the sampler's padded tables list exactly the mask's neighbours
        table, deg = fam.table(space)
        assert torch.equal(deg, mask.sum(1))
        for y in range(space.V):
            assert sorted(table[y, : deg[y]].tolist()) == torch.nonzero(mask[y]).flatten().tolist()


def test_custom_neighbourhood_and_its_errors():
    space = LatentSpace(3)
    mask = space.distances() == 2
    fam = lca.custom(mask, "distance two")
    assert torch.equal(fam.mask(space), mask)
    with pytest.raises(ValueError, match="own neighbour"):
        lca.custom(torch.eye(8, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        lca.custom(torch.zeros(8, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        TaskSpec(m=4, L=3, neighbourhood=fam)  # 8 x 8 mask for V = 16
    empty = mask.clone()
    empty[5] = False
    with pytest.raises(ValueError, match="empty for target token 5"):
        TaskSpec(m=3, L=3, neighbourhood=lca.custom(empty))


def test_xor_invariance_of_masks():
    for nb in (lca.hamming_sphere(2), lca.hamming_ball(2), lca.cluster(1)):
        assert xor_invariant(nb.mask(4))
    mask = lca.hamming_sphere(1).mask(3).clone()
    mask[0, 1] = False  # one target loses a neighbour
    assert not xor_invariant(mask)
