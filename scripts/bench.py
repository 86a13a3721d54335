#!/usr/bin/env python3
"""Whole-process comparison of the lpipe `bench` program with the benchmark's floor (bench/floor:
the same work written by hand in Rust) and, optionally, the Python anchors (bench/anchors:
Python lpipe 4.2.0 and Powertools' BatchProcessor). Prints one Markdown table of medians (wall
time, peak RSS) and ratios to the floor, measured in this one run, interleaved.

usage: scripts/bench.py [--records 1,10000,100000] [--kinds sqs,kinesis] [--runs 21]
                        [--python PYTHON_WITH_LPIPE_AND_POWERTOOLS] [--observability]
                        [--idempotency] [--io]

--io prints, after the table, the I/O-bound case: 100 SQS records whose `store` awaits 20 ms,
at concurrency 1 and 10 (ideal: 2 s and 0.2 s; one record in a hundred is dropped before
`store`, so 99 waits).

--observability adds a row for the `bench` program with JSON logs (AWS_LAMBDA_LOG_FORMAT=JSON,
at the default level) and EMF metrics (LPIPE_METRICS_NAMESPACE) on, beside the row with both
off (text logs at the default level, no metrics).

--idempotency adds a row for the `bench` program with every record idempotent by `user_id`,
its keys in the in-memory store (BENCH_IDEMPOTENT=1), and after the table what idempotency
costs: the idempotent row against the plain one, in wall time (medians) and in the time the
program reports for handling the event alone (`handle=`: its lower decile and median over the
same runs; the lower decile is the least disturbed by a shared machine's noise), and in a warm
process: the program run once with BENCH_PAIRED=RUNS, which handles the event RUNS times plain
and RUNS times idempotent (each with a new store), in alternating pairs a few milliseconds apart,
and prints the median of the pairs' ratios (pairs share the machine's state, so this holds best
on a noisy machine).

A record count of 1 is the cold start: the whole process for a one-record event. The Python
anchors need `pip install lpipe==4.2.0 python-decouple structlog sentry_sdk boto3
aws-lambda-powertools` in the interpreter given with --python; they run 3 times each.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")


# The environment of a row, by its program's name (the others run in ours, less these).
OBSERVABILITY = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "LPIPE_METRICS_NAMESPACE": "bench"}
IDIOMATIC = "idiomatic Rust (aws_lambda_events, by hand)"
OBSERVED = "lpipe, `bench` program, JSON logs + metrics"
IDEMPOTENCY = {"BENCH_IDEMPOTENT": "1"}
IDEMPOTENT = "lpipe, `bench` program, idempotent (memory store)"


def program_env(extra_env=None):
    """The environment a measured program runs in: ours, without the settings of the rows
    (logs, metrics, idempotency), plus these."""
    env = {k: v for k, v in os.environ.items()
           if k not in OBSERVABILITY and k not in IDEMPOTENCY
           and k not in ("AWS_LAMBDA_LOG_LEVEL", "RUST_LOG")}
    env.update(extra_env or {})
    return env


def run(cmd, extra_env=None):
    """Runs cmd once; returns (wall seconds, peak RSS in MiB, the handling time it reports in
    ms or None).

    The peak is what the program says of itself (`peak_rss_kb=` on stderr: its VmHWM, which
    every program of the table prints). A child's ru_maxrss would not do: it counts the memory
    of this Python process, copied at fork, so nothing could measure below ~15 MiB. It is the
    fallback for a program that does not say."""
    env = program_env(extra_env)
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"failed: {' '.join(cmd)}")
        err.seek(0)
        text = err.read()
        said = re.findall(rb"peak_rss_kb=(\d+)", text)
        handle = re.findall(rb"handle=([\d.]+)ms", text)
    return (wall, (int(said[-1]) if said else usage.ru_maxrss) / 1024,
            float(handle[-1]) if handle else None)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--records", default="1,10000,100000")
    p.add_argument("--kinds", default="sqs,kinesis")
    p.add_argument("--runs", type=int, default=21)
    p.add_argument("--python", help="a Python with lpipe 4.2.0 and Powertools installed")
    p.add_argument("--observability", action="store_true",
                   help="add a row with JSON logs and EMF metrics on")
    p.add_argument("--idempotency", action="store_true",
                   help="add a row with every record idempotent (in-memory store)")
    p.add_argument("--io", action="store_true",
                   help="also the I/O-bound case: 100 records awaiting 20 ms, concurrency 1 and 10")
    a = p.parse_args()

    for target in (["-p", "lpipe-bench", "--bin", "bench"], ["-p", "lpipe-bench-floor"],
                   ["-p", "lpipe-bench-idiomatic"]):
        subprocess.run(["cargo", "build", "--release", "-q", *target], cwd=ROOT, check=True)
    release = os.path.join(ROOT, "target", "release")
    tmp = tempfile.mkdtemp()
    print(f"medians of {a.runs} interleaved runs (Python: 3); ratios to the floor of the same row\n")
    costs = []
    print("| event | program | wall | peak RSS | wall / floor | RSS / floor |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in a.kinds.split(","):
        for n in (int(x) for x in a.records.split(",")):
            event = os.path.join(tmp, f"{kind}-{n}.json")
            with open(event, "w") as f:
                subprocess.run([sys.executable, os.path.join(BENCH, "gen_event.py"), str(n), kind],
                               stdout=f, check=True)
            fast = {
                "floor (hand-written Rust)": [os.path.join(release, "lpipe-bench-floor"), event, kind],
                IDIOMATIC: [os.path.join(release, "lpipe-bench-idiomatic"), event, kind],
                "lpipe, `bench` program": [os.path.join(release, "bench"), event],
            }
            if a.observability:
                fast[OBSERVED] = [os.path.join(release, "bench"), event]
            if a.idempotency:
                fast[IDEMPOTENT] = [os.path.join(release, "bench"), event]
            slow = {}
            if a.python:
                slow["Powertools (Python)"] = [a.python, os.path.join(BENCH, "anchors", "powertools.py"), event, kind]
                slow["Python lpipe 4.2.0"] = [a.python, os.path.join(BENCH, "anchors", "python_lpipe.py"), event, kind]
            results = {name: [] for name in list(fast) + list(slow)}
            env_of = {OBSERVED: OBSERVABILITY, IDEMPOTENT: IDEMPOTENCY}
            for name, cmd in fast.items():
                run(cmd, env_of.get(name))  # warm-up
            for i in range(a.runs):
                for name, cmd in fast.items():
                    results[name].append(run(cmd, env_of.get(name)))
                if i < 3:
                    for name, cmd in slow.items():
                        results[name].append(run(cmd))
            floor = results["floor (hand-written Rust)"]
            floor_wall = statistics.median(w for w, _, _ in floor)
            floor_rss = statistics.median(r for _, r, _ in floor)
            label = "cold start (1 record)" if n == 1 else f"{n:,} records"
            if a.idempotency and n > 1:
                costs.append((f"{kind}, {n:,} records", results["lpipe, `bench` program"],
                              results[IDEMPOTENT], paired(os.path.join(release, "bench"), event,
                                                          a.runs)))
            for name, samples in results.items():
                wall = statistics.median(w for w, _, _ in samples)
                rss = statistics.median(r for _, r, _ in samples)
                print(f"| {kind}, {label} | {name} | {wall * 1000:.1f} ms | {rss:.1f} MiB | "
                      f"{wall / floor_wall:.2f}x | {rss / floor_rss:.2f}x |", flush=True)
    if costs:
        idempotency_cost(costs, a.runs)
    if a.io:
        io_bound(release, tmp, max(3, a.runs // 4))


def idempotency_cost(costs, runs):
    """What idempotency costs: the idempotent row against the plain one, from the same runs."""
    def decile(xs):
        xs = sorted(xs)
        return xs[(len(xs) - 1) // 10]
    print(f"\nIdempotency's cost (in-memory store), from the same {runs} runs: wall time (medians), "
          "and the handling time the program reports (`handle=`), lower decile and median; then "
          f"in a warm process, {runs} pairs (BENCH_PAIRED): plain and idempotent medians, and the "
          "median of the pairs' ratios\n")
    print("| event | wall | handle, lower decile | handle, median | warm, paired |")
    print("| --- | --- | --- | --- | --- |")
    for label, plain, idem, warm in costs:
        wall = statistics.median(w for w, _, _ in idem) / statistics.median(w for w, _, _ in plain)
        cells = []
        for stat in (decile, statistics.median):
            p, i = stat([h for _, _, h in plain]), stat([h for _, _, h in idem])
            cells.append(f"{p:.1f} -> {i:.1f} ms ({(i / p - 1) * 100:+.1f}%)")
        print(f"| {label} | {(wall - 1) * 100:+.1f}% | {cells[0]} | {cells[1]} | {warm} |", flush=True)


def paired(bench, event, runs):
    """The bench program's warm, paired measure of idempotency's cost (BENCH_PAIRED), as a cell."""
    env = program_env({"BENCH_PAIRED": str(runs)})
    out = subprocess.run([bench, event], env=env, capture_output=True, text=True, check=True).stdout
    said = dict(re.findall(r"(\w+)=([-+\d.]+)", out))
    return (f"{float(said['plain_median_ms']):.1f} -> {float(said['idempotent_median_ms']):.1f} ms "
            f"({float(said['cost_median_of_ratios']):+.1f}%)")


def io_bound(release, tmp, runs):
    """The I/O-bound rows: the `bench` program with BENCH_IO_MS=20 at concurrency 1 and 10."""
    event = os.path.join(tmp, "sqs-100.json")
    with open(event, "w") as f:
        subprocess.run([sys.executable, os.path.join(BENCH, "gen_event.py"), "100", "sqs"], stdout=f, check=True)
    print(f"\nI/O-bound: 100 SQS records, `store` awaits 20 ms; medians of {runs} runs\n")
    print("| concurrency | wall | ideal | wall / ideal |")
    print("| --- | --- | --- | --- |")
    for concurrency, ideal in ((1, 2.0), (10, 0.2)):
        env = {"BENCH_IO_MS": "20", "BENCH_CONCURRENCY": str(concurrency)}
        walls = [run([os.path.join(release, "bench"), event], env)[0] for _ in range(runs)]
        wall = statistics.median(walls)
        print(f"| {concurrency} | {wall * 1000:.0f} ms | {ideal * 1000:.0f} ms | {wall / ideal:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
