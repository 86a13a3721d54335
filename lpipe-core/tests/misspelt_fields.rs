//! A field named by `key_from`, `message_group_id_from` or `partition_key_from` that the path or
//! queue can be shown never to receive fails the build, naming it; where it cannot be known at
//! build time (a returned payload), a message without it fails its record, naming it, and is
//! never sent with a fallback group or key.

use lpipe_core::testing::{assert_contains, lambda_context, message, raw_event, CapturingReporter};
use lpipe_core::{
    error::QueueProblem, idempotency::MemoryIdempotencyStore, sink::MemorySink, Action, BoxError,
    ErrorKind, Idempotency, InvalidConfigurationError, OnError, Payload, Pipeline, Queue,
};
use serde_json::json;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Order {
    order_id: String,
    customer: String,
}

async fn validate(_: Order) -> Result<(), BoxError> {
    Ok(())
}

fn forwarding(queue: Queue) -> lpipe_core::PipelineBuilder {
    Pipeline::builder()
        .path("ORDER", [Action::new().function(validate).queue(queue)])
        .record_outbound(MemorySink::new())
}

#[test]
fn a_misspelt_group_or_partition_field_fails_the_build_naming_it() {
    for queue in [
        Queue::sqs("orders.fifo").message_group_id_from("custmer"),
        Queue::kinesis("orders").partition_key_from("custmer"),
    ] {
        let option = queue.option_keys().next().unwrap().to_owned();
        let e = forwarding(queue).build().unwrap_err();
        match &e {
            InvalidConfigurationError::Queue {
                problem:
                    QueueProblem::FieldNotForwarded {
                        option: o,
                        field,
                        forwarded,
                    },
                ..
            } => {
                assert_eq!(o, &option);
                assert_eq!(field, "custmer");
                assert_eq!(forwarded, &["customer", "order_id"]);
            }
            other => panic!("not a field error: {other}"),
        }
        assert_contains(e.to_string(), "action 1 of path ORDER");
        assert_contains(e.to_string(), "names the kwarg 'custmer'");
        assert_contains(e.to_string(), "it passes: customer, order_id");
    }
    // Spelt right, it builds.
    let right = forwarding(Queue::sqs("orders.fifo").message_group_id_from("customer")).build();
    assert!(right.is_ok());
}

#[test]
fn a_misspelt_idempotency_key_field_fails_the_build_naming_it() {
    let e = Pipeline::builder()
        .path("ORDER", [Action::new().function(validate)])
        .idempotent_in(
            "ORDER",
            Idempotency::new(MemoryIdempotencyStore::new()).key_from(["ordr_id"]),
        )
        .build()
        .unwrap_err();
    assert!(
        matches!(&e, InvalidConfigurationError::UnknownKeyField { path, field, taken }
            if path.as_str() == "ORDER" && field == "ordr_id" && taken == &["customer", "order_id"]),
        "{e}"
    );
    assert_contains(e.to_string(), "path ORDER");
    assert_contains(e.to_string(), "'ordr_id'");
    // The whole pipeline's setting is checked against every path.
    let e = Pipeline::builder()
        .path("ORDER", [Action::new().function(validate)])
        .idempotent(Idempotency::new(MemoryIdempotencyStore::new()).key_from(["ordr_id"]))
        .build()
        .unwrap_err();
    assert!(
        matches!(e, InvalidConfigurationError::UnknownKeyField { .. }),
        "{e}"
    );
    let right = Pipeline::builder()
        .path("ORDER", [Action::new().function(validate)])
        .idempotent(Idempotency::new(MemoryIdempotencyStore::new()).key_from(["order_id"]))
        .build();
    assert!(right.is_ok());
}

async fn route(order: serde_json::Value) -> Result<Payload, BoxError> {
    Ok(Payload::to_queue(
        Queue::sqs("orders.fifo").message_group_id_from("customer"),
        &order,
    )?)
}

/// A returned payload's queue is known only when it runs: a message without the group's kwarg
/// fails its record by the error policy, naming the kwarg; it is not sent in a group of its
/// own.
#[tokio::test]
async fn a_returned_message_without_its_group_field_fails_its_record_naming_it() {
    for (policy, dropped, failed) in [(OnError::Drop, 1, 0), (OnError::Retry, 0, 1)] {
        let sent = MemorySink::new();
        let reporter = CapturingReporter::new();
        let pipeline = Pipeline::builder()
            .path("ROUTE", [Action::new().function(route)])
            .record_outbound(sent.clone())
            .reporter(reporter.clone())
            .on_error(policy)
            .build()
            .unwrap();
        let event = raw_event(&[
            message("ROUTE", json!({"order_id": "o-1", "customer": "c-1"})),
            message("ROUTE", json!({"order_id": "o-2", "custmer": "c-2"})),
        ]);
        let response = pipeline.handle(&event, lambda_context(0)).await;
        let stats = match &response {
            Ok(r) => r["stats"].clone(),
            Err(_) => json!({"failed": 1}),
        };
        assert_eq!(stats["failed"], failed, "{response:?}");
        if dropped > 0 {
            assert_eq!(stats["dropped"], dropped, "{response:?}");
        }
        assert_eq!(sent.messages().len(), 1, "only o-1 is sent");
        let reports = reporter.reports();
        assert_eq!(reports.len(), 1);
        assert_ne!(reports[0].kind, ErrorKind::InvalidPayload);
        assert_contains(
            &reports[0].message,
            "message_group_id_from names the kwarg 'customer', which this message lacks",
        );
    }
}
