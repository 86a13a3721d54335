#!/usr/bin/env python3
"""End to end under the Lambda runtime: `cargo lambda watch` serves the example binaries (their
`lambda_runtime` integration, as a user runs it) and `cargo lambda invoke` sends them SQS,
Kinesis and CloudWatch sample events; the responses are checked, including a partial batch
failure. Outbound messages go to the moto_server the test command started (AWS_ENDPOINT_URL).
The functions run with Lambda's advanced logging controls set to JSON and DEBUG: every line
they write must be JSON, and the graph example's lines of a record must name its request,
record and path; its metrics document must count what its response says.

Run by scripts/test, with cargo-lambda and boto3 on PATH/in this interpreter (./.venv).
"""
import base64, json, os, re, socket, subprocess, sys, tempfile, time, uuid

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what.splitlines()[0]}", file=sys.stderr)


# What cargo lambda and cargo write themselves, as opposed to the functions they run.
OWN_LINE = re.compile(r"^\s*(INFO|WARN|ERROR|DEBUG|TRACE) |^\s+(Finished|Running|Compiling|Blocking|Waiting|Fresh) ")


def function_lines(log):
    """The lines the functions wrote, from `cargo lambda watch`'s output."""
    return [line for line in log.splitlines() if line.strip() and not OWN_LINE.match(line)]


