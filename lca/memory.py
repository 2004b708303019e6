"""Associative memories: outer-product storage and recall, capacity with random embeddings, and
the value-matrix construction W_V* for any neighbourhood."""

from __future__ import annotations


# ==== section: associative-memory (chapter 1) ====
# (owned by the associative-memory (chapter 1) work; add functions between this marker and the next)


# ==== section: value-matrix (chapter 4) ====
# (owned by the value-matrix (chapter 4) work; add functions between this marker and the next)

# ==== end of sections ====
