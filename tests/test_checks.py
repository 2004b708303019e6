"""Tests of lca.checks, the exercise checkers' machinery: a right answer passes, a wrong one fails
with a message naming the input, a stub is "not implemented yet", a crash shows its last line."""

import torch

from lca.checks import CheckResult, close, run_cases, safe_compare


def reference(x, k):
    return x * k


CASES = [(torch.arange(3.0), 2), (torch.ones(2, 2), -1), (torch.tensor([0.5]), 0)]


def test_a_correct_function_passes(capsys):
    res = run_cases("check_scale", lambda x, k: k * x, reference, CASES)
    assert isinstance(res, CheckResult) and res and res.passed
    assert repr(res) == "check_scale: all 3 tests passed."
    assert capsys.readouterr().out.strip() == repr(res)  # the message is printed too


def test_a_wrong_function_fails_naming_the_input():
    res = run_cases("check_scale", lambda x, k: x + k, reference, CASES)
    assert not res
    assert "wrong answer on test 1 of 3" in res.message
    assert "tensor of shape (3,)" in res.message and "[0.0, 1.0, 2.0]" in res.message
    assert "expected" in res.message and "got" in res.message
    described = run_cases(
        "check_scale",
        lambda x, k: x + k,
        reference,
        CASES,
        describe=lambda c: f"x of shape {tuple(c[0].shape)}, k={c[1]}",
    )
    assert "input:    x of shape (3,), k=2" in described.message


def test_a_stub_is_not_implemented_yet():
    def stub(x, k):
        raise NotImplementedError

    res = run_cases("check_scale", stub, reference, CASES)
    assert not res and "not implemented yet" in res.message


def test_a_crash_shows_its_last_line_and_the_input():
    res = run_cases("check_scale", lambda x, k: x[10], reference, CASES)
    assert not res and "your function raised IndexError" in res.message
    assert "on input:" in res.message


def test_close_and_safe_compare():
    assert close(torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-9])
    assert not close(torch.tensor([1.0, 2.0]), torch.tensor([1.0]))  # shape
    assert close((1.0, torch.zeros(2)), (1.0, torch.zeros(2)))
    assert not close((1.0, 2.0), (1.0,))
    assert close("a", "a") and not close("a", "b")
    strict = safe_compare(lambda e, g: bool(torch.equal(e, g)))
    assert strict(torch.zeros(2), torch.zeros(2))
    assert strict(torch.zeros(2), "not a tensor") is False  # no exception


# ---------------------------------------------------------------- adversarial solutions (#16 item 3)


class AlwaysEqual:
    def __eq__(self, other):
        return True

    __hash__ = None


class TensorEqual:
    def __eq__(self, other):
        return torch.ones(3, dtype=torch.bool)

    __hash__ = None


class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


class SlyStr(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


def test_a_solution_that_edits_its_inputs_in_place_fails():
    from lca.associative_memory import check_crosstalk, crosstalk

    def sly(keys, values):
        keys.div_(keys.norm(dim=1, keepdim=True))  # the reference used to see these keys
        G = keys @ keys.T
        return (G - torch.diag(torch.diagonal(G))) @ values

    assert check_crosstalk(crosstalk)
    assert not check_crosstalk(sly)


def test_answers_of_the_wrong_type_fail_without_crashing_the_checker(capsys):
    from lca.associative_memory import check_crosstalk
    from lca.hijacking import _hijacked_reference, check_hijacked_prompt
    from lca.lca_task import check_sphere2_pair_accuracy

    assert not check_crosstalk(lambda k, v: AlwaysEqual())
    assert check_hijacked_prompt(_hijacked_reference)
    res = check_hijacked_prompt(lambda p, s, k: SlyStr("anything"))
    assert not res and "expected a str, got a SlyStr" in res.message
    res = check_sphere2_pair_accuracy(lambda m: TensorEqual())
    assert not res and "expected a number" in res.message
    res = check_sphere2_pair_accuracy(lambda m: BadRepr())
    assert not res and "repr failed" in res.message
    # a comparison that returns a tensor instead of a bool is a wrong answer, not a crash
    res = run_cases(
        "check_odd", lambda x: TensorEqual(), lambda x: AlwaysEqual(), [(1,)], compare=lambda e, g: g == e
    )
    assert not res and "could not be compared" in res.message

    # an exception whose message cannot be printed
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError

    def raises(x, k):
        raise Unprintable

    res = run_cases("check_scale", raises, reference, CASES)
    assert not res and "Unprintable" in res.message
    capsys.readouterr()


def test_an_infinite_loop_is_stopped():
    def forever(x, k):
        while True:
            pass

    res = run_cases("check_scale", forever, reference, CASES, time_limit=0.5)
    assert not res and "more than 0.5 s" in res.message
    # the alarm is cleared afterwards: a slow-but-finite later call is not interrupted
    import time

    assert run_cases(
        "check_scale", lambda x, k: (time.sleep(0.6), x * k)[1], reference, CASES[:1], time_limit=5
    )


def test_a_non_function_is_refused():
    res = run_cases("check_scale", 3, reference, CASES)
    assert not res and "expected a function" in res.message


def test_seed_problem_catches_samplers_that_ignore_or_misuse_the_generator():
    from lca.checks import seed_problem

    def good(g):
        return torch.randint(0, 10, (50,), generator=g)

    def ignores(g):
        return torch.arange(50)

    def global_rng(g):
        return torch.randint(0, 10, (50,))

    assert seed_problem(good) is None
    assert "ignores" in seed_problem(ignores)
    assert "same generator seed" in seed_problem(global_rng)


def test_type_problem_accepts_reasonable_answers():
    from lca.checks import type_problem

    assert type_problem(torch.zeros(2), [0.0, 0.0]) is None
    assert type_problem(0.5, torch.tensor(0.5)) is None
    assert type_problem(0.5, torch.tensor([0.5])) is None
    assert type_problem(3, 3.0) is None
    assert type_problem((1.0, torch.zeros(2)), [1.0, torch.zeros(2)]) is None
    assert type_problem(True, torch.tensor(True)) is None
    assert type_problem(0.5, True) is not None  # a bool is no probability
    assert type_problem((1.0, 2.0), (1.0,)) is not None


def test_a_sampler_with_the_right_law_but_the_global_generator_fails():
    from lca.lca_task import check_sample_context

    def right(m, L, y, generator):
        return y ^ (1 << torch.randint(0, m, (L,), generator=generator))

    def global_rng(m, L, y, generator):
        return y ^ (1 << torch.randint(0, m, (L,)))

    assert check_sample_context(right)
    res = check_sample_context(global_rng)
    assert not res and "same generator seed" in res.message


def test_a_notebook_shows_the_message_once():
    """The checker prints its message; displaying the returned result in IPython adds nothing."""
    from IPython.core.interactiveshell import InteractiveShell

    res = CheckResult(True, "check_x: all 1 tests passed.")
    shell = InteractiveShell.instance()
    fmt = shell.display_formatter.format(res)
    assert fmt == ({}, {}) or fmt[0] == {}
    assert repr(res) == "check_x: all 1 tests passed."


def test_run_cases_takes_its_tolerances():
    """Without a comparison of its own, a checker compares with ``close`` at its rtol and atol."""
    cases = [(1.0,), (2.0,)]

    def ref(x):
        return x / 3

    def near(x):
        return x / 3 + 1e-9

    assert run_cases("check_third", near, ref, cases, report=False, rtol=0, atol=1e-8)
    res = run_cases("check_third", near, ref, cases, report=False, rtol=0, atol=1e-12)
    assert not res and "wrong answer on test 1" in res.message
