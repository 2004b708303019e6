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
