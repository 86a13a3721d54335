//! One record handled by the SQS worker and then by the Lambda handler, on one DynamoDB table
//! (moto_server): it runs once. The worker's keys are namespaced by the function's name as
//! under Lambda (`AWS_LAMBDA_FUNCTION_NAME`), not by an empty name.
//!
//! Its own test binary: it sets `AWS_LAMBDA_FUNCTION_NAME` for the worker, which no other
//! test may see.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use lpipe::dynamodb::DynamoDbStore;
use lpipe::sqs::worker::{self, WorkerOptions};
use lpipe::testing::{lambda_context, message, moto_endpoint, unique_name, SqsEvent};
use lpipe::{sink::MemorySink, Idempotency};
use lpipe_examples::place_order::{self, Warehouse};
use serde_json::json;

const FUNCTION: &str = "orders-intake";

async fn table(config: &aws_config::SdkConfig) -> DynamoDbStore {
    let client = aws_sdk_dynamodb::Client::new(config);
    let table = unique_name("lpipe-worker-then-lambda");
    let key = KeySchemaElement::builder()
        .attribute_name("id")
        .key_type(KeyType::Hash)
        .build()
        .unwrap();
    let attribute = AttributeDefinition::builder()
        .attribute_name("id")
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap();
    client
        .create_table()
        .table_name(&table)
        .key_schema(key)
        .attribute_definitions(attribute)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("the table is created on moto");
    DynamoDbStore::new(client, table)
}

#[tokio::test]
#[ignore = "needs moto_server: run ./scripts/test"]
async fn a_record_handled_by_the_worker_then_by_the_lambda_runs_once() {
    moto_endpoint("a_record_handled_by_the_worker_then_by_the_lambda_runs_once");
    // As Lambda's environment has it; this test binary runs no other test.
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", FUNCTION);
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = table(&config).await;
    let warehouse = Warehouse::default();
    let forwarded = MemorySink::new();
    let pipeline = place_order::pipeline(
        warehouse.clone(),
        Idempotency::new(store).key_from(["order_id"]),
    )
    .record_outbound(forwarded.clone())
    .registry(lpipe::registry())
    .build()
    .unwrap();

    let order = message(
        "PLACE_ORDER",
        json!({"order_id": "o-42", "item": "teapot", "quantity": 1}),
    );
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = unique_name("lpipe-worker-then-lambda");
    let url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&url)
        .message_body(order.to_string())
        .send()
        .await
        .unwrap();

    // The worker takes it, and stops once the order is placed.
    let placed = {
        let warehouse = warehouse.clone();
        async move {
            while warehouse.reservations().is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let mut options = WorkerOptions::new(&url);
    options.wait_seconds = 1;
    let stats = tokio::time::timeout(
        Duration::from_secs(60),
        worker::run(pipeline.clone(), sqs.clone(), options, placed),
    )
    .await
    .expect("the worker takes the order within a minute")
    .expect("the worker runs");
    assert_eq!(stats.deleted, 1, "{stats:?}");
    assert_eq!(forwarded.messages().len(), 1);

    // The same record, redelivered to the Lambda (a replay, or both consuming during a
    // cut-over): Lambda's context names the function as the environment does.
    let mut context = lambda_context(30_000);
    context.env_config = Arc::new(lpipe::lambda_runtime::Config {
        function_name: FUNCTION.to_owned(),
        ..Default::default()
    });
    let response = pipeline
        .handle(&SqsEvent::new().message(order).to_string(), context)
        .await
        .unwrap();
    assert_eq!(response["stats"]["duplicates"], 1, "{response}");
    assert_eq!(warehouse.reservations().len(), 1);
    assert_eq!(warehouse.reservations()["o-42"], 1, "placed once");
    assert_eq!(forwarded.messages().len(), 1, "forwarded once");
}
