#!/usr/bin/env python3
"""Whole-process comparison of the lpipe `bench` example with the dispatch benchmark's anchors
(../shared/bench): the hand-written Rust baseline and, optionally, Python lpipe 4.2.0 and
Powertools. Prints a Markdown table of medians (wall time, peak RSS) and ratios to the baseline,
all measured in this one run, interleaved.

usage: scripts/bench.py [--records 10000] [--kind sqs|sqs-fifo|kinesis] [--runs 21]
                        [--python PYTHON_WITH_LPIPE_AND_POWERTOOLS]

The Python anchors need `pip install lpipe==4.2.0 python-decouple structlog sentry_sdk boto3
aws-lambda-powertools` in the interpreter given with --python.
"""
import argparse, os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "bench")


def run(cmd):
    """Runs cmd once; returns (wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=10000)
    p.add_argument("--kind", default="sqs", choices=["sqs", "sqs-fifo", "kinesis"])
    p.add_argument("--runs", type=int, default=21)
    p.add_argument("--python", help="a Python with lpipe 4.2.0 and Powertools installed")
    a = p.parse_args()

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "lpipe-examples", "--bin", "bench"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "--manifest-path", os.path.join(SHARED, "baseline", "Cargo.toml"),
                    "--target-dir", os.path.join(ROOT, "target", "bench-baseline")], check=True)
    event = os.path.join(tempfile.mkdtemp(), f"{a.kind}-{a.records}.json")
    with open(event, "w") as f:
        subprocess.run([sys.executable, os.path.join(SHARED, "gen_event.py"), str(a.records), a.kind], stdout=f, check=True)

    kind = "kinesis" if a.kind == "kinesis" else "sqs"
    programs = {
        "baseline (hand-written Rust)": [os.path.join(ROOT, "target", "bench-baseline", "release", "lpipe-bench-baseline"), event, kind],
        "lpipe (Rust), `bench` example": [os.path.join(ROOT, "target", "release", "bench"), event],
    }
    slow = {}
    if a.python:
        slow["Powertools (Python) BatchProcessor"] = [a.python, os.path.join(SHARED, "py_powertools.py"), event, kind]
        slow["Python lpipe 4.2.0"] = [a.python, os.path.join(SHARED, "py_lpipe.py"), event, kind]

    results = {name: [] for name in list(programs) + list(slow)}
    for name, cmd in programs.items():
        run(cmd)  # warm-up
    for i in range(a.runs):
        for name, cmd in programs.items():
            results[name].append(run(cmd))
        if i < 3:
            for name, cmd in slow.items():
                results[name].append(run(cmd))

    base_wall = statistics.median(w for w, _ in results["baseline (hand-written Rust)"])
    base_rss = statistics.median(r for _, r in results["baseline (hand-written Rust)"])
    print(f"{a.records} {a.kind} records, medians of {a.runs} interleaved runs (Python: 3)\n")
    print("| program | wall | peak RSS | wall / baseline | RSS / baseline |")
    print("| --- | --- | --- | --- | --- |")
    for name, samples in results.items():
        wall = statistics.median(w for w, _ in samples)
        rss = statistics.median(r for _, r in samples)
        print(f"| {name} | {wall * 1000:.1f} ms | {rss:.1f} MiB | {wall / base_wall:.2f}x | {rss / base_rss:.2f}x |")


if __name__ == "__main__":
    main()
