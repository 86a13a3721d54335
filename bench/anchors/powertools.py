#!/usr/bin/env python3
"""The benchmark's workload on Powertools for AWS Lambda (Python): its BatchProcessor with the
same three functions (it has no routing or typed arguments: the handler checks by hand).

usage: bench/anchors/powertools.py EVENT_FILE {sqs|kinesis}
needs: pip install aws-lambda-powertools
Prints the partial batch response; the time spent handling the event goes to stderr.
"""
import base64
import json
import sys
import time

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

import peak


class Dropped(Exception):
    pass


def work(kwargs):
    if not isinstance(kwargs.get("user_id"), int) or "@" not in str(kwargs.get("email", "")):
        raise Dropped("bad payload")
    (kwargs["user_id"], kwargs["name"], float(kwargs.get("score", 0.0)))  # enrich
    (kwargs["user_id"], list(kwargs["tags"]))  # store


def sqs_handler(record):
    message = json.loads(record.body)
    work(message["kwargs"])


def kinesis_handler(record):
    message = json.loads(base64.b64decode(record.kinesis.data))
    work(message["kwargs"])


def main():
    path, kind = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        text = f.read()
    started = time.perf_counter()
    event = json.loads(text)
    if kind == "kinesis":
        processor, handler = BatchProcessor(event_type=EventType.KinesisDataStreams), kinesis_handler
    else:
        processor, handler = BatchProcessor(event_type=EventType.SQS), sqs_handler
    response = process_partial_response(event=event, record_handler=handler, processor=processor,
                                        context=None)
    elapsed = time.perf_counter() - started
    print(json.dumps(response))
    print(f"handle={elapsed * 1000:.3f}ms", file=sys.stderr)
    peak.print_peak_rss()


if __name__ == "__main__":
    main()
