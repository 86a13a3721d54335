//! One trace across the graph example's two Lambdas: what the signup Lambda sends carries its
//! invocation's X-Ray trace header (checked in the SendMessageBatch requests themselves, since
//! moto does not keep `MessageSystemAttributes` on SendMessageBatch), and the mailer logs the
//! same trace id for the record that header arrives with.

use std::sync::{Arc, Mutex};

use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use lpipe::sqs::SqsSink;
use lpipe::testing::{lambda_context, moto_endpoint, CapturedLogs};
use lpipe::{runtime::LogFormat, QueueKind};
use lpipe_examples::graph;
use serde_json::{json, Value};

/// Records the JSON body of every SendMessageBatch request the client sends.
#[derive(Clone, Debug, Default)]
struct RecordRequests(Arc<Mutex<Vec<Value>>>);

impl Intercept for RecordRequests {
    fn name(&self) -> &'static str {
        "RecordRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        if target.ends_with("SendMessageBatch") {
            let body = request.body().bytes().expect("a buffered body");
            self.0.lock().unwrap().push(serde_json::from_slice(body)?);
        }
        Ok(())
    }
}

const HEADER: &str = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1";
const TRACE_ID: &str = "1-67891233-abcdef012345678912345678";

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn forwarded_messages_carry_the_trace_and_the_mailer_logs_its_id() {
    moto_endpoint("forwarded_messages_carry_the_trace_and_the_mailer_logs_its_id");
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let requests = RecordRequests::default();
    let client = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .interceptor(requests.clone())
            .build(),
    );
    for queue in [graph::mailer_queue(), graph::dropped_queue()] {
        client
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .unwrap();
    }

    // The signup Lambda, invoked with a trace header, as the Lambda runtime gives one.
    let signup = graph::signup()
        .sink(QueueKind::SQS, SqsSink::with_client(client))
        .build()
        .unwrap();
    let event =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/events/graph.json")).unwrap();
    let mut context = lambda_context(0);
    context.xray_trace_id = Some(HEADER.to_owned());
    let response = signup.handle(&event, context).await.unwrap();
    assert_eq!(response["stats"]["successes"], 2, "{response}");

    // Every entry sent (two welcome mails, one dead letter) carries the invocation's header.
    let entries: Vec<Value> = requests
        .0
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r["Entries"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(entries.len(), 3, "{entries:?}");
    for entry in &entries {
        assert_eq!(
            entry["MessageSystemAttributes"]["AWSTraceHeader"],
            json!({"DataType": "String", "StringValue": HEADER}),
            "{entry}"
        );
    }

    // The mailer receives the welcome mails with the header as an SQS attribute, as Lambda
    // delivers them, and logs their trace id on every line of the record.
    let records: Vec<Value> = entries
        .iter()
        .filter(|e| e["MessageBody"].as_str().unwrap().contains("SEND_WELCOME"))
        .enumerate()
        .map(|(i, e)| {
            json!({"messageId": format!("mail-{i}"), "receiptHandle": "rh", "body": e["MessageBody"],
                   "attributes": {"ApproximateReceiveCount": "1", "AWSTraceHeader": e["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]},
                   "messageAttributes": {}, "eventSource": "aws:sqs",
                   "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{}", graph::mailer_queue())})
        })
        .collect();
    assert_eq!(records.len(), 2);
    let mailer = graph::mailer().build().unwrap();
    let logs = CapturedLogs::new();
    let response = {
        let _guard = tracing::subscriber::set_default(logs.subscriber(LogFormat::Json, "info"));
        // The mailer's own invocation has another trace; each record keeps the one it came with.
        let mut context = lambda_context(0);
        context.request_id = "mailer-request".to_owned();
        context.xray_trace_id = Some("Root=1-00000000-000000000000000000000000".to_owned());
        mailer
            .handle(&json!({"Records": records}).to_string(), context)
            .await
            .unwrap()
    };
    assert_eq!(response["stats"]["successes"], 2, "{response}");
    let lines = logs.json_lines();
    let mails: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "sending welcome email")
        .collect();
    assert_eq!(mails.len(), 2, "{}", logs.text());
    for line in mails {
        assert_eq!(line["trace_id"], TRACE_ID, "{line}");
        assert_eq!(line["request_id"], "mailer-request", "{line}");
        assert_eq!(line["path"], "SEND_WELCOME", "{line}");
        assert_eq!(line["function"], "send_welcome", "{line}");
        assert!(
            line["record_id"].as_str().unwrap().starts_with("mail-"),
            "{line}"
        );
    }
}
