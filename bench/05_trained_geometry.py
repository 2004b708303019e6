"""Chapter 5's budget-and-factor study: how Hamming-like trained embeddings are, and why the
trained-W_V ones are not. Writes ``lca/data/trained_geometry.json``, which the chapter loads.

For every setting below, 5 seeds of each variant (trained W_V, and W_V fixed to the identity)
are trained as one ensemble (Adam, W_KQ trained from 0, batch 256, fresh batches) at 800 steps
(the chapter's budget) and at 3,200 steps (4x); the setting of the chapter's figure also at 200.
Each trained member is summarised by ``lca.embeddings.geometry_summary``: the split of the Gram
matrix's variance over pairs into character weights and a non-Hamming remainder, the R^2 of the
affine and of the parity-twisted affine law (over the pairs and over the mean profile), the same
remainder for the association matrix, the mean profile, the spectrum of W_E^T W_E, and how
indefinite the association matrix is; plus the accuracy on 2,048 fixed evaluation contexts at
eight points of training.

    python bench/05_trained_geometry.py                 # everything (about half an hour, one busy thread)
    python bench/05_trained_geometry.py --only "d = 16"      # one setting, printed, nothing written

tests/test_embeddings.py retrains one stored sample and compares it with the file.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import lca
from lca import embeddings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2, 3, 4)
BUDGETS = (800, 3200)
FIGURE = "N_1, d = 32 (the figure)"
SETTINGS = {
    FIGURE: {"m": 8, "d": 32},
    "d = 16": {"m": 8, "d": 16},
    "d = 64": {"m": 8, "d": 64},
    "lr = 0.003": {"m": 8, "d": 32, "lr": 0.003},
    "lr = 0.03": {"m": 8, "d": 32, "lr": 0.03},
    "noise 0.5": {"m": 8, "d": 32, "noise": 0.5},
    "L = 16": {"m": 8, "d": 32, "L": 16},
    "untied unembedding": {"m": 8, "d": 32, "tied": False},
    "radius-2 ball": {"m": 8, "d": 32, "neighbourhood": "ball2"},
    "m = 7, d = 32": {"m": 7, "d": 32},
    "m = 7, d = 64": {"m": 7, "d": 64},
    "m = 6, d = 32": {"m": 6, "d": 32},
    "m = 5, d = 16": {"m": 5, "d": 16},
}
EXTRA_BUDGETS = {FIGURE: (200,)}


def rounded(x, digits: int = 4):
    """Floats at ``digits`` significant digits (lists recursively), to keep the file small."""
    if isinstance(x, list):
        return [rounded(v, digits) for v in x]
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    return x


def run_setting(name: str, steps: int, seeds=SEEDS, device: str = "cpu") -> list[dict]:
    """Train one setting at one budget (both variants, all seeds) and summarise every member."""
    cfg = embeddings.geometry_config(SETTINGS[name], steps, device=device)
    res = lca.sweep(cfg, seeds=seeds, variants=embeddings.GEOMETRY_VARIANTS, progress=False)
    rows = []
    for i, (summary, (variant, seed)) in enumerate(zip(embeddings.geometry_summary(res.model), res.labels)):
        rows.append(
            {
                "setting": name,
                "steps": steps,
                "variant": variant,
                "seed": seed,
                "accuracy": res.history["accuracy"][-1][i],
                "accuracy_curve": [a[i] for a in res.history["accuracy"]],
                **{k: rounded(v) for k, v in summary.items()},
            }
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="run one setting and print it (nothing is written)")
    ap.add_argument("--out", type=Path, default=embeddings.GEOMETRY_SWEEP)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [args.only] if args.only else list(SETTINGS)
    runs, t_all = [], time.perf_counter()
    for name in names:
        for steps in EXTRA_BUDGETS.get(name, ()) + BUDGETS:
            t0 = time.perf_counter()
            rows = run_setting(name, steps)
            runs += rows
            for variant in embeddings.GEOMETRY_VARIANTS:
                sel = [r for r in rows if r["variant"] == variant]
                mean = {
                    k: sum(r[k] for r in sel) / len(sel) for k in ("remainder", "r2p_affine", "r2p_twisted")
                }
                print(
                    f"{name:26s} {steps:5d} {variant:12s} non-Hamming {mean['remainder']:.2f}  "
                    f"R^2 profile affine {mean['r2p_affine']:.2f} twisted {mean['r2p_twisted']:.2f}  "
                    f"accuracy {[round(r['accuracy'], 3) for r in sel]}",
                    flush=True,
                )
            print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.only:
        return 0
    out = {
        "about": "bench/05_trained_geometry.py: chapter 5's budget-and-factor study",
        "seeds": list(SEEDS),
        "budgets": list(BUDGETS),
        "variants": embeddings.GEOMETRY_VARIANTS,
        "settings": SETTINGS,
        "figure_setting": FIGURE,
        "versions": {"lca": lca.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "seconds": round(time.perf_counter() - t_all),
        "runs": runs,
    }
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, separators=(",", ":")) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes, {out['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
