//! The DynamoDB Streams source: routes by event name, items as plain JSON kwargs, metadata on
//! the context, partial batch responses that stop at the first failure.

use std::sync::{Arc, Mutex};

use lpipe_core::testing::{lambda_context, DynamoDbEvent};
use lpipe_core::{
    registry::Registry, Action, BoxError, Context, FailCatastrophically, Pipeline, PipelineBuilder,
};
use lpipe_dynamodb::DynamoDbSource;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
struct Order {
    order_id: String,
    quantity: u32,
}

type Seen = Arc<Mutex<Vec<Value>>>;

fn pipeline(source: DynamoDbSource, seen: &Seen) -> PipelineBuilder {
    let place = {
        let seen = seen.clone();
        move |order: Order, ctx: Context| {
            let seen = seen.clone();
            async move {
                if order.quantity == 99 {
                    return Err(FailCatastrophically::new("the warehouse is busy").into());
                }
                let meta = ctx.record().dynamodb().expect("DynamoDB metadata").clone();
                seen.lock().unwrap().push(json!({
                    "path": ctx.path().as_str(),
                    "order_id": order.order_id,
                    "event_name": meta.event_name,
                    "keys": meta.keys.to_value(),
                    "old_image": meta.old_image.map(|i| i.to_value()),
                    "id": ctx.record().id(),
                }));
                Ok::<_, BoxError>(())
            }
        }
    };
    let cancel = {
        let seen = seen.clone();
        move |order: Order, ctx: Context| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(json!({"path": ctx.path().as_str(), "order_id": order.order_id}));
                Ok::<_, BoxError>(())
            }
        }
    };
    Pipeline::builder()
        .path("PLACE_ORDER", [Action::new().function(place)])
        .path("CANCEL_ORDER", [Action::new().function(cancel)])
        .registry(Registry::from_inventory().with_source(Arc::new(source)))
}

async fn handle(
    builder: PipelineBuilder,
    event: &str,
) -> Result<Value, lpipe_core::error::InvocationError> {
    builder
        .build()
        .expect("a valid pipeline")
        .handle(event, lambda_context(0))
        .await
}

fn routed() -> DynamoDbSource {
    DynamoDbSource::new()
        .route("INSERT", "PLACE_ORDER")
        .route("REMOVE", "CANCEL_ORDER")
}

#[tokio::test]
async fn routes_run_their_paths_with_the_item_and_its_metadata() {
    let seen = Seen::default();
    let event = DynamoDbEvent::new()
        .keys(["order_id"])
        .insert(json!({"order_id": "o-1", "quantity": 2, "note": null}))
        .remove(json!({"order_id": "o-0", "quantity": 1}))
        .to_string();
    let response = handle(pipeline(routed(), &seen), &event).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(
        response["stats"],
        json!({"received": 2, "successes": 2, "dropped": 0, "failed": 0})
    );
    let seen = seen.lock().unwrap();
    let parsed: Value = serde_json::from_str(&event).unwrap();
    assert_eq!(
        seen[0],
        json!({
            "path": "PLACE_ORDER",
            "order_id": "o-1",
            "event_name": "INSERT",
            "keys": {"order_id": "o-1"},
            "old_image": null,
            "id": parsed["Records"][0]["dynamodb"]["SequenceNumber"],
        })
    );
    // REMOVE runs its path with the item as it was.
    assert_eq!(seen[1], json!({"path": "CANCEL_ORDER", "order_id": "o-0"}));
}

#[tokio::test]
async fn a_failure_stops_the_batch_and_names_the_sequence_numbers() {
    let seen = Seen::default();
    let event = DynamoDbEvent::new()
        .insert(json!({"id": "a", "order_id": "o-1", "quantity": 1}))
        .insert(json!({"id": "b", "order_id": "o-2", "quantity": 99}))
        .insert(json!({"id": "c", "order_id": "o-3", "quantity": 1}))
        .to_string();
    let parsed: Value = serde_json::from_str(&event).unwrap();
    let seq = |i: usize| parsed["Records"][i]["dynamodb"]["SequenceNumber"].clone();
    let response = handle(pipeline(routed(), &seen), &event).await.unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": seq(1)}, {"itemIdentifier": seq(2)}])
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the record after the failure did not run"
    );

    // Without partial responses, the invocation fails.
    let err = handle(
        pipeline(routed().without_partial_responses(), &Seen::default()),
        &event,
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "FailCatastrophically");
}

#[tokio::test]
async fn an_event_name_without_a_route_or_an_item_that_does_not_convert_is_dropped_with_why() {
    let seen = Seen::default();
    let mut event: Value = serde_json::from_str(
        &DynamoDbEvent::new()
            .modify(
                json!({"id": "a", "order_id": "o-1", "quantity": 1}),
                json!({"id": "a", "order_id": "o-1", "quantity": 2}),
            )
            .insert(json!({"id": "b", "order_id": "o-2", "quantity": 1}))
            .to_string(),
    )
    .unwrap();
    event["Records"][1]["dynamodb"]["NewImage"]["quantity"] = json!({"N": "two"});
    let reporter = lpipe_core::testing::CapturingReporter::new();
    let response = handle(
        pipeline(routed(), &seen).reporter(reporter.clone()),
        &event.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 2, "successes": 0, "dropped": 2, "failed": 0})
    );
    let reports = reporter.reports();
    lpipe_core::testing::assert_contains(
        &reports[0].message,
        "no route for DynamoDB stream records of eventName 'MODIFY' (routes: INSERT -> PLACE_ORDER, REMOVE -> CANCEL_ORDER)",
    );
    lpipe_core::testing::assert_contains(
        &reports[1].message,
        "NewImage: attribute quantity: N is not a number: \"two\"",
    );
}

#[tokio::test]
async fn without_routes_each_item_is_an_lpipe_message() {
    let seen = Seen::default();
    let event = DynamoDbEvent::new()
        .insert(json!({"id": "m-1", "path": "PLACE_ORDER", "kwargs": {"order_id": "o-5", "quantity": 1}}))
        .to_string();
    let response = handle(pipeline(DynamoDbSource::new(), &seen), &event)
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    assert_eq!(seen.lock().unwrap()[0]["order_id"], "o-5");
}

#[tokio::test]
async fn a_keys_only_stream_gives_the_keys_as_kwargs() {
    let seen = Seen::default();
    let mut event: Value = serde_json::from_str(
        &DynamoDbEvent::new()
            .keys(["order_id", "quantity"])
            .insert(json!({"order_id": "o-8", "quantity": 4}))
            .to_string(),
    )
    .unwrap();
    let data = event["Records"][0]["dynamodb"].as_object_mut().unwrap();
    data.remove("NewImage");
    data.insert("StreamViewType".into(), json!("KEYS_ONLY"));
    let response = handle(pipeline(routed(), &seen), &event.to_string())
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    assert_eq!(seen.lock().unwrap()[0]["order_id"], "o-8");
}