def start_watch(env, port, log, log_path):
    """Starts `cargo lambda watch` on `port`, its output in `log`; returns once it listens."""
    watch = subprocess.Popen(["cargo", "lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1",
                              "--invoke-port", str(port)], cwd=EXAMPLES, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return watch
        except OSError:
            if watch.poll() is not None or time.time() > deadline:
                log.flush()
                stop_watch(watch, port)
                sys.exit("cargo lambda watch did not start:\n" + open(log_path).read())
            time.sleep(0.5)


def stop_watch(watch, port):
    """Stops `cargo lambda watch` and the function processes it started."""
    watch.terminate()
    try:
        watch.wait(timeout=20)
    except subprocess.TimeoutExpired:
        watch.kill()
    subprocess.run(["pkill", "-f", "--", f"--invoke-port {port}"], check=False)


def main():
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    suffix = uuid.uuid4().hex[:8]
    mailer_queue, sqs_queue, stream = f"e2e-mailer-{suffix}", f"e2e-sqs-{suffix}", f"e2e-stream-{suffix}"
    dropped_queue = f"e2e-dropped-{suffix}"
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    kinesis = boto3.client("kinesis", endpoint_url=endpoint)
    mailer_url = sqs.create_queue(QueueName=mailer_queue)["QueueUrl"]
    dropped_url = sqs.create_queue(QueueName=dropped_queue)["QueueUrl"]
    sqs.create_queue(QueueName=sqs_queue)
    kinesis.create_stream(StreamName=stream, ShardCount=1)

    port = free_port()
    env = dict(os.environ, GRAPH_MAILER_QUEUE=mailer_queue, GRAPH_DROPPED_QUEUE=dropped_queue,
               TEST_SQS_QUEUE=sqs_queue, TEST_KINESIS_STREAM=stream,
               AWS_LAMBDA_LOG_FORMAT="JSON", AWS_LAMBDA_LOG_LEVEL="DEBUG")
    env.pop("RUST_LOG", None)
    log_path = os.path.join(tempfile.mkdtemp(), "cargo-lambda-watch.log")
    log = open(log_path, "w")
    watch = start_watch(env, port, log, log_path)
    try:
        def invoke(function, event):
            path = os.path.join(tempfile.mkdtemp(), "event.json")
            with open(path, "w") as f:
                f.write(event if isinstance(event, str) else json.dumps(event))
            out = subprocess.run(["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1",
                                  "--invoke-port", str(port), "--data-file", path, "--output-format", "json"],
                                 cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=600)
            try:
                body = json.loads(out.stdout) if out.stdout.strip() else None
            except json.JSONDecodeError:
                body = None
            return out.returncode, body, out.stdout + out.stderr

        print("graph (SQS, partial batch failure):", file=sys.stderr)
        rc, body, text = invoke("graph", open(os.path.join(EXAMPLES, "events", "graph.json")).read())
        check(rc == 0 and body is not None, f"graph answered\n{text}")
        check(body["batchItemFailures"] == [{"itemIdentifier": "00000000-0000-4000-8000-000000000003"}],
              f"exactly the failed record is reported: {body}")
        check(body["stats"] == {"received": 4, "successes": 2, "dropped": 1, "failed": 1}, f"stats: {body}")
        got = sqs.receive_message(QueueUrl=mailer_url, MaxNumberOfMessages=10).get("Messages", [])
        check(len(got) == 2 and all(json.loads(m["Body"])["path"] == "SEND_WELCOME" for m in got),
              f"the welcome messages reached the mailer's queue: {got}")
        dropped = sqs.receive_message(QueueUrl=dropped_url, MaxNumberOfMessages=10).get("Messages", [])
        check(len(dropped) == 1 and json.loads(dropped[0]["Body"])["kwargs"]["name"] == "Bob",
              f"the dropped signup reached the dead-letter queue as it came: {dropped}")

        print("graph-mailer (SQS, the second Lambda, on what the first sent):", file=sys.stderr)
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{mailer_queue}",
                    "attributes": {}, "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "awsRegion": "us-east-1"}
                   for m in got]
        rc, body, text = invoke("graph-mailer", {"Records": records})
        check(rc == 0 and body["batchItemFailures"] == [] and body["stats"]["successes"] == 2, f"mailer: {text}")

        print("graph's logs and metrics (AWS_LAMBDA_LOG_FORMAT=JSON, AWS_LAMBDA_LOG_LEVEL=DEBUG):", file=sys.stderr)
        log.flush()
        lines = function_lines(open(log_path).read())
        check(len(lines) > 20, f"the functions logged ({len(lines)} lines)")
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                check(False, f"every line the functions wrote is JSON, not: {line[:300]}")
        check(True, f"all {len(parsed)} lines the functions wrote are JSON")
        check(any(p.get("level") == "DEBUG" and p.get("target", "").startswith("lpipe") for p in parsed),
              "DEBUG lines of lpipe are there")
        stored = [p for p in parsed if p.get("message") == "stored user"]
        check(len(stored) == 2 and all(p.get("request_id") and p.get("record_id", "").startswith("00000000-")
                                       and p.get("path") == "SIGNUP" and p.get("function") == "store_user"
                                       for p in stored),
              f"the lines of a record carry request id, record id, path and function: {stored}")
        mails = [p for p in parsed if p.get("message") == "sending welcome email"]
        check(len(mails) == 2 and {p["record_id"] for p in mails} == {m["MessageId"] for m in got}
              and all(p.get("path") == "SEND_WELCOME" for p in mails), f"and the mailer's: {mails}")
        totals = [p for p in parsed if "_aws" in p and p.get("service") == "graph" and "RecordsReceived" in p
                  and p["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]]
        check(len(totals) == 1 and (totals[0]["RecordsReceived"], totals[0]["RecordsSucceeded"],
                                    totals[0]["RecordsDropped"], totals[0]["RecordsFailed"]) == (4, 2, 1, 1),
              f"one metrics document per invocation counts what the response said: {totals}")

        print("conformance (Kinesis):", file=sys.stderr)
        def kin(i, msg):
            return {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": str(700 + i),
                                "data": base64.b64encode(json.dumps(msg).encode()).decode(),
                                "approximateArrivalTimestamp": 1545084650.987},
                    "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000000:{700 + i}",
                    "eventName": "aws:kinesis:record", "awsRegion": "us-east-1",
                    "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/in"}
        event = {"Records": [kin(0, {"path": "TEST_KINESIS_QUEUE", "kwargs": {"uri": "s3://b/k"}}),
                             kin(1, {"path": "TEST_RAISE_CUSTOM", "kwargs": {}}),
                             kin(2, {"path": "TEST_FUNC", "kwargs": {"foo": "bar"}})]}
        rc, body, text = invoke("conformance", event)
        check(rc == 0 and body["batchItemFailures"] == [{"itemIdentifier": "701"}, {"itemIdentifier": "702"}],
              f"the failed record and the later one are reported: {text}")
        shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        data = [json.loads(r["Data"]) for r in kinesis.get_records(ShardIterator=it)["Records"]]
        check(data == [{"path": "TEST_FUNC", "kwargs": {"uri": "s3://b/k"}}], f"TEST_KINESIS_QUEUE reached the stream: {data}")

        print("conformance (CloudWatch scheduled event and a custom event):", file=sys.stderr)
        scheduled = {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
                     "source": "aws.events", "account": "123456789012", "time": "2015-10-08T16:53:06Z",
                     "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/r"], "detail": {}}
        rc, body, text = invoke("conformance", scheduled)
        check(rc == 0 and body["stats"] == {"received": 1, "successes": 0, "dropped": 1, "failed": 0},
              f"a scheduled event without a route or default path is dropped, not failed: {text}")
        custom = dict(scheduled, **{"detail-type": "Custom", "detail": {"path": "TEST_RET", "kwargs": {}}})
        rc, body, text = invoke("conformance", custom)
        check(rc == 0 and body["output"] == ["foobar"], f"a directed detail runs its path: {text}")
        failing = dict(custom, detail={"path": "TEST_RAISE_CUSTOM", "kwargs": {}})
        rc, body, text = invoke("conformance", failing)
        check(rc != 0 and "FailCatastrophically" in text, f"a catastrophic failure fails the invocation: {text}")
    finally:
        stop_watch(watch, port)
    text_logs(dict(env, AWS_LAMBDA_LOG_FORMAT="Text", AWS_LAMBDA_LOG_LEVEL="INFO"))
    print("end to end under cargo lambda: all checks passed", file=sys.stderr)


