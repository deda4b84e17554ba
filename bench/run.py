#!/usr/bin/env python3
"""Runs every benchmark beside its Python peer and prints the ratios.

Usage: python3 bench/run.py [--quick] [--rounds N] [--build DIR]

Each C++ program under bench/ prints lines "libactors WORKLOAD: VALUE UNIT"
and its peer under bench/peers/ the same workloads as "python WORKLOAD: VALUE
UNIT". The two run alternately (A B A B ...) for several rounds in one run,
so that both see the same machine; per workload this prints both medians,
their min-max, and how many times faster libactors is (below 1: slower).
--quick runs one round (CI runs it to keep the benchmarks working; it
asserts nothing, the machines are noisy).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (C++ program, Python peer); both take no arguments.
PAIRS = [
    ("bench_process", "process.py"),
    ("bench_queue_pipe", "queue_pipe.py"),
    ("bench_pool", "pool.py"),
    ("bench_threads_locks", "threads_locks.py"),
]

LINE = re.compile(r"^(libactors|python) (.+?): (?:median )?([0-9.]+) ?([^\s,]+)")
LOWER_IS_BETTER = {"ms", "us"}


def run(cmd, results):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         timeout=600).stdout
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            impl, workload, value, unit = m.groups()
            results.setdefault((workload, unit), {}).setdefault(impl, []).append(
                float(value))


def short(x):
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= limit:
            return f"{x / limit:.3g}{suffix}"
    return f"{x:.3g}"


def spread(xs):
    return f"{short(statistics.median(xs))} [{short(min(xs))}-{short(max(xs))}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    results = {}
    for r in range(rounds):
        for program, peer in PAIRS:
            print(f"round {r + 1}/{rounds}: {program}, then {peer}",
                  file=sys.stderr)
            run([os.path.join(args.build, "bench", program)], results)
            run([sys.executable, os.path.join(HERE, "peers", peer)], results)
    print(f"{'workload':40} {'unit':18} {'libactors':22} {'python':22} "
          f"libactors/python")
    for (workload, unit), by in results.items():
        ours, theirs = by.get("libactors"), by.get("python")
        if not ours or not theirs:
            continue
        a, b = statistics.median(ours), statistics.median(theirs)
        ratio = b / a if unit in LOWER_IS_BETTER else a / b
        print(f"{workload:40} {unit:18} {spread(ours):22} {spread(theirs):22} "
              f"{ratio:.3g}x {'faster' if ratio >= 1 else 'slower'}")


if __name__ == "__main__":
    main()
