//! The `graph` example: two Lambdas joined by an SQS queue, and its diagram in the README.

use lpipe::testing::lambda_context;
use lpipe::MemorySink;
use lpipe_examples::graph;
use serde_json::{json, Value};

#[tokio::test]
async fn the_graph_spans_two_lambdas() {
    let sink = MemorySink::new();
    let signup = graph::signup()
        .record_outbound(sink.clone())
        .build()
        .unwrap();
    let event =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/events/graph.json")).unwrap();
    let response = signup.handle(&event, lambda_context(0)).await.unwrap();
    // Ann and Dee succeed; Bob's email is invalid (dropped); Cid's store is down (kept).
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "00000000-0000-4000-8000-000000000003"}])
    );
    assert_eq!(
        response["stats"],
        json!({"received": 4, "successes": 2, "dropped": 1, "failed": 1})
    );
    let (sent, dropped): (Vec<_>, Vec<_>) = sink
        .messages()
        .into_iter()
        .partition(|m| m.queue.target() == "lpipe-graph-mailer");
    assert_eq!(sent.len(), 2);
    // Bob's signup went to the dead-letter queue as it came.
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].queue.target(), "lpipe-graph-signup-dropped");
    let bob: Value = serde_json::from_str(&dropped[0].body).unwrap();
    assert_eq!(bob["kwargs"]["name"], "Bob");
    assert_eq!(
        sent[0].queue.to_string(),
        "sqs:lpipe-graph-mailer (path SEND_WELCOME)"
    );
    let body: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"path": "SEND_WELCOME", "kwargs": {"address": "ann@example.com", "name": "Ann"}})
    );

    // What the first Lambda sent is what the second consumes.
    let records: Vec<Value> = sent
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"messageId": format!("m{i}"), "receiptHandle": "rh", "body": m.body, "eventSource": "aws:sqs",
                             "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lpipe-graph-mailer"}))
        .collect();
    let mailer = graph::mailer().build().unwrap();
    let response = mailer
        .handle(&json!({"Records": records}).to_string(), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 2, "successes": 2, "dropped": 0, "failed": 0})
    );
}

#[test]
fn the_readme_diagram_is_the_pipelines_own() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```mermaid\n").expect("a mermaid block") + "```mermaid\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let chart = graph::signup().to_mermaid();
    assert_eq!(
        &readme[start..end],
        chart,
        "examples/README.md is stale: regenerate its diagram with `cargo run -p lpipe-examples --bin graph -- graph`"
    );
}
