//! A complete test of a pipeline, as in the guide's Testing page (a test checks that the
//! page shows this file as it is). In your crate: `lpipe = { version = "0.1", features =
//! ["sqs", "kinesis", "test-kit"] }` under [dev-dependencies].
use lpipe::testing::{lambda_context, message, SqsEvent, SqsRecord};
use lpipe::{sink::MemorySink, QueueKind};
use serde_json::json;

#[tokio::test]
async fn a_valid_order_goes_to_the_stream_and_an_empty_one_is_dropped() {
    // Record outbound messages instead of sending them.
    let sink = MemorySink::new();
    let pipeline = lpipe_examples::orders::intake()
        .record_outbound(sink.clone())
        .build()
        .unwrap();
    let order = |id: &str, items| {
        message(
            "ORDER",
            json!({"order_id": id, "customer_id": "c-1", "items": items}),
        )
    };
    let event = SqsEvent::new()
        .record(
            SqsRecord::new(order(
                "o-1",
                json!([{"sku": "tea", "qty": 2, "unit_price_cents": 450}]),
            ))
            .id("m-1"),
        )
        .record(SqsRecord::new(order("o-2", json!([]))).id("m-2"))
        .to_string();

    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();

    assert_eq!(response["batchItemFailures"], json!([])); // nothing to retry
    assert_eq!(response["stats"]["dropped"], 1); // o-2 has no items
    let to_stream: Vec<_> = sink
        .messages()
        .into_iter()
        .filter(|m| m.queue.kind() == &QueueKind::KINESIS)
        .collect();
    assert_eq!(to_stream.len(), 1);
    assert_eq!(
        to_stream[0].kwarg_value("total_cents").as_deref(),
        Some("900")
    );
}

#[test]
fn the_readme_shows_this_test() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../lpipe/src/guide/testing.md"
    ))
    .unwrap();
    let this = include_str!("readme_example.rs");
    let shown = this
        .split("\n#[test]\nfn the_readme_shows_this_test")
        .next()
        .unwrap();
    assert!(
        readme.contains(&format!("```rust,ignore\n{shown}```")),
        "the guide's Testing page (lpipe/src/guide/testing.md) is stale: copy examples/tests/readme_example.rs (up to the_readme_shows_this_test) into it"
    );
}
