"""Compute chapter 8's hijack curves of known facts and write ``lca/data/hijack_curves.json``.

    .venv/bin/python tools/hijack_curves.py [--n 1000] [--per-relation 50] [--models smollm2 gemma3]

For each model (SmolLM2-135M-Instruct; Gemma 3 270M when its wheels are installed): the
``generic`` scheme on ``--n`` cases drawn (seed 0) from the full CounterFact file, and the
``relation`` scheme on ``--per-relation`` cases of each of the five relations with templates;
k = 0, 1, 2, 3, 5. Per case it stores the margins and top-1 outcomes (``lca.real_models
.score_cases``), and the aggregated curves with Wilson 95% intervals, overall and per relation.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lca import counterfact, hijacking, llm, real_models  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "counterfact" / "counterfact_lite_full.json"
KS = [0, 1, 2, 3, 5]
RELATIONS = ["P103", "P1412", "P131", "P190", "P641"]


def load(name):
    return llm.load_model(name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--per-relation", type=int, default=50)
    ap.add_argument("--models", nargs="+", default=["smollm2", "gemma3"])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=real_models.HIJACK_CURVES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--mechanism",
        nargs="*",
        default=None,
        metavar="MODEL",
        help="only add the stored mechanism summary (k = 3, 8 flipped known cases) of "
        "these models to the existing JSON",
    )
    ap.add_argument(
        "--records",
        action="store_true",
        help="only add the CounterFact records of every known case to the existing JSON",
    )
    ap.add_argument(
        "--examples",
        nargs="*",
        default=None,
        metavar="MODEL",
        help="only add chapter 0's Fig. 1-style examples (greedy completions and margins at "
        "k = 0, 1, 2) of these models to the existing JSON",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.mechanism is not None:
        return add_mechanism(args)
    if args.examples is not None:
        return add_examples(args)
    if args.records:
        return add_records(args)
    generic = counterfact.load_counterfact(path=args.data, n=args.n, seed=0)
    relation = counterfact.load_counterfact(
        path=args.data, n_per_relation=args.per_relation, relations=RELATIONS, seed=0
    )
    import transformers

    out = {
        "description": "known-fact hijack curves of chapter 8 (tools/hijack_curves.py)",
        "data": args.data.name,
        "ks": KS,
        "seed": 0,
        "settings": {
            "generic_n": args.n,
            "relation_per_relation": args.per_relation,
            "margin_decimals": real_models.MARGIN_DECIMALS,
            "z": 1.96,
            "known": "top-1 next token at k = 0 is the true target's first token and logp_true > logp_false",
            "flipped": "top-1 next token is no longer the true target's first token",
            "hijacked": "top-1 next token is the false target's first token",
            "top_code": "1 true first token, -1 false first token, 0 other",
        },
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "models": {},
    }
    for name in args.models:
        t0 = time.perf_counter()
        try:
            lm = load(name)
        except RuntimeError as exc:
            print(f"skipping {name}: {exc}")
            continue
        t_load = time.perf_counter() - t0
        res = {"source": lm.source, "load_s": round(t_load, 1), "schemes": {}}
        for scheme, cases in (("generic", generic), ("relation", relation)):
            t1 = time.perf_counter()
            recs = real_models.score_cases(lm, cases, scheme, KS, progress=True)
            res["schemes"][scheme] = {
                "cases": [[r["case_id"], r["relation"], r["margin"], r["top"]] for r in recs],
                "all": real_models.aggregate(recs, KS),
                "by_relation": real_models.by_relation(recs, KS),
                "seconds": round(time.perf_counter() - t1, 1),
            }
            a = res["schemes"][scheme]["all"]
            print(
                f"{name} {scheme}: {a['n_known']}/{a['n_cases']} known, flipped "
                f"{[round(v, 2) for v in a['flipped']['share']]}, efficacy "
                f"{[round(v, 2) for v in a['efficacy']['share']]} "
                f"({res['schemes'][scheme]['seconds']} s)",
                flush=True,
            )
        res["seconds"] = round(time.perf_counter() - t0, 1)
        out["models"][name] = res
        del lm
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, separators=(",", ":")) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


def add_mechanism(args, n: int = 8, k: int = 3) -> int:
    """Add ``models[name]["mechanism"]``: chapter 8's mechanism measurements
    (``real_models.mechanism``) on the first ``n`` known generic-scheme cases flipped at ``k``,
    summarised (means over the cases; logits at 2 decimals)."""
    res = json.loads(args.out.read_text(encoding="utf-8"))
    facts = {f.case_id: f for f in counterfact.load_counterfact(path=args.data)}
    for name in args.mechanism:
        t0 = time.perf_counter()
        lm = load(name)
        sch = res["models"][name]["schemes"]["generic"]
        j = res["ks"].index(k)
        chosen = [facts[c[0]] for c in sch["cases"] if c[3][0] == 1 and c[2][0] < 0 and c[3][j] != 1]
        m = real_models.mechanism(lm, chosen[:n], "generic", k, n_top=5, seed=0)
        lens = m["lens"].mean(0)
        summary = {
            "k": k,
            "n": len(chosen[:n]),
            "n_flipped": len(chosen),
            "case_ids": [f.case_id for f in chosen[:n]],
            "top_heads": m["top_heads"],
            "attention_per_layer": [round(float(v), 3) for v in m["attention"].mean(0).sum(1)],
            "lens_false_minus_true": [round(float(v), 2) for v in lens[:, 1] - lens[:, 0]],
        }
        for key in ("base", "ko_all", "ko_top", "ctrl_all", "ctrl_top"):
            summary[key] = round(float(m[key].mean()), 2)
            summary["restored_" + key] = sum(int(a == b) for a, b in zip(m["top1_" + key], m["true_id"]))
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        res["models"][name]["mechanism"] = summary
        print(name, summary)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, separators=(",", ":")) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    return 0


def add_records(args) -> int:
    """Add ``records``: the CounterFact records (as in ``--data``) of every case that some model
    knows at k = 0, so that chapter 8 can rebuild its known cases without the full file (a few
    hundred records, under CounterFact's MIT licence; see lca/data/COUNTERFACT_NOTICE.md)."""
    res = json.loads(args.out.read_text(encoding="utf-8"))
    ids = set()
    for model in res["models"].values():
        for sch in model["schemes"].values():
            ids.update(c[0] for c in sch["cases"] if c[3][0] == 1 and c[2][0] < 0)
    records = json.loads(args.data.read_text(encoding="utf-8"))
    res["records"] = sorted((r for r in records if r["case_id"] in ids), key=lambda r: r["case_id"])
    print(f"{len(res['records'])} records of known cases")
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, separators=(",", ":")) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    return 0


def add_examples(args) -> int:
    """Add ``models[name]["examples"]``: ``hijacking.example_rows`` of chapter 0's examples
    (greedy completions of four tokens at k = 0, 1, 2 and the false-minus-true margins), so that
    chapter 0 can set a model it does not load beside the one it runs."""
    res = json.loads(args.out.read_text(encoding="utf-8"))
    for name in args.examples:
        lm = load(name)
        res["models"][name]["examples"] = hijacking.example_rows(lm)
        print(name, res["models"][name]["examples"])
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, separators=(",", ":")) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
