"""Self-checks for the exercises: a learner calls check_<name>(their_function); the checker
compares it with the reference on random inputs of several shapes and edge cases and prints a short
pass message or the first failing input (expected vs got). A stub that raises NotImplementedError
gets a friendly 'not implemented yet'."""

from __future__ import annotations

import traceback

import torch

# ==== section: shared ====
# (owned by the shared work; add functions between this marker and the next)


class CheckResult:
    """Outcome of a check: truthy when the learner's function passed. Its repr is the message."""

    def __init__(self, passed: bool, message: str):
        self.passed, self.message = bool(passed), message

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    _repr_pretty_ = lambda self, p, cycle: p.text(self.message)  # noqa: E731


def run_cases(name: str, fn, reference, cases, compare=None, describe=None) -> CheckResult:
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
            res = CheckResult(False, f"{name}: not implemented yet - replace the "
                                     "`raise NotImplementedError` with your code and run the cell again.")
            print(res.message)
            return res
        except Exception as exc:  # the learner's bug: show the last frame only
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            res = CheckResult(False, f"{name}: your function raised {last}\n  on input: "
                                     f"{describe(case)}")
            print(res.message)
            return res
        expected = reference(*case)
        if not compare(expected, got):
            res = CheckResult(False, f"{name}: wrong answer on test {i + 1} of {len(cases)}\n"
                                     f"  input:    {describe(case)}\n"
                                     f"  expected: {_short(expected)}\n  got:      {_short(got)}")
            print(res.message)
            return res
    res = CheckResult(True, f"{name}: all {len(cases)} tests passed.")
    print(res.message)
    return res


def safe_compare(compare):
    """Wrap a comparison so that a malformed answer (wrong type or shape) counts as wrong instead
    of raising inside the checker."""
    def inner(expected, got):
        try:
            return bool(compare(expected, got))
        except Exception:
            return False
    return inner


