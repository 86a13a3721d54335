#!/usr/bin/env python3
"""The benchmark's workload on Python lpipe 4.2.0, the package lpipe was ported from.

usage: bench/anchors/python_lpipe.py EVENT_FILE {sqs|kinesis}
needs: pip install lpipe==4.2.0 python-decouple structlog sentry_sdk boto3
Prints the response's stats; the time spent handling the event goes to stderr.
"""
import contextlib
import io
import json
import sys
import time

import lpipe
from lpipe import Action
from lpipe.exceptions import FailButContinue

import peak


def validate(user_id: int, email: str, **kwargs):
    if "@" not in email:
        raise FailButContinue(f"user {user_id}: bad email")


def enrich(user_id: int, name: str, score: float = 0.0, **kwargs):
    pass


def store(user_id: int, tags: list, **kwargs):
    pass


class LambdaContext:
    function_name = "bench"


def main():
    path, kind = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        text = f.read()
    started = time.perf_counter()
    event = json.loads(text)
    source = lpipe.EventSourceType.KINESIS if kind == "kinesis" else lpipe.EventSourceType.SQS
    with contextlib.redirect_stdout(io.StringIO()):  # lpipe logs to stdout
        response = lpipe.process_event(
            event=event, context=LambdaContext(), event_source_type=source,
            paths={"PROCESS": [Action(functions=[validate, enrich]), Action(functions=[store])]})
    elapsed = time.perf_counter() - started
    print(json.dumps(response.get("stats", response)))
    print(f"handle={elapsed * 1000:.3f}ms", file=sys.stderr)
    peak.print_peak_rss()


if __name__ == "__main__":
    main()
