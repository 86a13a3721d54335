//! A bucket that notifies a queue, through moto's real S3 -> SQS notifications: the test event
//! S3 sends when the notification is configured, and an object's creation with a key S3 must
//! URL-encode. Needs the moto_server the test command starts.

use std::sync::{Arc, Mutex};

mod common;

use lpipe_core::source::S3Envelope;
use lpipe_core::testing::{lambda_context, moto_endpoint, unique_name};
use lpipe_core::{registry::Registry, Action, BoxError, Pipeline};
use lpipe_sqs::{SqsEnvelope, SqsSource};
use serde_json::Value;

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn a_buckets_notifications_run_their_route_and_its_test_event_is_acknowledged() {
    moto_endpoint("a_buckets_notifications_run_their_route_and_its_test_event_is_acknowledged");
    // The standard AWS configuration: the test command points AWS_ENDPOINT_URL at moto.
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (url, arn) = common::queue_with_arn(&sqs, "uploads").await;
    let bucket = unique_name("uploads").to_lowercase();
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("CreateBucket");
    let to_queue = aws_sdk_s3::types::QueueConfiguration::builder()
        .queue_arn(arn)
        .events(aws_sdk_s3::types::Event::S3ObjectCreated)
        .build()
        .unwrap();
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .queue_configurations(to_queue)
                .build(),
        )
        .send()
        .await
        .expect("PutBucketNotificationConfiguration");
    s3.put_object()
        .bucket(&bucket)
        .key("q1 report é.pdf")
        .body(b"hello".to_vec().into())
        .send()
        .await
        .expect("PutObject");

    let received = common::receive(&sqs, &url).await;
    assert_eq!(
        received.len(),
        2,
        "the test event and the object's: {received:?}"
    );
    let event = common::lambda_event(received);

    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let ingest = {
        let seen = seen.clone();
        move |kwargs: Value| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(kwargs);
                Ok::<_, BoxError>(())
            }
        }
    };
    let routes = S3Envelope::new().route("ObjectCreated:*", "INGEST");
    let response = Pipeline::builder()
        .path("INGEST", [Action::new().function(ingest)])
        .registry(Registry::empty())
        .event_source(SqsSource::new().envelope(SqsEnvelope::S3(routes)))
        .only_source("sqs")
        .build()
        .unwrap()
        .handle(&event, lambda_context(0))
        .await
        .unwrap();
    // Both succeed (the test event without running), so both are deleted; nothing dropped.
    assert_eq!(response["stats"]["successes"], 2, "{response}");
    assert_eq!(response["stats"]["dropped"], 0, "{response}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["bucket"], bucket.as_str());
    assert_eq!(seen[0]["key"], "q1 report é.pdf");
    assert_eq!(seen[0]["size"], 5);
}