def close(expected, got, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Tensors (or numbers, or tuples of them) equal in shape and value up to tolerance."""
    if isinstance(expected, (tuple, list)):
        return (isinstance(got, (tuple, list)) and len(got) == len(expected)
                and all(close(e, g, rtol, atol) for e, g in zip(expected, got)))
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


# ==== section: hijacking (chapter 0) ====
# (owned by the hijacking (chapter 0) work; add functions between this marker and the next)


def _efficacy_reference(logp_true, logp_false):
    return float((logp_false > logp_true).double().mean())


def check_efficacy_indicator(fn) -> CheckResult:
    """Check ``fn(logp_true [n], logp_false [n]) -> float``: the efficacy score, the share of
    cases whose false target is strictly more likely than the true one."""
    g = torch.Generator().manual_seed(10)
    cases = []
    for n in (1, 5, 17, 64):
        a = -torch.rand(n, generator=g, dtype=torch.float64) * 8
        b = -torch.rand(n, generator=g, dtype=torch.float64) * 8
        cases.append((a, b))
    ties = -torch.arange(6, dtype=torch.float64)
    cases.append((ties, ties.clone()))                                   # all ties: score 0
    cases.append((ties, torch.cat([ties[:3], ties[3:] + 0.5])))          # half ties
    return run_cases("check_efficacy_indicator", fn, _efficacy_reference, cases,
                     compare=lambda e, g: close(e, g, rtol=0, atol=1e-12))


def _hijacked_reference(prompt, sentence, k):
    return (sentence + " ") * k + prompt


def check_hijacked_prompt(fn) -> CheckResult:
    """Check ``fn(prompt, sentence, k) -> str``: k copies of ``sentence``, each followed by one
    space, then the prompt (k = 0 gives the prompt itself)."""
    cases = [("The Eiffel Tower is in the city of", "The Eiffel Tower is not in Chicago.", 1),
             ("The mother tongue of Victor Hugo is", "Do not think of English.", 3),
             ("Big Ben is located in", "Do not think of Berlin.", 0),
             ("The twin city of Kyoto is", "Kyoto is not a twin city of Chicago.", 2)]
    return run_cases("check_hijacked_prompt", fn, _hijacked_reference, cases,
                     compare=lambda e, g: isinstance(g, str) and e == g)


def _mean_logprob_reference(logits, n_prompt, target_ids):
    logp = torch.log_softmax(logits.double(), dim=-1)
    rows = n_prompt - 1 + torch.arange(len(target_ids))
    return float(logp[rows, target_ids].mean())


def check_mean_logprob(fn) -> CheckResult:
    """Check ``fn(logits [L, V], n_prompt, target_ids [T]) -> float``: the mean log-probability
    of the target tokens, where ``logits`` are a causal model's outputs on the prompt (its first
    ``n_prompt`` tokens) followed by the target, so that row ``n_prompt - 1 + j`` predicts
    ``target_ids[j]``."""
    g = torch.Generator().manual_seed(11)
    cases = []
    for (n_prompt, T, V) in [(3, 1, 7), (5, 2, 11), (4, 3, 6), (1, 4, 9), (8, 2, 50)]:
        logits = torch.randn(n_prompt + T, V, generator=g, dtype=torch.float64) * 2 + 1
        cases.append((logits, n_prompt, torch.randint(V, (T,), generator=g)))
    return run_cases("check_mean_logprob", fn, _mean_logprob_reference, cases,
                     compare=lambda e, g: close(e, g, rtol=1e-6, atol=1e-8))



# ==== section: associative-memory (chapter 1) ====
# (owned by the associative-memory (chapter 1) work; add functions between this marker and the next)


def _mem_cases(seed: int = 0):
    """(keys [N, d], values [N, d']) pairs of several shapes, including square and N > d."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(1, 3, 2), (4, 4, 4), (5, 3, 7), (8, 6, 6), (3, 10, 2)]
    return [(torch.randn(N, d, generator=g, dtype=torch.float64),
             torch.randn(N, dv, generator=g, dtype=torch.float64)) for N, d, dv in shapes]


def check_store(fn) -> CheckResult:
    """Check ``fn(keys [N, d], values [N, d']) -> W [d', d]`` = sum_i v_i u_i^T."""
    from .memory import store
    return run_cases("check_store", fn, store, _mem_cases(1))


def check_crosstalk(fn) -> CheckResult:
    """Check ``fn(keys [N, d], values [N, d']) -> [N, d']`` whose row j is the cross-talk
    c_j = sum_{i != j} (u_i^T u_j) v_i."""
    from .memory import crosstalk
    return run_cases("check_crosstalk", fn, crosstalk, _mem_cases(2))


def check_recall_bound(fn) -> CheckResult:
    """Check ``fn(N, d) -> float``: the bound (N - 1) 2^(-d/2 - 1) on the probability that argmax
    recall of a stored pair fails (one-hot values, N(0, I/d) keys), on cases where it is below 1."""
    def reference(N, d):
        return (N - 1) * 2.0 ** (-d / 2 - 1)
    cases = [(2, 4), (10, 16), (100, 20), (1000, 32), (7, 9), (1, 5)]
    return run_cases("check_recall_bound", fn, reference, cases,
                     compare=lambda e, g: close(e, g, rtol=1e-6, atol=1e-12))


def check_softmax_recall(fn) -> CheckResult:
    """Check ``fn(keys [N, d], values [N, d'], queries [n, d], beta) -> [n, d']``: softmax
    retrieval sum_i softmax(beta keys q)_i v_i (one attention head / modern Hopfield update)."""
    from .memory import softmax_recall
    g = torch.Generator().manual_seed(3)
    cases = []
    for (N, d, dv, n, beta) in [(4, 3, 2, 5, 1.0), (6, 6, 6, 2, 8.0), (3, 5, 4, 1, 0.0),
                                (10, 4, 3, 7, 30.0)]:
        cases.append((torch.randn(N, d, generator=g, dtype=torch.float64),
                      torch.randn(N, dv, generator=g, dtype=torch.float64),
                      torch.randn(n, d, generator=g, dtype=torch.float64), beta))
    return run_cases("check_softmax_recall", fn, softmax_recall, cases)


# ==== section: lca-task (chapter 2) ====
# (owned by the lca-task (chapter 2) work; add functions between this marker and the next)


def check_neighbourhood_mask(fn) -> CheckResult:
    """Check ``fn(m, r) -> BoolTensor[V, V]``: ``mask[y, x]`` is True iff the latent vectors of
    tokens y and x (binary digits, most significant bit first) are at Hamming distance exactly r."""
    from .latent import hamming_sphere

    def reference(m, r):
        return hamming_sphere(r).mask(m)
    cases = [(1, 1), (2, 1), (3, 1), (3, 2), (4, 2), (5, 3), (4, 4)]
    return run_cases("check_neighbourhood_mask", fn, reference, cases,
                     compare=lambda e, g: isinstance(g, torch.Tensor) and g.shape == e.shape
                     and bool(torch.equal(g.bool(), e)))


def _lca_contexts(m: int, L: int, n: int, seed: int, noise: float = 0.0):
    from .task import TaskSpec, sample
    ctx, _ = sample(TaskSpec(m=m, L=L, noise=noise), n, seed=seed)
    return ctx


def check_bayes_posterior(fn) -> CheckResult:
    """Check ``fn(m, contexts LongTensor[n, L]) -> Tensor[n, V]``: the exact posterior over targets
    of the noise-free task with neighbourhood N_1 (uniform prior over targets)."""
    from .task import TaskSpec, bayes_posterior

    def reference(m, contexts):
        return bayes_posterior(TaskSpec(m=m, L=contexts.shape[1]), contexts)
    cases = [(m, _lca_contexts(m, L, n, seed)) for m, L, n, seed in
             [(2, 1, 3, 0), (3, 1, 4, 1), (3, 2, 6, 2), (4, 3, 8, 3), (5, 2, 8, 4), (6, 5, 6, 5)]]
    return run_cases("check_bayes_posterior", fn, reference, cases,
                     describe=lambda c: f"m={c[0]}, contexts={c[1].tolist()}")


class _SamplerExpectation:
    """What a correct sampler must return for one case (its repr is the checker's 'expected')."""

    def __init__(self, m: int, L: int, y: int):
        self.m, self.L, self.y = m, L, y

    def __repr__(self) -> str:
        return (f"LongTensor of shape ({self.L},) holding the {self.m} tokens y ^ 2^k (k < m) of "
                f"y = {self.y}, each with probability 1/{self.m}, independently")


def _sampler_matches(expected: _SamplerExpectation, got) -> bool:
    from .theory import chi_square
    m, L, y = expected.m, expected.L, expected.y
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (L,) or got.is_floating_point():
        return False
    nb = y ^ (1 << torch.arange(m))
    if not bool(torch.isin(got, nb).all()):
        return False
    idx = (got[:, None] == nb[None, :]).double().argmax(1)
    counts = torch.bincount(idx, minlength=m).double()
    if chi_square(counts, torch.full((m,), 1.0 / m, dtype=torch.float64)).p_value < 1e-4:
        return False
    # consecutive pairs: independence between positions
    pairs = torch.bincount(idx[:-1] * m + idx[1:], minlength=m * m).double()
    probs = torch.full((m * m,), 1.0 / (m * m), dtype=torch.float64)
    return chi_square(pairs, probs).p_value >= 1e-4


def check_sample_context(fn) -> CheckResult:
    """Check ``fn(m, L, y, generator) -> LongTensor[L]``: a context of the noise-free N_1 task for
    target y, i.e. L independent tokens, each uniform over the m tokens at Hamming distance 1 from
    y. The checker draws one long context per case and tests its shape, its support and (chi-square
    tests at level 1e-4 of the token frequencies and of consecutive pairs) its law."""
    def wrapped(m, L, y, seed):
        return fn(m, L, y, torch.Generator().manual_seed(seed))

    def reference(m, L, y, seed):
        return _SamplerExpectation(m, L, y)

    cases = [(2, 400, 1, 11), (3, 600, 5, 12), (5, 3000, 17, 13), (8, 8000, 200, 14)]
    return run_cases("check_sample_context", wrapped, reference, cases, compare=_sampler_matches,
                     describe=lambda c: f"m={c[0]}, L={c[1]}, y={c[2]}, "
                                        f"generator=torch.Generator().manual_seed({c[3]})")


def check_bayes_accuracy_formula(fn) -> CheckResult:
    """Check ``fn(m, L) -> float``: the Bayes-optimal accuracy of the noise-free N_1 task with ties
    broken uniformly at random (the closed form of thm-bayes-sphere)."""
    from .theory import bayes_accuracy_sphere1
    cases = [(1, 3), (2, 5), (3, 1), (3, 2), (4, 3), (5, 4), (8, 2), (8, 6), (6, 16), (16, 3)]
    return run_cases("check_bayes_accuracy_formula", fn, bayes_accuracy_sphere1, cases,
                     compare=lambda e, g: close(e, g, rtol=1e-9, atol=1e-12))


# ==== section: transformer (chapter 3) ====
# (owned by the transformer (chapter 3) work; add functions between this marker and the next)

# Exercises of chapter 3 (the one-layer transformer). Each checker calls the learner's function on
# random weights of several shapes (including L = 1, a non-symmetric W_KQ and repeated tokens)
# and compares it with a reference written from the chapter's equations.


def _tf_cases(seed: int, with_value: bool):
    import torch
    g = torch.Generator().manual_seed(seed)
    cases = []
    for V, d, n, L in ((8, 4, 5, 6), (16, 8, 7, 1), (4, 6, 3, 9), (32, 5, 4, 3)):
        W_E = torch.randn(V, d, generator=g, dtype=torch.float64)
        W_KQ = torch.randn(d, d, generator=g, dtype=torch.float64)
        ctx = torch.randint(0, V, (n, L), generator=g)
        if L > 2:
            ctx[0, 1] = ctx[0, 0]                     # a repeated token
        if with_value:
            W_V = torch.randn(d, d, generator=g, dtype=torch.float64)
            cases.append((W_E, W_KQ, W_V, ctx))
        else:
            cases.append((W_E, W_KQ, ctx))
    return cases


def _ref_attention(W_E, W_KQ, contexts):
    import torch
    X = W_E[contexts]                                 # [n, L, d]
    q = X[:, -1, :]                                   # [n, d]
    scores = torch.einsum("nd,de,nle->nl", q, W_KQ, X)
    return torch.softmax(scores, dim=-1)


def _ref_forward(W_E, W_KQ, W_V, contexts):
    import torch
    a = _ref_attention(W_E, W_KQ, contexts)
    h = torch.einsum("nl,nld->nd", a, W_E[contexts])
    return (h @ W_V.T) @ W_E.T


def check_attention(fn):
    """Check ``fn(W_E [V, d], W_KQ [d, d], contexts LongTensor[n, L]) -> Tensor[n, L]``: the
    attention weights a_l = softmax_l(W_E(x_L)^T W_KQ W_E(x_l)) of the last token."""
    return run_cases("check_attention", fn, _ref_attention, _tf_cases(31, False),
                     describe=lambda c: (f"W_E {tuple(c[0].shape)}, W_KQ {tuple(c[1].shape)}, "
                                         f"contexts {tuple(c[2].shape)}"))


def check_forward(fn):
    """Check ``fn(W_E [V, d], W_KQ [d, d], W_V [d, d], contexts LongTensor[n, L]) -> Tensor[n, V]``:
    the logits f(x) = W_E W_V h(x), h(x) = sum_l a_l W_E(x_l) (tied unembedding)."""
    return run_cases("check_forward", fn, _ref_forward, _tf_cases(32, True),
                     describe=lambda c: (f"W_E {tuple(c[0].shape)}, W_KQ/W_V {tuple(c[1].shape)}, "
                                         f"contexts {tuple(c[3].shape)}"))


def _ref_count_logits(M, contexts):
    import torch
    V = M.shape[0]
    c = torch.zeros((contexts.shape[0], V), dtype=M.dtype)
    c.scatter_add_(1, contexts, torch.ones(contexts.shape, dtype=M.dtype))
    return c @ M.T / contexts.shape[1]


def check_count_logits(fn):
    """Check ``fn(M [V, V], contexts LongTensor[n, L]) -> Tensor[n, V]``: the logits of uniform
    attention written with the count vector, f_k = (1/L) sum_x M[k, x] c_x(contexts)."""
    import torch
    g = torch.Generator().manual_seed(33)
    cases = []
    for V, n, L in ((8, 6, 5), (4, 3, 1), (16, 5, 12), (2, 4, 7)):
        M = torch.randn(V, V, generator=g, dtype=torch.float64)
        ctx = torch.randint(0, V, (n, L), generator=g)
        if L > 2:
            ctx[:, 1] = ctx[:, 0]
        cases.append((M, ctx))
    return run_cases("check_count_logits", fn, _ref_count_logits, cases,
                     describe=lambda c: f"M {tuple(c[0].shape)}, contexts {tuple(c[1].shape)}")


def check_bayes_value_matrix(fn):
    """Check ``fn(Lam [V, V], W_E [V, d]) -> W_V [d, d]`` with ``W_E W_V W_E^T = Lam`` (d >= V,
    W_E of rank V). Any such W_V passes: the checker compares ``W_E W_V W_E^T`` with Lam."""
    import torch
    g = torch.Generator().manual_seed(34)
    cases = []
    for V, d in ((4, 4), (8, 12), (16, 16), (8, 32)):
        Lam = torch.randn(V, V, generator=g, dtype=torch.float64) * 3.0
        W_E = torch.randn(V, d, generator=g, dtype=torch.float64) / d ** 0.5
        if d == V:                                    # keep the square case well conditioned
            W_E = W_E + torch.eye(V, dtype=torch.float64)
        cases.append((Lam, W_E))

    def induced(f):
        def run(Lam, W_E):
            W_V = torch.as_tensor(f(Lam, W_E), dtype=torch.float64)
            if W_V.shape != (W_E.shape[1], W_E.shape[1]):
                return W_V                            # wrong shape: reported as such
            return W_E @ W_V @ W_E.T
        return run

    def ref(Lam, W_E):
        Ep = torch.linalg.pinv(W_E)
        return Ep @ Lam @ Ep.T

    return run_cases("check_bayes_value_matrix", induced(fn), induced(ref), cases,
                     compare=lambda e, g_: close(e, g_, rtol=1e-4, atol=1e-5),
                     describe=lambda c: (f"Lam {tuple(c[0].shape)}, W_E {tuple(c[1].shape)} "
                                         "(compared: W_E W_V W_E^T)"))


# ==== section: value-matrix (chapter 4) ====
# (owned by the value-matrix (chapter 4) work; add functions between this marker and the next)


def _vm_construction_cases():
    """(W_E [V, d], mask BoolTensor[V, V]) pairs: d below, equal to and above V, sphere and
    cluster masks, and asymmetric random masks (so a transposed A is caught)."""
    from .latent import cluster, hamming_ball, hamming_sphere
    g = torch.Generator().manual_seed(41)
    cases = []
    for m, d, nb in [(2, 3, hamming_sphere(1)), (3, 8, hamming_sphere(1)), (3, 5, hamming_ball(2)),
                     (4, 6, cluster(1)), (4, 20, hamming_sphere(2))]:
        cases.append((torch.randn(2 ** m, d, generator=g, dtype=torch.float64), nb.mask(m)))
    for V, d in [(4, 4), (8, 3), (16, 7)]:
        mask = torch.rand(V, V, generator=g) < 0.4
        mask.fill_diagonal_(False)
        mask[:, 0] |= torch.arange(V) != 0          # make the mask clearly asymmetric
        cases.append((torch.randn(V, d, generator=g, dtype=torch.float64), mask))
    return cases


def check_value_matrix_construction(fn) -> CheckResult:
    """Check ``fn(W_E [V, d], mask BoolTensor[V, V]) -> Tensor[d, d]``: the construction
    ``W_V* = sum_i W_E(i) (sum_{j: mask[i, j]} W_E(j))^T`` (no normalisation)."""
    from .memory import value_matrix_construction

    def reference(W_E, mask):
        return value_matrix_construction(W_E, mask)
    return run_cases("check_value_matrix_construction", fn, reference, _vm_construction_cases(),
                     compare=lambda e, g: close(e, g, rtol=1e-6, atol=1e-9),
                     describe=lambda c: f"W_E of shape {tuple(c[0].shape)}, mask with "
                                        f"{int(c[1].sum())} True entries, "
                                        f"symmetric={bool(torch.equal(c[1], c[1].T))}")


def _vm_one_step_reference(W_E, P):
    V = W_E.shape[0]
    C = torch.eye(V, dtype=torch.float64) - 1.0 / V
    return W_E.T.double() @ C @ P.double() @ W_E.double() / V


def check_one_step_gradient(fn) -> CheckResult:
    """Check ``fn(W_E [V, d], P [V, V]) -> Tensor[d, d]``: W_V after one gradient step of size 1
    from W_V = 0 on the population cross-entropy with uniform attention, where ``P[y, x]`` is the
    probability that a context token equals x given target y (same law at every position):
    ``(1/V) W_E^T (I - 11^T/V) P W_E``."""
    g = torch.Generator().manual_seed(43)
    cases = []
    for V, d in [(2, 2), (4, 3), (8, 8), (8, 12), (16, 5)]:
        P = torch.rand(V, V, generator=g, dtype=torch.float64) ** 3
        P.fill_diagonal_(0.0)
        P = P / P.sum(1, keepdim=True)
        cases.append((torch.randn(V, d, generator=g, dtype=torch.float64), P))
    return run_cases("check_one_step_gradient", fn, _vm_one_step_reference, cases,
                     compare=lambda e, g: close(e, g, rtol=1e-6, atol=1e-10),
                     describe=lambda c: f"W_E of shape {tuple(c[0].shape)}, P of shape "
                                        f"{tuple(c[1].shape)} (rows sum to 1, zero diagonal)")


def check_sphere_error(fn) -> CheckResult:
    """Check ``fn(m, L) -> float``: the exact probability that the constructed model (orthonormal
    embeddings, uniform attention, noise-free N_1 task) errs, ties counted as errors."""
    from .theory import wv_error_exact_sphere1
    cases = [(2, 1), (2, 7), (3, 1), (3, 2), (3, 4), (4, 3), (5, 6), (6, 10), (8, 8), (8, 20),
             (12, 5)]
    return run_cases("check_sphere_error", fn, wv_error_exact_sphere1, cases,
                     compare=lambda e, g: close(e, g, rtol=1e-9, atol=1e-15))


# ==== section: geometry (chapter 5) ====
# (owned by the geometry (chapter 5) work; add functions between this marker and the next)


def _geo_embedding_cases():
    g = torch.Generator().manual_seed(505)
    cases = []
    for m, d in ((1, 3), (2, 2), (3, 5), (4, 3), (5, 8)):
        cases.append((torch.randn(2 ** m, d, generator=g, dtype=torch.float64),))
    from .theory import affine_embedding
    cases.append((affine_embedding(4, 3.0, 0.5),))
    # a non-centred embedding with a large common component (a missing mean shows up)
    cases.append((torch.randn(8, 4, generator=g, dtype=torch.float64) + 2.0,))
    return cases


def check_gram_profile(fn) -> CheckResult:
    """Check ``fn(W_E) -> Tensor[m+1]``: the mean of ``<W_E(i), W_E(j)>`` over all ordered pairs
    (i, j) of tokens at Hamming distance k, for k = 0..m (W_E is ``[V, d]``, V = 2^m, row = token,
    token ids as in ``lca.LatentSpace``; k = 0 gives the mean squared norm)."""
    from .probes import gram_profile
    return run_cases("check_gram_profile", fn, lambda W: gram_profile(W).mean,
                     _geo_embedding_cases(),
                     describe=lambda c: f"W_E of shape {tuple(c[0].shape)}")


def check_krawtchouk(fn) -> CheckResult:
    """Check ``fn(k, w, m) -> int``: the Krawtchouk number
    ``K_k(w) = sum_j (-1)^j C(w, j) C(m - w, k - j)``."""
    from .theory import krawtchouk
    cases = [(0, 0, 1), (1, 0, 3), (0, 2, 3), (1, 1, 1), (2, 1, 4), (1, 3, 4), (3, 2, 6),
             (4, 5, 7), (7, 7, 7), (2, 6, 8), (5, 3, 9)]
    return run_cases("check_krawtchouk", fn, krawtchouk, cases,
                     compare=_geo_same_number,
                     describe=lambda c: f"k={c[0]}, w={c[1]}, m={c[2]}")


def _geo_same_number(expected, got) -> bool:
    try:
        return abs(float(got) - float(expected)) < 1e-9
    except (TypeError, ValueError, RuntimeError):
        return False


def check_hamming_spectrum(fn) -> CheckResult:
    """Check ``fn(g, m) -> Tensor[m+1]``: the eigenvalue ``lambda_w`` (w = 0..m) of the V x V
    matrix ``G[i, j] = g[D_H(i, j)]`` on the Walsh characters of weight w, for a profile ``g``
    given as a float64 tensor of m+1 values."""
    from .theory import hamming_kernel_spectrum
    g = torch.Generator().manual_seed(506)
    cases = [(torch.tensor([1.0, 0.5], dtype=torch.float64), 1),
             (torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64), 2),
             (torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64), 3)]
    for m in (3, 4, 6):
        cases.append((torch.randn(m + 1, generator=g, dtype=torch.float64), m))
    cases.append((torch.tensor([(-1.0) ** k for k in range(6)], dtype=torch.float64), 5))
    return run_cases("check_hamming_spectrum", fn,
                     lambda prof, m: hamming_kernel_spectrum(prof, m)[0], cases,
                     describe=lambda c: f"g={[round(float(x), 4) for x in c[0]]}, m={c[1]}")


