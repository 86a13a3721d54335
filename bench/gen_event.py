#!/usr/bin/env python3
"""Writes the benchmark's Lambda event to stdout: N lpipe messages for path PROCESS.

usage: bench/gen_event.py N {sqs|sqs-fifo|kinesis|raw}

Message i is {"path": "PROCESS", "kwargs": {"user_id": i, "email": "user<i>@example.com",
"name": "User <i>", "tags": ["a", "b"], "score": i / 2}}, except that one in a hundred has an
email without "@" (dropped by validate); SQS and Kinesis records carry the
attributes AWS gives them (FIFO: 8 message groups; Kinesis: 8 partition keys, one shard).
"""
import base64
import json
import sys

KINDS = ("sqs", "sqs-fifo", "kinesis", "raw")


def message(i):
    # One in a hundred has an email without "@": validate drops it.
    email = f"user{i}.example.com" if i % 100 == 99 else f"user{i}@example.com"
    return {"path": "PROCESS", "kwargs": {"user_id": i, "email": email,
                                          "name": f"User {i}", "tags": ["a", "b"], "score": i / 2}}


def sqs_record(i, fifo):
    attributes = {"ApproximateReceiveCount": "1", "SentTimestamp": str(1796212800000 + i),
                  "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                  "ApproximateFirstReceiveTimestamp": str(1796212800000 + i)}
    if fifo:
        attributes["MessageGroupId"] = f"group-{i % 8}"
        attributes["MessageDeduplicationId"] = f"dedup-{i}"
        attributes["SequenceNumber"] = str(18000000000000000000 + i)
    return {"messageId": f"00000000-0000-4000-8000-{i:012x}", "receiptHandle": f"AQEBbench{i}",
            "body": json.dumps(message(i)), "attributes": attributes, "messageAttributes": {},
            "md5OfBody": "", "eventSource": "aws:sqs", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench" + (".fifo" if fifo else "")}


def kinesis_record(i):
    sequence = f"4959033827149025660855969253836157109592157598913{i:07d}"
    return {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"key-{i % 8}",
                        "sequenceNumber": sequence,
                        "data": base64.b64encode(json.dumps(message(i)).encode()).decode(),
                        "approximateArrivalTimestamp": 1796212800.0 + i / 1000},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventName": "aws:kinesis:record",
            "eventID": f"shardId-000000000000:{sequence}", "awsRegion": "us-east-1",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/bench",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench"}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in KINDS or not sys.argv[1].isdigit():
        sys.exit(__doc__)
    n, kind = int(sys.argv[1]), sys.argv[2]
    if kind == "raw":
        event = [message(i) for i in range(n)]
    elif kind == "kinesis":
        event = {"Records": [kinesis_record(i) for i in range(n)]}
    else:
        event = {"Records": [sqs_record(i, kind == "sqs-fifo") for i in range(n)]}
    json.dump(event, sys.stdout)


if __name__ == "__main__":
    main()
