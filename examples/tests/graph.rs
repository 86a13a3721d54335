//! The `graph` example: two Lambdas joined by an SQS queue, and its diagram in the README.

use lpipe::sink::MemorySink;
use lpipe::testing::lambda_context;
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

/// Runs a pipeline with its metrics captured; returns the response and the documents.
async fn with_metrics(builder: lpipe::PipelineBuilder, event: &str) -> (Value, Vec<Value>) {
    let documents = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = documents.clone();
    let pipeline = builder
        .metrics(
            lpipe::Metrics::new("lpipe-graph")
                .service("signup")
                .write_to(move |d| keep.lock().unwrap().push(d.to_owned())),
        )
        .build()
        .unwrap();
    let response = pipeline.handle(event, lambda_context(0)).await.unwrap();
    let documents = documents
        .lock()
        .unwrap()
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (response, documents)
}

#[tokio::test]
async fn the_graph_writes_one_metrics_document_per_dimension_set_with_the_responses_counts() {
    let event =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/events/graph.json")).unwrap();
    let sink = MemorySink::new();
    let (response, documents) =
        with_metrics(graph::signup().record_outbound(sink.clone()), &event).await;
    for d in &documents {
        lpipe::testing::check_emf(d).unwrap_or_else(|e| panic!("{e}: {d}"));
    }
    let by_dimension =
        |key: &str| -> Vec<&Value> { documents.iter().filter(|d| d.get(key).is_some()).collect() };
    let totals: Vec<&Value> = documents
        .iter()
        .filter(|d| d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == json!([["service"]]))
        .collect();
    assert_eq!(totals.len(), 1, "{documents:#?}");
    let total = totals[0];
    let stats = &response["stats"];
    assert_eq!(
        total["RecordsReceived"],
        stats["received"].as_f64().unwrap()
    );
    assert_eq!(
        total["RecordsSucceeded"],
        stats["successes"].as_f64().unwrap()
    );
    assert_eq!(total["RecordsDropped"], stats["dropped"].as_f64().unwrap());
    assert_eq!(total["RecordsFailed"], stats["failed"].as_f64().unwrap());
    assert_eq!(total["RecordsNotStarted"], 0.0);
    // Bob's signup went to the dead-letter queue.
    assert_eq!(total["RecordsDeadLettered"], 1);
    assert_eq!(total["service"], "signup");
    assert!(total["BatchDuration"].as_f64().unwrap() >= 0.0);
    // Every record entered by SIGNUP.
    let paths = by_dimension("path");
    assert_eq!(paths.len(), 1);
    assert_eq!(paths[0]["path"], "SIGNUP");
    assert_eq!(paths[0]["RecordsReceived"], 4);
    assert_eq!(paths[0]["RecordsFailed"], 1);
    // validate_signup ran for all four; store_user for the three valid ones; audit for two.
    let calls = |f: &str| {
        by_dimension("function")
            .iter()
            .find(|d| d["function"] == f)
            .map_or(0, |d| d["FunctionDuration"].as_array().map_or(1, Vec::len))
    };
    assert_eq!(
        (
            calls("validate_signup"),
            calls("store_user"),
            calls("audit")
        ),
        (4, 3, 2)
    );
    // Two welcome mails and one dead letter, all recorded (the memory sink's kind).
    let queues = by_dimension("queue_kind");
    let sent: f64 = queues
        .iter()
        .map(|d| d["MessagesSent"].as_f64().unwrap())
        .sum();
    assert_eq!(sent, sink.messages().len() as f64);
    assert_eq!(sent, 3.0);

    // The mailer's own metric, from its function, with the rest.
    let records: Vec<Value> = sink
        .messages()
        .iter()
        .filter(|m| m.queue.target() == "lpipe-graph-mailer")
        .enumerate()
        .map(|(i, m)| json!({"messageId": format!("m{i}"), "receiptHandle": "rh", "body": m.body, "eventSource": "aws:sqs",
                             "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lpipe-graph-mailer"}))
        .collect();
    let (_, documents) =
        with_metrics(graph::mailer(), &json!({"Records": records}).to_string()).await;
    let total = documents
        .iter()
        .find(|d| d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == json!([["service"]]))
        .unwrap();
    assert_eq!(total["WelcomeMailsSent"], 2);
    lpipe::testing::check_emf(total).unwrap();
}