def check_affine_embedding(fn) -> CheckResult:
    """Check ``fn(m, b0, b1) -> Tensor[V, r]`` with r <= m + 1: embeddings (row z = token z)
    whose Gram matrix is ``b0 - b1 D_H`` (for b1 >= 0 and b0 >= m b1 / 2). Any rotation of a right
    answer is right too: only the Gram matrix and the width are checked."""
    from .theory import affine_gram

    def gram_of(m, b0, b1):
        E = torch.as_tensor(fn(m, b0, b1), dtype=torch.float64)
        if E.ndim != 2 or E.shape[0] != 2 ** m:
            return f"an array of shape {tuple(E.shape)}, not [V={2 ** m}, r]"
        if E.shape[1] > m + 1:
            return f"{E.shape[1]} columns, more than m + 1 = {m + 1}"
        return E @ E.T

    cases = [(1, 1.0, 1.0), (2, 1.0, 1.0), (3, 2.0, 0.5), (4, 1.0, 0.5), (4, 5.0, 0.0),
             (5, 4.0, 1.0), (6, 3.0, 1.0)]
    return run_cases("check_affine_embedding", gram_of, affine_gram, cases,
                     describe=lambda c: f"m={c[0]}, b0={c[1]}, b1={c[2]} (Gram matrix compared)")