def text_logs(env):
    """The graph example under `cargo lambda watch` with AWS_LAMBDA_LOG_FORMAT=Text: readable
    lines naming the record, and no JSON but the metrics documents."""
    print("graph's logs (AWS_LAMBDA_LOG_FORMAT=Text, AWS_LAMBDA_LOG_LEVEL=INFO):", file=sys.stderr)
    port = free_port()
    log_path = os.path.join(tempfile.mkdtemp(), "cargo-lambda-watch-text.log")
    with open(log_path, "w") as log:
        watch = start_watch(env, port, log, log_path)
        try:
            out = subprocess.run(["cargo", "lambda", "invoke", "graph", "--invoke-address", "127.0.0.1",
                                  "--invoke-port", str(port), "--data-file", os.path.join(EXAMPLES, "events", "graph.json"),
                                  "--output-format", "json"], cwd=EXAMPLES, env=env, capture_output=True, text=True,
                                 timeout=600)
            check(out.returncode == 0 and '"batchItemFailures"' in out.stdout, f"graph answered\n{out.stdout}{out.stderr}")
            time.sleep(0.5)
        finally:
            stop_watch(watch, port)
    lines = function_lines(open(log_path).read())
    logs = [line for line in lines if not line.startswith('{"')]
    metrics = [line for line in lines if line.startswith('{"')]
    check(all("_aws" in json.loads(m) for m in metrics) and metrics,
          f"the only JSON lines are the metrics documents ({len(metrics)})")
    stored = [line for line in logs if line.endswith("stored user name=Ann plan=pro")]
    check(len(stored) == 1 and re.search(r' INFO .*lpipe\{request_id="[0-9a-f-]+" trace_id="[^"]+" '
                                         r'record_id="00000000-0000-4000-8000-000000000001" path="SIGNUP" '
                                         r'function="store_user"\}: stored user', stored[0]),
          f"a record's line reads as text naming request, record, path and function: {stored}")
    check(not any("DEBUG" in line for line in logs), "the level (INFO) was taken: no DEBUG lines")


if __name__ == "__main__":
    main()
