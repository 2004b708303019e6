"""Measurements on trained models: attention by cluster, embedding Gram vs Hamming, spectra and
eigen-gaps, W_V replacement and angles, flip curves."""

from __future__ import annotations


# ==== section: transformer (chapter 3) ====
# (owned by the transformer (chapter 3) work; add functions between this marker and the next)


# ==== section: value-matrix (chapter 4) ====
# (owned by the value-matrix (chapter 4) work; add functions between this marker and the next)


# ==== section: geometry (chapter 5) ====
# (owned by the geometry (chapter 5) work; add functions between this marker and the next)


# ==== section: attention (chapter 6) ====
# (owned by the attention (chapter 6) work; add functions between this marker and the next)


# ==== section: hijack-in-model (chapter 7) ====
# (owned by the hijack-in-model (chapter 7) work; add functions between this marker and the next)

# ==== end of sections ====
