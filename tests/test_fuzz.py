"""The public API under bad input (issue #16): every public function and class of the engine and of
the synthetic chapters' modules is called with its valid baseline arguments, one argument replaced
at a time by a bad value (a wrong type, a str or bool for a number or flag, NaN and infinity, a
negative or huge size, a transposed, flattened or cut tensor), each call in a worker process with
an address-space cap and a time limit (tools/fuzz_report.py). Every call must either raise a
ValueError or TypeError that names the parameter, or return (for mutations that are still valid
input, such as a list where a tensor is expected); a bad value that is plainly invalid (a str, a
bool where a number is meant, NaN) must never be accepted. No call may hang, exhaust memory or
fail with another exception.

The language-model modules need a loaded model for every call; their bad-input tests are in their
own test files (test_llm.py, test_scoring.py, test_counterfact.py, test_hijacking.py).
"""

from __future__ import annotations

import importlib.util

import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("fuzz_report", ROOT / "tools" / "fuzz_report.py")
fuzz_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_report)


# A hang is a call that never returns. The slowest valid call takes under 2 s here (the size caps
# keep every accepted size that cheap: ``python tools/fuzz_report.py`` lists the slowest calls), so
# the limit leaves a wide margin for a slower CI machine running three environments side by side;
# it is a hang detector, not a speed test (speed is measured in bench/).
HANG_LIMIT_S = 180.0


@pytest.fixture(scope="module")
def records():
    return fuzz_report.fuzz(timeout=HANG_LIMIT_S)


def _offenders(records, module):
    return [
        f"{r['outcome']}: {r['module']}.{r['name']}({r['param']}={r['label']}): {r['error'][:160]}"
        for r in records
        if r["module"] == module and r["outcome"] not in ("clear", "returned")
    ]


@pytest.mark.parametrize("module", fuzz_report.MODULES)
def test_bad_input_gets_a_clear_error(records, module):
    calls = [r for r in records if r["module"] == module]
    assert calls, f"the fuzzer made no call into lca.{module}"
    bad = _offenders(records, module)
    assert not bad, f"{len(bad)} of {len(calls)} bad calls into lca.{module}:\n" + "\n".join(bad[:30])


def test_the_fuzzer_sees_a_bad_function():
    """The harness itself can fail: a function that accepts a str as a number, one that raises a
    vague error and one that hangs are each reported as such."""
    assert fuzz_report.classify_call(lambda m: None, {"m": "3"}, "m", invalid=True) == "invalid-returned"
    assert fuzz_report.classify_call(_vague, {"m": 3}, "m", invalid=False) == "vague"
    assert fuzz_report.classify_call(_clear, {"m": 3}, "m", invalid=False) == "clear"
    assert fuzz_report.classify_call(_other, {"m": 3}, "m", invalid=False) == "other"
    hung = fuzz_report.fuzz(timeout=1.0, cases=[(fuzz_report.PROBE, "sleep", None, 0, "slow", False)])
    assert [r["outcome"] for r in hung] == ["hang"]


def _vague(m):
    raise ValueError("something is wrong")


def _clear(m):
    raise ValueError(f"m must be in 1..16, got {m}")


def _other(m):
    raise KeyError(m)
