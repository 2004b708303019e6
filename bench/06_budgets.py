"""Chapter 6's trained figures at 1x and 4x the chapter's training budget, with five seeds each.

Every experiment of ``lca.attention.BUDGET_EXPERIMENTS`` (the m = 8 heat map, the m = 5, 6, 7 heat
maps, the selection experiment and the three "Where it breaks" runs) is trained with seeds 0..4 at
its chapter budget and at four times that budget (the experiments of ``LONG`` also at 8 and 16
times), and measured with
``lca.attention.run_budget_experiment``. The results go to ``lca/data/attention_budgets.json``
(``lca.attention.BUDGET_RESULTS``), which the chapter loads; ``tests/test_attention.py`` recomputes
a sample of them and compares.

    python bench/06_budgets.py                 # all experiments, writes the JSON
    python bench/06_budgets.py --only selection --scales 1 --out /tmp/x.json
    python bench/06_budgets.py --only selection heatmap_m8 --merge   # rerun two, keep the rest

Prints the JSON on stdout as well. One thread; about 25 minutes on the course's reference machine
(2 busy cores), most of it the 8x and 16x runs of ``LONG``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

import lca
from lca import attention

#: experiments whose conclusion changes between 1x and 4x: also trained at 8x and 16x, to see
#: where they settle
LONG = ("heatmap_m8", "selection")


def _rounded(x):
    """Floats at 6 significant digits (the results are training estimates), recursively."""
    if isinstance(x, float):
        return float(f"{x:.6g}")
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=None, help="experiment names (default: all)")
    parser.add_argument(
        "--scales",
        nargs="*",
        type=int,
        default=None,
        help="budget multiples (default: 1 and 4, and 8 and 16 for the experiments of LONG)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other experiments of the existing JSON (replace only those run)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--out", default=str(attention.BUDGET_RESULTS), help="where to write the JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.only or list(attention.BUDGET_EXPERIMENTS)
    seeds = tuple(range(args.seeds))
    out = {
        "about": "chapter 6's trained experiments at several training budgets (bench/06_budgets.py)",
        "lca": lca.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "seeds": list(seeds),
        "common": {"d": 32, "batch_size": 256, "lr": 0.01, "optimizer": "adam", "k": 2},
        "experiments": {},
    }
    start = time.time()
    for name in names:
        spec = attention.budget_task(name)
        entry = {
            "settings": {key: v for key, v in attention.BUDGET_EXPERIMENTS[name].items()},
            "bayes": None,
            "runs": {},
        }
        if attention.BUDGET_EXPERIMENTS[name]["informative"] == "sphere":
            entry["bayes"] = float(lca.bayes_accuracy(spec, n=4096, seed=1))
        scales = args.scales or ([1, 4, 8, 16] if name in LONG else [1, 4])
        for scale in scales:
            t = time.time()
            entry["runs"][str(scale)] = attention.run_budget_experiment(name, scale, seeds)
            print(f"{name} x{scale}: {time.time() - t:.1f} s", file=sys.stderr, flush=True)
        out["experiments"][name] = entry
    out["seconds"] = round(time.time() - start, 1)
    if args.merge and Path(args.out).is_file():
        old = json.loads(Path(args.out).read_text(encoding="utf-8"))
        out["experiments"] = {**old["experiments"], **out["experiments"]}
        out["experiments"] = {
            k: out["experiments"][k] for k in attention.BUDGET_EXPERIMENTS if k in out["experiments"]
        }
        out["seconds"] = round(old.get("seconds", 0) + out["seconds"], 1)
    text = json.dumps(_rounded(out), indent=1)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