# ==== section: attention (chapter 6) ====
# (owned by the attention (chapter 6) work; add functions between this marker and the next)




def _att_reference_mass(attention, contexts, m, k):
    cl = contexts >> (m - k)
    same = (cl == cl[:, -1:]).to(attention.dtype)
    return float((attention * same).sum(1).mean())


def _att_cases_mass():
    cases = []
    for i, (m, k, n, L) in enumerate([(4, 1, 5, 6), (6, 2, 7, 9), (5, 3, 4, 3), (8, 2, 6, 12),
                                      (3, 2, 3, 1)]):
        g = torch.Generator().manual_seed(100 + i)
        ctx = torch.randint(0, 2 ** m, (n, L), generator=g)
        att = torch.softmax(torch.randn(n, L, generator=g, dtype=torch.float64) * 2, dim=1)
        cases.append((att, ctx, m, k))
    return cases


def check_attention_mass_by_cluster(fn) -> CheckResult:
    """Check ``fn(attention [n, L], contexts [n, L], m, k) -> float``: the mean (over contexts)
    attention mass on positions whose token shares its first k latent bits with the query (the
    last token), the query's own position included."""
    return run_cases("attention_mass_by_cluster", fn, _att_reference_mass, _att_cases_mass(),
                     compare=safe_compare(lambda e, g: close(e, float(g), rtol=1e-6, atol=1e-9)),
                     describe=lambda c: f"attention of shape {tuple(c[0].shape)}, m={c[2]}, "
                                        f"k={c[3]}")


