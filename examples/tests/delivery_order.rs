//! A source's order holds through delivery: a record whose message is refused at delivery
//! holds back the later records of its ordering key (an SQS FIFO group, a Kinesis partition
//! key): they fail with it, and their messages are not sent. Against moto_server behind the
//! fault proxy this test owns (`scripts/fault_proxy.py --refuse-containing`), which refuses
//! every SendMessageBatch entry whose body names the poisoned order, as SQS does for a
//! failed entry (`InternalError`, not the sender's fault).

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use lpipe::sqs::SqsSink;
use lpipe::testing::{
    message, moto_endpoint, unique_name, KinesisEvent, KinesisRecord, SqsEvent, SqsRecord,
};
use lpipe::{sink::RetryPolicy, Action, BoxError, Pipeline, Queue, QueueKind};
use lpipe_aws::testing::FaultProxy;
use serde_json::{json, Value};

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Order {
    order_id: String,
    customer: String,
}

async fn accept(_: Order) -> Result<(), BoxError> {
    Ok(())
}

/// Clients straight to moto, and through the proxy.
async fn clients(
    test: &str,
    refused: &str,
) -> (aws_sdk_sqs::Client, aws_sdk_sqs::Client, FaultProxy) {
    let moto = moto_endpoint(test);
    let proxy = FaultProxy::start(&moto, &["--rate", "0", "--refuse-containing", refused]);
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let direct = aws_sdk_sqs::Client::new(&config);
    let proxied = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .endpoint_url(proxy.endpoint())
            .build(),
    );
    (direct, proxied, proxy)
}

/// A pipeline forwarding each order to `target` (grouped by customer when it is FIFO), sent
/// through `client`, consuming `source`.
fn forwarding(client: aws_sdk_sqs::Client, target: &str, source: &str) -> Pipeline {
    let mut queue = Queue::sqs(target).path("STORE");
    if target.ends_with(".fifo") {
        queue = queue.message_group_id_from("customer");
    }
    Pipeline::builder()
        .path("ORDER", [Action::new().function(accept).queue(queue)])
        .sink(QueueKind::SQS, SqsSink::with_client(client))
        .only_source(source)
        .retry_policy(RetryPolicy {
            max_attempts: 2,
            backoff: lpipe::sink::Backoff::new(Duration::from_millis(5), Duration::from_millis(10)),
        })
        .build()
        .unwrap()
}

async fn create(client: &aws_sdk_sqs::Client, name: &str) -> String {
    let mut request = client.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    request.send().await.unwrap().queue_url.unwrap()
}

/// The order ids of the messages in the queue.
async fn received(client: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let out = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    out.messages
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            body["kwargs"]["order_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn order(id: &str, customer: &str) -> Value {
    message("ORDER", json!({"order_id": id, "customer": customer}))
}

fn failed_ids(response: &Value) -> Vec<&str> {
    response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect()
}

#[ignore = "needs moto_server: run ./scripts/test"]
#[tokio::test]
async fn a_fifo_forward_refused_at_delivery_holds_back_the_rest_of_its_group() {
    let poisoned = unique_name("poisoned");
    let (direct, proxied, _proxy) = clients(
        "a_fifo_forward_refused_at_delivery_holds_back_the_rest_of_its_group",
        &poisoned,
    )
    .await;
    let target = unique_name("orders-out") + ".fifo";
    let url = create(&direct, &target).await;
    let pipeline = forwarding(proxied, &target, "sqs");
    let event = SqsEvent::fifo()
        .record(SqsRecord::new(order(&poisoned, "c1")).id("m-0").group("c1"))
        .record(SqsRecord::new(order("o-1", "c2")).id("m-1").group("c2"))
        .record(SqsRecord::new(order("o-2", "c1")).id("m-2").group("c1"))
        .record(SqsRecord::new(order("o-3", "c1")).id("m-3").group("c1"))
        .record(SqsRecord::new(order("o-4", "c2")).id("m-4").group("c2"))
        .to_string();
    let response = pipeline
        .handle(&event, lpipe::testing::lambda_context(30_000))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["m-0", "m-2", "m-3"], "{response}");
    let mut sent = received(&direct, &url).await;
    sent.sort();
    assert_eq!(sent, ["o-1", "o-4"], "group c1's later orders are not sent");
}

#[ignore = "needs moto_server: run ./scripts/test"]
#[tokio::test]
async fn a_kinesis_forward_refused_at_delivery_holds_back_the_rest_of_its_partition_key() {
    let poisoned = unique_name("poisoned");
    let (direct, proxied, _proxy) = clients(
        "a_kinesis_forward_refused_at_delivery_holds_back_the_rest_of_its_partition_key",
        &poisoned,
    )
    .await;
    let target = unique_name("orders-out");
    let url = create(&direct, &target).await;
    let pipeline = forwarding(proxied, &target, "kinesis");
    let record = |id: &str, customer: &str, n: usize| {
        KinesisRecord::new(order(id, customer))
            .partition_key(customer)
            .sequence_number(KinesisEvent::sequence_number_of(n))
    };
    let event = KinesisEvent::new()
        .record(record(&poisoned, "c1", 0))
        .record(record("o-1", "c2", 1))
        .record(record("o-2", "c1", 2))
        .to_string();
    let response = pipeline
        .handle(&event, lpipe::testing::lambda_context(30_000))
        .await
        .unwrap();
    assert_eq!(
        failed_ids(&response),
        [
            KinesisEvent::sequence_number_of(0),
            KinesisEvent::sequence_number_of(2)
        ],
        "{response}"
    );
    assert_eq!(received(&direct, &url).await, ["o-1"]);
}
