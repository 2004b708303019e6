"""Chapter 3's budget check: every trained figure at 1x, 2x, 4x and 8x its budget, with 5 seeds.

    .venv/bin/python bench/03_budgets.py [--parts length dim easy small_d percentiles] [--out PATH]
    .venv/bin/python bench/03_budgets.py --merge PART.json ... [--out PATH]

Runs ``lca.transformer.run_budget(name)`` for each part of ``lca.transformer.BUDGET_RUNS``: one
training run per (m, x) and variant, 5 seeds, read off at 300, 600, 1200 and 2400 Adam steps (the
learning rate is constant, so the model after b steps of the long run is the b-step model). The
result is written to ``lca/data/transformer_budgets.json`` (``--out`` to write elsewhere, e.g. one
file per part when the parts run in parallel, then ``--merge`` them), which chapter 3 loads with
``lca.transformer.load_budgets``; ``tests/test_transformer.py`` recomputes a sample of it. Prints
a JSON summary (seconds per part) on stdout. Measured on the course's 2-core machine (one thread
per process, other jobs running): see the "seconds" entry of the JSON file. The part
``percentiles`` stores ``lca.transformer.percentile_runs()`` (where the trained pair ranks the
context's own tokens, 5 seeds, 300 and 1,200 steps).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lca import transformer

PARTS = [*transformer.BUDGET_RUNS, "percentiles"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=PARTS, choices=PARTS)
    parser.add_argument("--out", type=Path, default=transformer.BUDGETS_FILE)
    parser.add_argument("--merge", nargs="+", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.merge:
        merged = None
        for path in args.merge:
            data = json.loads(path.read_text())
            if merged is None:
                merged = data
            else:
                for key in ("runs", "seconds", "percentiles"):
                    merged.setdefault(key, {}).update(data.get(key, {}))
        merged["runs"] = {name: merged["runs"][name] for name in PARTS if name in merged["runs"]}
        args.out.write_text(json.dumps(merged, indent=1) + "\n")
        print(json.dumps({"merged": [str(p) for p in args.merge], "parts": list(merged["runs"])}))
        return 0
    torch.set_num_threads(args.threads)
    out = {
        "budgets": list(transformer.BUDGETS),
        "seeds": list(transformer.BUDGET_SEEDS),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "seconds": {},
        "runs": {},
    }
    for name in args.parts:
        start = time.time()
        if name == "percentiles":
            runs = transformer.percentile_runs(budgets=(300, 1200))
            out["percentiles"] = {str(steps): v for steps, v in runs.items()}
        else:
            tables = transformer.run_budget(name, device="cpu")
            out["runs"][name] = {str(steps): table.to_dict() for steps, table in tables.items()}
        out["seconds"][name] = round(time.time() - start, 1)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"out": str(args.out), "seconds": out["seconds"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