def _att_reference_grad(W_E, W_V, contexts, targets):
    from .theory import grad_WKQ_at_zero_sample
    return grad_WKQ_at_zero_sample(W_E, W_V, contexts, targets)


def _att_cases_grad():
    cases = []
    for i, (V, d, n, L) in enumerate([(4, 3, 5, 3), (8, 5, 9, 4), (8, 8, 16, 6), (16, 6, 12, 2)]):
        g = torch.Generator().manual_seed(200 + i)
        W_E = torch.randn(V, d, generator=g, dtype=torch.float64)
        W_V = torch.randn(d, d, generator=g, dtype=torch.float64)
        ctx = torch.randint(0, V, (n, L), generator=g)
        y = torch.randint(0, V, (n,), generator=g)
        cases.append((W_E, W_V, ctx, y))
    return cases


def check_kq_gradient(fn) -> CheckResult:
    """Check ``fn(W_E [V, d], W_V [d, d], contexts [n, L], targets [n]) -> Tensor[d, d]``: the
    gradient of the mean cross-entropy with respect to W_KQ at W_KQ = 0, from the closed form
    ``-W_E^T T W_E`` with ``T[i, j] = mean over examples of 1{x_L = i} c_j (r_j - rbar)``."""
    return run_cases("kq_gradient", fn, _att_reference_grad, _att_cases_grad(),
                     compare=safe_compare(lambda e, g: close(e, g, rtol=1e-5, atol=1e-9)),
                     describe=lambda c: f"V={c[0].shape[0]}, d={c[0].shape[1]}, "
                                        f"contexts of shape {tuple(c[2].shape)}")


