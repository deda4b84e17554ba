#!/usr/bin/env python3
"""Runs every benchmark beside its Python peer and prints the ratios.

Usage: python3 bench/run.py [--quick] [--rounds N] [--build DIR]
                            [--markdown FILE] [--only NAME]...

Each C++ program under bench/ prints lines "libactors WORKLOAD: VALUE UNIT"
and its peer under bench/peers/ the same workloads as "python WORKLOAD: VALUE
UNIT". The two run alternately (A B A B ...) for several rounds in one run,
so that both see the same machine; per workload this prints both medians,
their min-max, and how many times better libactors is (faster, or less
memory; below 1: worse).
bench_limits measures the physical limits in the same rounds (bench_actors
adds the same work by a CAF actor in one process), and each libactors figure
bounded by one is also printed as a fraction of it (1: at the limit).
A workload without a Python peer (a lost host's detection: Python has no
such mechanism) is printed with "-" for Python.
Lines "... note: ..." and "... skipped: ..." are printed once after the
tables. bench_hosts (hosts.py) needs root and network namespaces; without
them both print "skipped", and a failure of that pair is reported without
ending the run.
--only NAME runs only the pairs whose program or peer contains NAME
("--only hosts"; bench_limits runs anyway).
Processes are not pinned: the scheduler places them.
--quick runs one round (CI runs it to keep the benchmarks working; it
asserts nothing, the machines are noisy). --markdown also writes the results
as docs/performance.md's tables, with the machine and the date.
"""

import argparse
import datetime
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
    ("bench_actors", "actors.py"),
    ("bench_hosts", "hosts.py"),
]

# Pairs whose failure is reported without ending the run (they need root
# and network namespaces, which a machine may not give).
OPTIONAL = {"bench_hosts"}
NOTE = re.compile(r"^(libactors|python) (?:\S+ )?(?:note|skipped): ")

LINE = re.compile(
    r"^(libactors|python|limit) (.+?): (?:median )?([0-9.]+) ?([^\s,]+)")
LOWER_IS_BETTER = {"ms", "us", "MB"}

# libactors workloads and the physical limit each is bounded by (measured by
# bench_limits in the same run: plain system calls between two processes;
# for actor processes, by bench_actors: the same actor in one process).
LIMITS = {
    "pipe ping-pong": "socketpair ping-pong",
    "queue 1 MiB": "socketpair 1 MiB one-way",
    "pipe 1 MiB one-way": "socketpair 1 MiB one-way",
    "process start+join": "fork+wait",
    "actor spawn+first reply": "in-process actor spawn+first reply",
    "actor round trip": "in-process actor round trip",
}


def run(cmd, results, notes, optional=False):
    try:
        out = subprocess.run(cmd, check=True, capture_output=True,
                             text=True, timeout=600).stdout
    except (subprocess.SubprocessError, OSError) as e:
        if not optional:
            raise
        err, out = getattr(e, "stderr", None), getattr(e, "stdout", None)
        err = err.strip()[-300:] if isinstance(err, str) else ""
        notes.append(f"{os.path.basename(cmd[-1])} failed ({e})"
                     + (f": {err}" if err else ""))
        out = out if isinstance(out, str) else ""
    for line in out.splitlines():
        if NOTE.match(line) and line not in notes:
            notes.append(line)
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


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} vCPU ({model}), Linux {os.uname().release}"


def markdown(path, rows, fractions, rounds):
    with open(path, "w") as f:
        f.write(f"Machine: {machine()}. Date: {datetime.date.today()}. "
                f"Medians of {rounds} alternating rounds [min-max]; "
                f"processes not pinned.\n\n")
        f.write("| workload | unit | libactors | Python | libactors vs Python |\n")
        f.write("|---|---|---|---|---|\n")
        for workload, unit, ours, theirs, ratio in rows:
            if ratio is None:
                f.write(f"| {workload} | {unit} | {ours} | - | "
                        f"no Python peer |\n")
                continue
            verdict = "better" if ratio >= 1 else "worse"
            f.write(f"| {workload} | {unit} | {ours} | {theirs} | "
                    f"{ratio:.3g}x {verdict} |\n")
        f.write("\n| workload | libactors | physical limit | fraction of it |\n")
        f.write("|---|---|---|---|\n")
        for workload, unit, ours, limit, fraction in fractions:
            f.write(f"| {workload} | {ours} {unit} | {limit} | {fraction:.3g} |\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    parser.add_argument("--markdown", metavar="FILE")
    parser.add_argument("--only", metavar="NAME", action="append")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    pairs = [(program, peer) for program, peer in PAIRS
             if not args.only
             or any(n in program or n in peer for n in args.only)]
    results, notes = {}, []
    for r in range(rounds):
        run([os.path.join(args.build, "bench", "bench_limits")], results,
            notes)
        for program, peer in pairs:
            print(f"round {r + 1}/{rounds}: {program}, then {peer}",
                  file=sys.stderr)
            optional = program in OPTIONAL
            run([os.path.join(args.build, "bench", program)], results, notes,
                optional)
            run([sys.executable, os.path.join(HERE, "peers", peer)], results,
                notes, optional)
    print(f"{'workload':40} {'unit':18} {'libactors':22} {'python':22} "
          f"libactors/python")
    rows, fractions = [], []
    for (workload, unit), by in results.items():
        ours, theirs = by.get("libactors"), by.get("python")
        if ours and not theirs:
            rows.append((workload, unit, spread(ours), "-", None))
            print(f"{workload:40} {unit:18} {spread(ours):22} {'-':22} "
                  f"no Python peer")
            continue
        if not ours or not theirs:
            continue
        a, b = statistics.median(ours), statistics.median(theirs)
        ratio = b / a if unit in LOWER_IS_BETTER else a / b
        rows.append((workload, unit, spread(ours), spread(theirs), ratio))
        print(f"{workload:40} {unit:18} {spread(ours):22} {spread(theirs):22} "
              f"{ratio:.3g}x {'better' if ratio >= 1 else 'worse'}")
    limits = {w: by["limit"] for (w, _), by in results.items() if "limit" in by}
    print(f"\n{'workload':40} {'unit':18} {'libactors':22} {'physical limit':44} "
          f"fraction of it")
    for (workload, unit), by in results.items():
        limit = limits.get(LIMITS.get(workload))
        if not limit or "libactors" not in by:
            continue
        a, b = statistics.median(by["libactors"]), statistics.median(limit)
        fraction = b / a if unit in LOWER_IS_BETTER else a / b
        fractions.append((workload, unit, spread(by["libactors"]),
                          LIMITS[workload] + " " + short(b), fraction))
        print(f"{workload:40} {unit:18} {spread(by['libactors']):22} "
              f"{LIMITS[workload] + ' ' + short(b):44} {fraction:.3g}")
    if notes:
        print()
        for note in notes:
            print(note)
    if args.markdown:
        markdown(args.markdown, rows, fractions, rounds)


if __name__ == "__main__":
    main()
