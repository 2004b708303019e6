"""Closed forms: recall-error bounds, the value-matrix error bound, the one-step gradient of W_V
and W_KQ at zero, Gram-vs-Hamming profiles, Krawtchouk spectra, hijack thresholds."""

from __future__ import annotations


# ==== section: associative-memory (chapter 1) ====
# (owned by the associative-memory (chapter 1) work; add functions between this marker and the next)


# ==== section: lca-task (chapter 2) ====
# (owned by the lca-task (chapter 2) work; add functions between this marker and the next)


# ==== section: value-matrix (chapter 4) ====
# (owned by the value-matrix (chapter 4) work; add functions between this marker and the next)


# ==== section: geometry (chapter 5) ====
# (owned by the geometry (chapter 5) work; add functions between this marker and the next)


# ==== section: attention (chapter 6) ====
# (owned by the attention (chapter 6) work; add functions between this marker and the next)


# ==== section: hijack-in-model (chapter 7) ====
# (owned by the hijack-in-model (chapter 7) work; add functions between this marker and the next)

# ==== end of sections ====