def _att_reference_cluster(m, k, L, noise):
    from .theory import kq_cluster_closed_form
    out = kq_cluster_closed_form(m, k, L, noise)
    return (out["self"], out["same"], out["cross"])


def check_kq_cluster_entries(fn) -> CheckResult:
    """Check ``fn(m, k, L, noise) -> (self, same, cross)``: the first-order gradient-table entries
    of the cluster task for a query paired with itself, with another token of its cluster, and
    with a token of another cluster."""
    cases = [(4, 1, 5, 0.5), (6, 2, 8, 0.25), (8, 2, 32, 0.5), (5, 3, 3, 0.9), (6, 1, 2, 0.3)]
    return run_cases("kq_cluster_entries", fn, _att_reference_cluster, cases,
                     compare=safe_compare(lambda e, g: close(e, tuple(float(v) for v in g),
                                                          rtol=1e-6, atol=1e-12)),
                     describe=lambda c: f"m={c[0]}, k={c[1]}, L={c[2]}, noise={c[3]}")


# ==== section: hijack-in-model (chapter 7) ====
# (owned by the hijack-in-model (chapter 7) work; add functions between this marker and the next)




def _hj_reference_share(contexts, mask):
    n, L = contexts.shape
    V = mask.shape[0]
    c = torch.zeros((n, V), dtype=torch.float64)
    c.scatter_add_(1, contexts, torch.full(contexts.shape, 1.0 / L, dtype=torch.float64))
    return c @ mask.double().T


