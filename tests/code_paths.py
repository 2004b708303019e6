"""CPU code paths under which the chapters are re-executed (the reader's CPU is not ours).

A trained network's weights and a language model's log-probabilities depend on the order in which
floating-point sums are taken, and that order depends on the CPU's vector width and the math
library's kernels. PyTorch's own kernels honour ``ATEN_CPU_CAPABILITY``, MKL's BLAS honours
``MKL_ENABLE_INSTRUCTIONS`` and oneDNN honours ``ONEDNN_MAX_CPU_ISA``, so one machine can imitate
the code paths of older or smaller CPUs. ``pytest --code-path NAME`` (or ``LCA_CODE_PATH=NAME``)
sets these variables for every notebook kernel that nbval starts; ``make test`` re-executes the
chapters under ``baseline``, ``make test-portability`` under every path below.

What changes the numbers on the course's machine (AMD EPYC with AVX-512) is measured in the
closing note of the portability issue and in the README's contributing section.
"""

from __future__ import annotations

import os

#: name -> environment variables. ``native`` sets nothing.
CODE_PATHS: dict[str, dict[str, str]] = {
    "native": {},
    # the oldest path: PyTorch's scalar kernels and MKL's SSE4.2 code (a CPU without AVX)
    "baseline": {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
    },
    # a laptop or cloud CPU with AVX2 but no AVX-512 (many of Colab's machines, most laptops)
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}

#: the variables a code path may set; all are cleared first so that paths do not mix
VARIABLES = sorted({key for env in CODE_PATHS.values() for key in env})


def environment(name: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: ``os.environ``) with the code path ``name`` applied."""
    if name not in CODE_PATHS:
        raise ValueError(f"code path must be one of {sorted(CODE_PATHS)}, got {name!r}")
    env = dict(os.environ if base is None else base)
    for key in VARIABLES:
        env.pop(key, None)
    env.update(CODE_PATHS[name])
    return env


def apply(name: str) -> None:
    """Apply the code path ``name`` to this process's environment (inherited by kernels)."""
    env = environment(name)
    for key in VARIABLES:
        if key in env:
            os.environ[key] = env[key]
        else:
            os.environ.pop(key, None)
