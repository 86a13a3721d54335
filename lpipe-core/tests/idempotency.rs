//! Idempotency's configuration errors and bad keys; its semantics per store are tested with
//! the `orders` example (examples/tests/orders_idempotency.rs).

use lpipe_core::testing::{lambda_context, message, raw_event, CapturingReporter};
use lpipe_core::{
    Action, BoxError, ErrorKind, Idempotency, InvalidConfigurationError, MemoryIdempotencyStore,
    NoParams, Pipeline,
};
use serde_json::json;

async fn ok(_: NoParams) -> Result<(), BoxError> {
    Ok(())
}

fn idempotency() -> Idempotency {
    Idempotency::new(MemoryIdempotencyStore::new())
}

#[test]
fn the_build_names_an_unknown_idempotent_path_and_an_empty_key() {
    let e = Pipeline::builder()
        .path("A", [Action::new().function(ok)])
        .idempotent_in("B", idempotency())
        .build()
        .unwrap_err();
    assert!(
        matches!(&e, InvalidConfigurationError::UnknownIdempotentPath { path } if path.as_str() == "B"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "InvalidConfigurationError: idempotent_in names path B, which is not declared"
    );
    let e = Pipeline::builder()
        .path("A", [Action::new().function(ok)])
        .idempotent(idempotency().key_from(Vec::<String>::new()))
        .build()
        .unwrap_err();
    assert!(
        matches!(e, InvalidConfigurationError::EmptyIdempotencyKey),
        "{e}"
    );
}

#[tokio::test]
async fn a_record_without_its_key_is_dropped_naming_the_kwarg() {
    let reporter = CapturingReporter::new();
    let store = MemoryIdempotencyStore::new();
    let pipeline = Pipeline::builder()
        .path("A", [Action::new().function(ok)])
        .idempotent(Idempotency::new(store.clone()).key_from(["order_id"]))
        .reporter(reporter.clone())
        .build()
        .unwrap();
    let response = pipeline
        .handle(
            &raw_event(&[
                message("A", json!({"order_id": "o-1"})),
                message("A", json!({"id": 1})),
            ]),
            lambda_context(0),
        )
        .await
        .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 2, "successes": 1, "dropped": 1, "failed": 0})
    );
    let reports = reporter.reports();
    assert_eq!(reports[0].kind, ErrorKind::InvalidPayload);
    lpipe_core::testing::assert_contains(
        &reports[0].message,
        "the idempotency key needs the kwarg 'order_id', which this record lacks",
    );
    assert_eq!(store.items().len(), 1);
    // A path that is not idempotent is not keyed: the pipeline-wide setting covers paths that
    // do not say otherwise, and a path's own replaces it.
    let other = MemoryIdempotencyStore::new();
    let pipeline = Pipeline::builder()
        .path("A", [Action::new().function(ok)])
        .path("B", [Action::new().function(ok)])
        .idempotent(Idempotency::new(store.clone()))
        .idempotent_in("B", Idempotency::new(other.clone()))
        .build()
        .unwrap();
    pipeline
        .handle(
            &raw_event(&[message("A", json!({"n": 1})), message("B", json!({"n": 1}))]),
            lambda_context(0),
        )
        .await
        .unwrap();
    assert_eq!(store.items().len(), 2);
    assert_eq!(other.items().len(), 1);
    assert!(
        other.items().keys().all(|k| k.contains(".B#")),
        "{:?}",
        other.items()
    );
}
