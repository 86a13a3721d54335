//! A bucket that notifies a queue, through moto's real S3 -> SQS notifications: the test event
//! S3 sends when the notification is configured, and an object's creation with a key S3 must
//! URL-encode; the same through an SNS topic (S3 -> SNS -> SQS), and through EventBridge (S3 ->
//! a rule -> SQS). Needs the moto_server the test command starts.

use std::sync::{Arc, Mutex};

mod common;

use lpipe_core::source::{EventBridgeEnvelope, S3Envelope};
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
    let routes = S3Envelope::new().route("ObjectCreated:*", "INGEST");
    let response = ingest_pipeline(SqsEnvelope::S3(routes), &seen)
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

/// A consumer whose INGEST notes the kwargs it got.
fn ingest_pipeline(envelope: SqsEnvelope, seen: &Arc<Mutex<Vec<Value>>>) -> Pipeline {
    let seen = seen.clone();
    let ingest = move |kwargs: Value| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(kwargs);
            Ok::<_, BoxError>(())
        }
    };
    Pipeline::builder()
        .path("INGEST", [Action::new().function(ingest)])
        .registry(Registry::empty())
        .event_source(SqsSource::new().envelope(envelope))
        .build()
        .unwrap()
}

async fn clients() -> (
    aws_sdk_s3::Client,
    aws_sdk_sqs::Client,
    aws_config::SdkConfig,
) {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    (s3, aws_sdk_sqs::Client::new(&config), config)
}

async fn put_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(b"hello".to_vec().into())
        .send()
        .await
        .expect("PutObject");
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn notifications_through_an_sns_topic_run_their_route() {
    moto_endpoint("notifications_through_an_sns_topic_run_their_route");
    let (s3, sqs, config) = clients().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .create_topic()
        .name(unique_name("uploads"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (url, arn) = common::queue_with_arn(&sqs, "uploads-via-sns").await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .expect("Subscribe");
    let bucket = unique_name("uploads").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let to_topic = aws_sdk_s3::types::TopicConfiguration::builder()
        .topic_arn(&topic)
        .events(aws_sdk_s3::types::Event::S3ObjectCreated)
        .build()
        .unwrap();
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .topic_configurations(to_topic)
                .build(),
        )
        .send()
        .await
        .expect("PutBucketNotificationConfiguration");
    put_object(&s3, &bucket, "q1 report é.pdf").await;

    let received = common::receive(&sqs, &url).await;
    assert_eq!(received.len(), 2, "the test event and the object's");
    let seen = Arc::default();
    let routes = S3Envelope::new().route("ObjectCreated:*", "INGEST");
    let response = ingest_pipeline(SqsEnvelope::SnsS3(routes), &seen)
        .handle(&common::lambda_event(received), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 2, "{response}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["bucket"], bucket.as_str());
    assert_eq!(seen[0]["key"], "q1 report é.pdf");
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn events_through_eventbridge_run_their_route() {
    moto_endpoint("events_through_eventbridge_run_their_route");
    let (s3, sqs, config) = clients().await;
    let events = aws_sdk_cloudwatchevents::Client::new(&config);
    let (url, arn) = common::queue_with_arn(&sqs, "uploads-via-eventbridge").await;
    let bucket = unique_name("uploads").to_lowercase();
    let rule = unique_name("s3-objects");
    let pattern =
        serde_json::json!({"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}});
    events
        .put_rule()
        .name(&rule)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("PutRule");
    events
        .put_targets()
        .rule(&rule)
        .targets(
            aws_sdk_cloudwatchevents::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("PutTargets");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .event_bridge_configuration(
                    aws_sdk_s3::types::EventBridgeConfiguration::builder().build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("PutBucketNotificationConfiguration");
    put_object(&s3, &bucket, "q1 report é.pdf").await;

    let received = common::receive(&sqs, &url).await;
    // The object's creation, and, from moto, an "Object Tags Added" for the same put.
    let others = received.len() - 1;
    assert!(others <= 1, "{received:?}");
    let seen = Arc::default();
    let routes = S3Envelope::new().route("Object Created", "INGEST");
    let envelope = SqsEnvelope::EventBridge(EventBridgeEnvelope::new().s3(routes));
    let response = ingest_pipeline(envelope, &seen)
        .handle(&common::lambda_event(received), lambda_context(0))
        .await
        .unwrap();
    // Created runs; an S3 event no route takes is dropped.
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    assert_eq!(response["stats"]["dropped"], others, "{response}");
    let seen = seen.lock().unwrap();
    // EventBridge does not URL-encode keys.
    assert_eq!(seen[0]["key"], "q1 report é.pdf");
    assert_eq!(seen[0]["bucket"], bucket.as_str());
    assert_eq!(seen[0]["size"], 5);
    assert!(seen[0]["etag"].is_string(), "{:?}", seen[0]);
}