def check_share_logits(fn) -> CheckResult:
    """Check ``fn(contexts [n, L], mask [V, V]) -> Tensor[n, V]``: entry (i, k) is the share of
    context i's tokens that lie in N(k), where ``mask[k, x]`` says whether x is in N(k)."""
    cases = []
    for i, (V, n, L) in enumerate([(4, 3, 5), (8, 6, 7), (16, 5, 3), (8, 2, 1)]):
        g = torch.Generator().manual_seed(300 + i)
        mask = torch.rand(V, V, generator=g) < 0.35      # not symmetric: a transpose shows
        mask.fill_diagonal_(False)
        cases.append((torch.randint(0, V, (n, L), generator=g), mask))
    return run_cases("share_logits", fn, _hj_reference_share, cases,
                     compare=safe_compare(lambda e, g: close(e, g, rtol=1e-6, atol=1e-9)),
                     describe=lambda c: f"contexts of shape {tuple(c[0].shape)}, V={c[1].shape[0]}")


def _hj_reference_threshold(D, D_hijack, overlap):
    from .theory import hijack_threshold
    return hijack_threshold(D, D_hijack, overlap)


def check_hijack_threshold(fn) -> CheckResult:
    """Check ``fn(D, D_hijack, overlap) -> float``: the hijack share at which the expected logit
    of the hijack target overtakes the true target's (N(y) of size D, N(y') of size D_hijack,
    sharing ``overlap`` tokens)."""
    cases = [(6, 6, 0), (6, 6, 2), (6, 21, 2), (21, 6, 2), (10, 4, 3), (5, 9, 0), (8, 8, 7)]
    return run_cases("hijack_threshold", fn, _hj_reference_threshold, cases,
                     compare=safe_compare(lambda e, g: close(e, float(g), rtol=1e-9, atol=1e-12)),
                     describe=lambda c: f"D={c[0]}, D_hijack={c[1]}, overlap={c[2]}")


def _hj_reference_flip(rho, L):
    from .theory import hijack_binomial_flip
    return float(hijack_binomial_flip(rho, L)[0])


def check_flip_probability(fn) -> CheckResult:
    """Check ``fn(rho, L) -> float``: the probability that more than half of L independent
    positions hold hijack tokens, each with probability rho (a tie is not a flip)."""
    cases = [(0.5, 1), (0.3, 4), (0.5, 4), (0.6, 15), (0.45, 16), (0.9, 7), (0.5, 2)]
    return run_cases("flip_probability", fn, _hj_reference_flip, cases,
                     compare=safe_compare(lambda e, g: close(e, float(g), rtol=1e-7, atol=1e-10)),
                     describe=lambda c: f"rho={c[0]}, L={c[1]}")


# ==== end of sections ====
