"""Tests of lca.report: how exact quantities, estimates and floating-point residuals print."""

import math

import pytest

from lca.report import bound, exact, pm, sig


def test_bound_hides_the_digits_of_noise_and_shows_a_failure():
    assert bound(3e-17, 1e-12) == "< 1e-12"
    assert bound(-3e-17, 1e-12) == "< 1e-12"  # the sign does not matter
    assert bound(2e-13) == bound(7e-11, 1e-10) == "< 1e-10"
    text = bound(0.5, 1e-10)
    assert text.startswith("NOT < 1e-10") and "5.000e-01" in text
    assert bound(float("nan")).startswith("NOT")
    with pytest.raises(ValueError, match="tol"):
        bound(0.0, 0.0)
    with pytest.raises(TypeError, match="residual"):
        bound("small")


def test_exact_and_sig():
    assert exact(1 / 3) == "0.3333333333"
    assert exact(2.0) == "2" and exact(math.pi, 3) == "3.14"
    assert sig(0.84213) == "0.84" and sig(0.0012345, 3) == "0.00123"
    assert sig(1234.5) == "1200" and sig(0.0) == "0"
    with pytest.raises(ValueError, match="digits"):
        exact(1.0, 0)
    with pytest.raises(ValueError, match="digits"):
        sig(1.0, 7)
    with pytest.raises(TypeError, match="x"):
        sig(True)


def test_pm_rounds_to_the_leading_digit_of_the_standard_error():
    assert pm(0.8437, 0.012) == "0.84 ± 0.01"
    assert pm(0.8437, 0.0012) == "0.844 ± 0.001"
    assert pm(12.3, 2.5) == "12 ± 2"
    assert pm(0.5, 0) == "0.5 ± 0"
    with pytest.raises(ValueError, match="se"):
        pm(0.5, -0.1)
