"""Chapter 4's trained figures at longer budgets and with 5 seeds.

Writes ``lca/data/value_matrix_budget.json`` (package data: the chapter loads it on Colab too).

The chapter trains its figures for 300 Adam steps (a budget that fits its one-minute limit) with 3
seeds. This script checks whether their conclusions survive 4x and 16x that budget and 5 seeds
(issue #13, "Budgets and robustness"), with exactly the chapter's settings otherwise:

- ``fig3a``: trained W_V against W_V fixed to the identity (the paper's Figure 3a), N_1 with noise
  0.5, m = 5..8, L = 64 and 128, d = 16, batch 128, learning rate 0.01; one run of 4,800 steps per
  (L, m) evaluated every 300 steps on the chapter's 2,048 evaluation contexts. The learning rate is
  constant, so the record at step s is the accuracy of an s-step run (same seeds, same batches).
- ``plain``: the same on the noise-free N_1 task at L = 64, to 1,200 steps.
- ``replacement``: trained W_V against the construction from the trained embeddings, m = 5..8,
  d = 4..64, L = 64, noise 0.5, after 300 and 1,200 steps: accuracies (trained and replaced, 2,048
  contexts, seed 77), Frobenius cosines (full matrices, rank-m parts, rank-r parts with r the
  measured rank of W_V*), the measured rank, the normalised singular values of both matrices and
  the Walsh-weight shares of the trained embeddings.

    python bench/04_budget.py            # about 6 minutes of one CPU thread (375 s measured)
    python bench/04_budget.py --quick    # a smoke run (seconds), written to --out only if given

``tests/test_value_matrix.py`` recomputes a sample of the committed file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import lca
from lca import value_matrix
from lca.train import TrainConfig, sweep

OUT = Path(__file__).resolve().parent.parent / "lca" / "data" / "value_matrix_budget.json"
MS = (5, 6, 7, 8)
SEEDS = (0, 1, 2, 3, 4)
NOISE = 0.5
D_FIG = 16
BATCH = 128
LR = 0.01
N_EVAL = 2048
VARIANTS = {"trained W_V": {}, "W_V = I (frozen)": {"train_V": False, "WV_init": "identity"}}
D_REP = (4, 8, 16, 32, 64)


def ablation_run(spec: lca.TaskSpec, steps: int, every: int, seeds=SEEDS, d: int = D_FIG) -> dict:
    """Both variants x seeds as one ensemble: ``{"steps": [...], variant: [[acc per seed] per
    record]}`` (the chapter's ``wv_ablation`` with an evaluation every ``every`` steps)."""
    cfg = TrainConfig(
        task=spec, d=d, steps=steps, batch_size=BATCH, lr=LR, eval_every=every, n_eval=N_EVAL, device="cpu"
    )
    res = sweep(cfg, seeds=seeds, variants=VARIANTS, progress=False)
    out = {"steps": list(res.history["step"])}
    for v in VARIANTS:
        out[v] = [[a for (lab, _), a in zip(res.labels, rec) if lab == v] for rec in res.history["accuracy"]]
    return out


def replacement_run(m: int, d: int, steps: int, seeds=SEEDS) -> dict:
    """The chapter's replacement probe on one (m, d, budget), per seed."""
    spec = lca.TaskSpec(m, 64, noise=NOISE)
    cfg = TrainConfig(
        task=spec, d=d, steps=steps, batch_size=BATCH, lr=LR, eval_every=0, n_eval=N_EVAL, device="cpu"
    )
    model = sweep(cfg, seeds=seeds, progress=False).model
    swapped = value_matrix.wv_replacement(model, spec, n=2048, seed=77)
    cos = value_matrix.wv_alignment(model, spec, ranks=(None, m))
    spectra = value_matrix.wv_spectra(model, spec)
    keep = min(d, 2 * m + 4)
    return {
        "trained": swapped["trained"],
        "constructed": swapped["constructed"],
        "cos_full": [round(c, 6) for c in cos[None]],
        "cos_rank_m": [round(c, 6) for c in cos[m]],
        "cos_measured_rank": [round(c, 6) for c in spectra["cosine"]],
        "measured_rank": spectra["rank"],
        "spectrum_constructed": [[round(x, 4) for x in s[:keep].tolist()] for s in spectra["constructed"]],
        "spectrum_trained": [[round(x, 4) for x in s[:keep].tolist()] for s in spectra["trained"]],
        "walsh_shares": [
            [round(x, 4) for x in w.tolist()] for w in value_matrix.walsh_weight_shares(model.W_E)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny budgets, 2 seeds")
    parser.add_argument("--out", type=Path, default=None, help=f"output file (default {OUT.name})")
    args = parser.parse_args()
    torch.set_num_threads(1)
    quick = args.quick
    seeds = SEEDS[:2] if quick else SEEDS
    long_steps, every, rep_steps = (40, 20, (20, 40)) if quick else (4800, 300, (300, 1200))
    ms = MS[:1] if quick else MS
    t0 = time.process_time()
    result = {
        "settings": {
            "ms": list(ms),
            "seeds": list(seeds),
            "noise": NOISE,
            "d": D_FIG,
            "batch": BATCH,
            "lr": LR,
            "n_eval": N_EVAL,
            "d_rep": list(D_REP),
            "rep_steps": list(rep_steps),
            "significant": value_matrix.SIGNIFICANT,
        },
        "fig3a": {},
        "plain": {},
        "replacement": {},
    }
    for L in (64, 128):
        for m in ms:
            result["fig3a"][f"L={L},m={m}"] = ablation_run(
                lca.TaskSpec(m, L, noise=NOISE), long_steps, every, seeds
            )
    for m in ms:
        result["plain"][f"L=64,m={m}"] = ablation_run(lca.TaskSpec(m, 64), long_steps // 4, every, seeds)
    for steps in rep_steps:
        for m in ms:
            for d in D_REP:
                result["replacement"][f"steps={steps},m={m},d={d}"] = replacement_run(m, d, steps, seeds)
    result["cpu_seconds"] = round(time.process_time() - t0, 1)
    result["torch"] = torch.__version__
    out = args.out or (None if quick else OUT)
    if out is not None:
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"cpu_seconds": result["cpu_seconds"], "out": str(out)}))


if __name__ == "__main__":
    main()
