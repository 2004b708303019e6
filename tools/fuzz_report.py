"""Fuzz the public API of the engine and the synthetic chapters with bad arguments.

Each public function is first called with a valid baseline (arguments chosen by parameter name);
then one argument at a time is replaced by a bad value (wrong type, out of range, NaN/inf, a
transposed or wrongly shaped tensor). Calls run in a worker process with an address-space cap
(``resource.setrlimit(RLIMIT_AS)``) and a per-call time limit; a hung or killed worker is replaced.

Outcomes: ``clear`` (ValueError/TypeError naming the parameter), ``vague`` (ValueError/TypeError
not naming it), ``returned`` (no error), ``other`` (another exception), ``hang``, ``memory``.
A mutation marked *invalid* (a str, bool, None or NaN where a number is expected, ...) must not be
``returned``.

    python tools/fuzz_report.py [--budget N] [--seed S] [--timeout T] [--modules a,b]

prints the counts by outcome (and the first offenders). The test suite (tests/test_fuzz.py) runs
the same fuzzer on a smaller budget.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import os
import random
import re
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = (
    "latent",
    "task",
    "model",
    "train",
    "associative_memory",
    "lca_task",
    "transformer",
    "value_matrix",
    "embeddings",
    "attention",
    "hijacking_in_model",
)
MEM_CAP = 6 * 2**30
PROBE = "__hang_probe__"
OUTCOMES = ("clear", "vague", "returned", "other", "hang", "memory", "invalid-returned")


# ---------------------------------------------------------------- worker side (imports torch)
def _baseline_values():
    import torch

    import lca

    spec = lca.TaskSpec(3, 4)
    model = lca.OneLayerTransformer(8, 4, seed=0)
    ctx, tgt = lca.sample(spec, 8, seed=0)
    g = torch.Generator().manual_seed(0)
    return {
        "m": 3,
        "L": 4,
        "V": 8,
        "d": 4,
        "N": 4,
        "n": 16,
        "k": 2,
        "r": 1,
        "D": 3,
        "w": 1,
        "y": 0,
        "y_hijack": 7,
        "rank": 2,
        "steps": 2,
        "spec": spec,
        "task": spec,
        "model": model,
        "W_E": torch.randn(8, 4, generator=g, dtype=torch.float64),
        "W_V": torch.eye(4, dtype=torch.float64),
        "W": torch.randn(8, 8, generator=g, dtype=torch.float64),
        "M": torch.randn(8, 8, generator=g, dtype=torch.float64),
        "S": torch.randn(8, 8, generator=g, dtype=torch.float64),
        "A": torch.randn(4, 4, generator=g, dtype=torch.float64),
        "B": torch.randn(4, 4, generator=g, dtype=torch.float64),
        "contexts": ctx,
        "targets": tgt,
        "tokens": ctx,
        "keys": torch.randn(4, 8, generator=g, dtype=torch.float64),
        "values": torch.eye(4, dtype=torch.float64),
        "queries": torch.randn(4, 8, generator=g, dtype=torch.float64),
        "patterns": torch.sign(torch.randn(3, 8, generator=g, dtype=torch.float64)),
        "probes": torch.sign(torch.randn(3, 8, generator=g, dtype=torch.float64)),
        "counts": torch.tensor([5.0, 5.0, 5.0, 5.0]),
        "probs": torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64),
        "mask": lca.hamming_sphere(1).mask(3),
        "user_mask": lca.hamming_sphere(1).mask(3),
        "groups": torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]),
        "codes": torch.tensor([0, 1, 2]),
        "rho": 0.3,
        "rho_grid": [0.0, 0.5],
        "ks": [0, 1],
        "cos": 0.5,
        "delta": 0.01,
        "bits": 3,
        "b0": 1.0,
        "b1": 0.5,
        "eigenvalues": torch.tensor([3.0, 2.0, 1.0]),
        "multiplicities": torch.tensor([1, 2, 1]),
        "mu": torch.tensor([1.0, 0.5, 0.0, 0.0]),
        "nu": torch.tensor([1.0, 0.5, 0.0, 0.0]),
        "config": lca.TrainConfig(spec, d=4, steps=2, eval_every=1, n_eval=16),
        "base": lca.TrainConfig(spec, d=4, steps=2, eval_every=1, n_eval=16),
        "configs": [lca.TrainConfig(spec, d=4, steps=2, eval_every=1, n_eval=16)],
        "models": [model, lca.OneLayerTransformer(8, 4, seed=1)],
        "generator": None,
        "progress": False,
    }


# check_* validators and plain result records (TrainResult holds what train() returns) are not
# part of what a learner calls with their own arguments.
# Optional parameters that still take the baseline value (CustomNeighbourhood's mask defaults to
# None only because it is a dataclass field; progress: the fuzzer never draws progress bars).
OPTIONAL_FROM_BASE = {"user_mask", "progress"}
SKIP_NAMES = {"check_spec", "check_model", "check_model_and_spec", "default_device", "TrainResult"}


def _targets(modules=MODULES):
    """(module, name, [params]) of every public function/class that we fuzz (no plots, checkers)."""
    import importlib

    out = []
    for mname in modules:
        mod = importlib.import_module("lca." + mname)
        for name in sorted(dir(mod)):
            obj = getattr(mod, name)
            if name.startswith("_") or name in SKIP_NAMES or name.startswith(("plot_", "check_")):
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", "") != mod.__name__:
                continue
            try:
                sig = inspect.signature(obj)
            except (TypeError, ValueError):
                continue
            params = [
                p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            ]
            if not params:
                continue
            out.append((mname, name, params))
    return out


def _kind(value):
    import torch

    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, torch.Tensor):
        return "tensor"
    if isinstance(value, (list, tuple)):
        return "seq"
    if isinstance(value, torch.dtype):
        return "dtype"
    return "object"


def _mutations(value):
    """(label, bad value, invalid?) for a baseline value."""
    import torch

    kind = _kind(value)
    if kind == "bool":
        return [("str 'False'", "False", True), ("int 2", 2, True), ("None", None, True)]
    if kind == "int":
        return [
            ("str", str(value), True),
            ("bool", True, True),
            ("float 2.5", 2.5, True),
            ("nan", float("nan"), True),
            ("negative", -3, False),
            ("huge", 10**7, False),
            ("None", None, False),
        ]
    if kind == "float":
        return [
            ("str", str(value), True),
            ("bool", True, True),
            ("nan", float("nan"), True),
            ("inf", float("inf"), True),
            ("negative", -1.5, False),
            ("huge", 1e12, False),
        ]
    if kind == "str":
        return [("int", 3, True), ("bogus str", "no-such-option", False), ("None", None, False)]
    if kind == "tensor":
        muts = [
            ("list", value.tolist(), False),
            ("str", "tensor", True),
            ("None", None, False),
            ("flattened", value.reshape(-1), False),
            ("extra dim", value.unsqueeze(0), False),
        ]
        if value.ndim == 2 and value.shape[0] != value.shape[1]:
            muts.append(("transposed", value.T, False))
        if value.ndim >= 1 and value.shape[-1] > 1:
            muts.append(("last dim cut", value[..., :1], False))
        if value.is_floating_point():
            bad = value.clone()
            bad.view(-1)[0] = float("nan")
            muts.append(("nan entry", bad, True))
            muts.append(("int dtype", value.round().long(), False))
        elif value.dtype == torch.bool:
            muts.append(("int dtype", value.long(), False))
        else:
            muts.append(("float dtype", value.double() + 0.5, False))
            muts.append(("negative entry", value - 100, True))
            muts.append(("huge entry", value + 10**6, True))
        return muts
    if kind == "seq":
        return [("str", "abc", True), ("nan item", [float("nan")], False), ("None", None, False)]
    if kind == "dtype":
        return [("str 'float32'", "float32", True), ("int64", torch.int64, False)]
    return [("None", None, False), ("str", "x", True), ("int", 3, True)]


def worker_cases(modules=MODULES):
    """The list of cases as (module, name, param, label, invalid) plus the baseline-only cases."""
    base = _baseline_values()
    cases = []
    for mname, name, params in _targets(modules):
        import importlib

        obj = getattr(importlib.import_module("lca." + mname), name)
        sig = inspect.signature(obj)
        for p in params:
            par = sig.parameters[p]
            value = base[p] if p in base else par.default
            if value is inspect.Parameter.empty or value is None:
                continue
            for i, (label, _bad, invalid) in enumerate(_mutations(value)):
                cases.append((mname, name, p, i, label, invalid))
    return cases


def _build_call(mname, name, param=None, index=None):
    import importlib

    obj = getattr(importlib.import_module("lca." + mname), name)
    sig = inspect.signature(obj)
    base = _baseline_values()
    kwargs = {}
    for p in sig.parameters.values():
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        if p.name in base and (p.default is inspect.Parameter.empty or p.name in OPTIONAL_FROM_BASE):
            kwargs[p.name] = base[p.name]
        elif p.default is inspect.Parameter.empty:
            if p.name in base:
                kwargs[p.name] = base[p.name]
            else:
                return obj, None
    if param is not None:
        value = kwargs.get(param, base.get(param, sig.parameters[param].default))
        kwargs[param] = _mutations(value)[index][1]
    return obj, kwargs


def _run_one(msg):
    mname, name, param, index = msg["module"], msg["name"], msg.get("param"), msg.get("index")
    if mname == PROBE:  # the test suite's check that a hang is caught
        time.sleep(3600)
    try:
        obj, kwargs = _build_call(mname, name, param, index)
        if kwargs is None:
            return {"outcome": "skip", "error": "no baseline for a required parameter"}
    except Exception as exc:
        return {"outcome": "skip", "error": f"baseline build: {type(exc).__name__}: {exc}"}
    if not _baseline_runs(mname, name):  # a mutation of a call that fails anyway tells nothing
        return {"outcome": "skip", "error": "the unmutated baseline call raises"}
    t0 = time.perf_counter()
    outcome = classify_call(obj, kwargs, param)
    return {"outcome": outcome, "error": _LAST_ERROR[0], "seconds": time.perf_counter() - t0}


_LAST_ERROR = [""]
_BASELINE_OK: dict = {}


def _baseline_runs(mname: str, name: str) -> bool:
    key = (mname, name)
    if key not in _BASELINE_OK:
        obj, kwargs = _build_call(mname, name)
        _BASELINE_OK[key] = classify_call(obj, kwargs, None) == "returned"
    return _BASELINE_OK[key]


def classify_call(obj, kwargs: dict, param: str | None, invalid: bool = False) -> str:
    """Call ``obj(**kwargs)`` and return its outcome (see the module docstring); the error text
    is kept in ``_LAST_ERROR[0]``. ``invalid``: the bad value must not be accepted."""
    _LAST_ERROR[0] = ""
    try:
        obj(**kwargs)
    except (ValueError, TypeError) as exc:
        text = str(exc)
        _LAST_ERROR[0] = f"{type(exc).__name__}: {text}"[:300]
        named = param is None or re.search(rf"(?<![A-Za-z0-9_]){re.escape(param)}(?![A-Za-z0-9_])", text)
        return "clear" if named else "vague"
    except MemoryError as exc:
        _LAST_ERROR[0] = f"MemoryError: {exc}"[:300]
        return "memory"
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        _LAST_ERROR[0] = text[:300]
        low = text.lower()
        if "alloc" in low or "out of memory" in low or "not enough memory" in low:
            return "memory"
        return "other"
    return "invalid-returned" if invalid else "returned"


def worker_main(mem_cap: int) -> None:
    import importlib
    import resource
    import warnings

    warnings.simplefilter("ignore")
    resource.setrlimit(resource.RLIMIT_AS, (mem_cap, mem_cap))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import matplotlib

    matplotlib.use("Agg")
    import torch

    torch.set_num_threads(1)
    importlib.import_module("lca")

    out = sys.stdout
    sys.stdout = open(os.devnull, "w")  # the API's own prints must not break the protocol
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("list"):
            cases = worker_cases(tuple(msg["list"]))
            out.write(json.dumps({"cases": cases}) + "\n")
        else:
            out.write(json.dumps(_run_one(msg)) + "\n")
        out.flush()


# ---------------------------------------------------------------- parent side (no torch)
class Worker:
    def __init__(self, mem_cap: int = MEM_CAP, start_timeout: float = 120.0):
        env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(mem_cap)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=str(ROOT),
            env=env,
        )
        reply = self._read(start_timeout)
        if not reply or not reply.get("ready"):
            self.close()
            raise RuntimeError("fuzz worker did not start")

    def _read(self, timeout: float):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def ask(self, msg: dict, timeout: float):
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return None
        return self._read(timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def fuzz(
    budget: int | None = None,
    seed: int = 0,
    timeout: float = 10.0,
    modules=MODULES,
    mem_cap: int = MEM_CAP,
    deadline: float | None = None,
    progress=None,
    cases: list | None = None,
):
    """Run up to ``budget`` cases (all if None), sampled with ``seed``; returns a list of records.
    ``cases`` replaces the generated list (tuples as ``worker_cases`` makes them)."""
    worker = Worker(mem_cap)
    if cases is None:
        cases = worker.ask({"list": list(modules)}, 300)["cases"]
    rng = random.Random(seed)
    if budget is not None and budget < len(cases):
        cases = rng.sample(cases, budget)
    records = []
    try:
        for mname, name, param, index, label, invalid in cases:
            if deadline is not None and time.monotonic() > deadline:
                break
            msg = {"module": mname, "name": name, "param": param, "index": index}
            reply = worker.ask(msg, timeout)
            if reply is None:
                dead = worker.proc.poll() is not None
                worker.close()
                reply = {
                    "outcome": "memory" if dead else "hang",
                    "error": "worker died" if dead else f"took longer than {timeout:g} s",
                }
                worker = Worker(mem_cap)
            if reply["outcome"] == "returned" and invalid:
                reply["outcome"] = "invalid-returned"
            records.append(dict(msg, label=label, invalid=invalid, **reply))
            if progress is not None:
                progress(len(records), len(cases))
    finally:
        worker.close()
    skipped = sorted({f"{r['module']}.{r['name']}" for r in records if r["outcome"] == "skip"})
    if skipped and progress is not None:
        print(f"no usable baseline for {len(skipped)} functions: {', '.join(skipped)}")
    return [r for r in records if r["outcome"] != "skip"]


def summarise(records) -> collections.Counter:
    return collections.Counter(r["outcome"] for r in records)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=None, help="number of cases (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    ap.add_argument("--modules", default=",".join(MODULES))
    ap.add_argument("--show", type=int, default=40, help="offenders to list")
    ap.add_argument("--json", default=None, help="write all records to this file")
    args = ap.parse_args(argv)
    from tqdm.auto import tqdm

    bar = tqdm(desc="fuzz", unit="call")

    def progress(i, total):
        bar.total = total
        bar.update(1)

    t0 = time.monotonic()
    records = fuzz(args.budget, args.seed, args.timeout, tuple(args.modules.split(",")), progress=progress)
    bar.close()
    counts = summarise(records)
    print(f"{len(records)} calls in {time.monotonic() - t0:.0f} s")
    for k in OUTCOMES:
        print(f"  {k:17s} {counts.get(k, 0)}")
    bad = [r for r in records if r["outcome"] not in ("clear", "returned")]
    for r in bad[: args.show]:
        print(f"{r['outcome']:17s} {r['module']}.{r['name']}({r['param']}={r['label']}): {r['error'][:140]}")
    slow = sorted((r for r in records if "seconds" in r), key=lambda r: -r["seconds"])
    print("slowest calls (the test's hang limit must stay far above these):")
    for r in slow[:8]:
        print(f"  {r['seconds']:7.2f} s {r['module']}.{r['name']}({r['param']}={r['label']})")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(ROOT))
        worker_main(int(sys.argv[2]) if len(sys.argv) > 2 else MEM_CAP)
    else:
        sys.exit(main())
