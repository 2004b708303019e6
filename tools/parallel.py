"""Run independent test commands side by side, one CPU thread each, and report them one after another.

    python tools/parallel.py "LABEL=COMMAND" ["LABEL=COMMAND" ...]

``make test`` uses it for the passes that do not depend on each other (every chapter under the
baseline code path, and each learner environment), so that a 2-core machine runs two of them at a
time instead of one. Each command runs through the shell with its output in a log file; every child
gets ``OMP_NUM_THREADS=1`` (and the MKL/OpenBLAS equivalents) so that the commands share the cores
instead of oversubscribing them (the chapters print the same digits with one thread as with two:
checked, and the suite's nbval passes compare them). When a command ends, its log is printed whole
under a header; the script exits non-zero if any command failed, after all of them have ended.

``--jobs N`` (default: the number of CPUs, at least 2) bounds how many run at once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def parse(spec: str) -> tuple[str, str]:
    label, sep, command = spec.partition("=")
    if not sep or not label.strip() or not command.strip():
        raise SystemExit(f"each argument must be LABEL=COMMAND, got {spec!r}")
    return label.strip(), command


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("commands", nargs="+", metavar="LABEL=COMMAND")
    ap.add_argument("--jobs", type=int, default=max(2, os.cpu_count() or 2))
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    todo = [parse(s) for s in args.commands]
    env = dict(os.environ, **{v: "1" for v in THREAD_VARS})
    logs = Path(tempfile.mkdtemp(prefix="lca-parallel-"))
    running: dict[str, tuple[subprocess.Popen, Path, float]] = {}
    results: list[tuple[str, int, float]] = []

    def start(label: str, command: str) -> None:
        log = logs / f"{label}.log"
        print(f"[parallel] start {label}: {command}", flush=True)
        with open(log, "wb") as fh:
            proc = subprocess.Popen(command, shell=True, stdout=fh, stderr=subprocess.STDOUT, env=env)
        running[label] = (proc, log, time.perf_counter())

    while todo or running:
        while todo and len(running) < args.jobs:
            start(*todo.pop(0))
        time.sleep(1)
        for label, (proc, log, t0) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del running[label]
            seconds = time.perf_counter() - t0
            results.append((label, rc, seconds))
            print(f"\n{'=' * 30} {label}: exit {rc} after {seconds:.0f} s {'=' * 30}", flush=True)
            sys.stdout.write(log.read_text(errors="replace"))
            sys.stdout.flush()
    print("\n[parallel] summary:")
    for label, rc, seconds in results:
        print(f"  {label}: {'passed' if rc == 0 else f'FAILED (exit {rc})'} in {seconds:.0f} s")
    return 1 if any(rc for _, rc, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
