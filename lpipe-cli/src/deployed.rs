//! `lpipe check --deployed`: what is deployed, read through the AWS API, against the system
//! and AWS's advice for batch Lambdas. Each Lambda's event source mappings (partial batch
//! responses, on-failure destinations, batch sizes), the queues they read (visibility
//! timeouts, redrive policies), and for a Lambda invoked asynchronously, its on-failure
//! destination.

use aws_sdk_lambda::types::{EventSourceMappingConfiguration, FunctionResponseType};
use serde_json::Value;

use crate::check::{Level, Problem};
use crate::model::Model;
use crate::system::short;

/// Where the system is deployed.
pub struct Deployed<'a> {
    /// The AWS configuration (region, credentials, endpoint).
    pub config: &'a aws_config::SdkConfig,
    /// The prefix the template was made with (`lpipe template --prefix`).
    pub prefix: &'a str,
}

struct Found {
    problems: Vec<Problem>,
}

impl Found {
    fn error(&mut self, rule: &'static str, lambda: &str, resource: &str, message: String) {
        self.problems.push(Problem {
            level: Level::Error,
            rule,
            lambda: lambda.to_owned(),
            path: None,
            queue: Some(resource.to_owned()),
            field: None,
            message,
        });
    }
}

/// Every setting of the deployed system that contradicts it or AWS's advice, with its fix.
///
/// # Errors
///
/// An AWS call that failed for another reason than a missing function or queue.
pub async fn check_deployed(model: &Model<'_>, at: &Deployed<'_>) -> Result<Vec<Problem>, String> {
    let lambda = aws_sdk_lambda::Client::new(at.config);
    let sqs = aws_sdk_sqs::Client::new(at.config);
    let mut found = Found {
        problems: Vec::new(),
    };
    for (name, system_lambda) in &model.system.lambdas {
        let function = format!("{}{name}", at.prefix);
        let configuration = match lambda
            .get_function_configuration()
            .function_name(&function)
            .send()
            .await
        {
            Ok(c) => c,
            Err(e) => {
                let e = aws_sdk_lambda::error::DisplayErrorContext(e);
                found.error("not-deployed", name, &format!("lambda:{function}"), format!("the function {function} cannot be read ({e}): deploy the system's template"));
                continue;
            }
        };
        let timeout = configuration.timeout().unwrap_or(3) as u32;
        let mappings = lambda
            .list_event_source_mappings()
            .function_name(&function)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "ListEventSourceMappings for {function}: {}",
                    aws_sdk_lambda::error::DisplayErrorContext(e)
                )
            })?;
        let description = &model.descriptions[name];
        for trigger in &system_lambda.triggers {
            let lambda_at = (name.as_str(), function.as_str(), timeout);
            mapping(
                &sqs,
                &mut found,
                lambda_at,
                trigger,
                &mappings,
                description,
                at.prefix,
            )
            .await?;
        }
        if system_lambda
            .triggers
            .iter()
            .any(|t| t.invokes_asynchronously())
        {
            invoke_config(&lambda, &mut found, name, &function).await;
        }
    }
    found.problems.sort();
    Ok(found.problems)
}

/// One trigger of a Lambda: the mapping that reads it, and for a queue, the queue.
async fn mapping(
    sqs: &aws_sdk_sqs::Client,
    found: &mut Found,
    (name, function, timeout): (&str, &str, u32),
    trigger: &crate::system::Trigger,
    mappings: &aws_sdk_lambda::operation::list_event_source_mappings::ListEventSourceMappingsOutput,
    description: &Value,
    prefix: &str,
) -> Result<(), String> {
    let Some(resource) = trigger.resource() else {
        return Ok(());
    };
    let Some(kind) = resource.split_once(':').map(|(k, _)| k) else {
        return Ok(());
    };
    if !matches!(kind, "sqs" | "kinesis" | "dynamodb") {
        return Ok(()); // invoked by the service, not polled by a mapping
    }
    let wanted = format!("{prefix}{}", short(&resource));
    let mapping = mappings.event_source_mappings().iter().find(|m| {
        m.event_source_arn()
            .is_some_and(|arn| names(arn, kind, &wanted))
    });
    let Some(mapping) = mapping else {
        found.error("no-mapping", name, &resource, format!("no event source mapping of {function} reads {wanted}: create it (the template's Events)"));
        return Ok(());
    };
    let partial = answers_partially(description, kind);
    if partial && !reports_item_failures(mapping) {
        found.error("no-report-batch-item-failures", name, &resource, format!(
            "the mapping {} does not have ReportBatchItemFailures, so every partial failure is retried as a whole batch (and successes run again): set FunctionResponseTypes to [ReportBatchItemFailures] (aws lambda update-event-source-mapping --uuid {} --function-response-types ReportBatchItemFailures)",
            mapping.uuid().unwrap_or("?"), mapping.uuid().unwrap_or("?")));
    }
    if kind == "sqs" {
        queue(sqs, found, (name, &resource, &wanted), mapping, timeout).await?;
    } else if mapping
        .destination_config()
        .and_then(|d| d.on_failure())
        .and_then(|f| f.destination())
        .is_none()
    {
        found.error("no-on-failure-destination", name, &resource, format!(
            "the stream mapping {} has no on-failure destination: a batch it gives up on is lost without a trace; set DestinationConfig.OnFailure to a queue (aws lambda update-event-source-mapping --uuid {} --destination-config '{{\"OnFailure\":{{\"Destination\":\"QUEUE_ARN\"}}}}')",
            mapping.uuid().unwrap_or("?"), mapping.uuid().unwrap_or("?")));
    }
    Ok(())
}

/// A function a topic, bucket or rule invokes: an on-failure destination for the events
/// Lambda gives up on after its retries.
async fn invoke_config(
    lambda: &aws_sdk_lambda::Client,
    found: &mut Found,
    name: &str,
    function: &str,
) {
    let config = lambda
        .get_function_event_invoke_config()
        .function_name(function)
        .send()
        .await;
    let destination = config.as_ref().ok().and_then(|c| {
        c.destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|f| f.destination())
    });
    if destination.is_none() {
        found.error("no-async-on-failure-destination", name, &format!("lambda:{function}"), format!(
            "{function} is invoked asynchronously (by a topic, bucket or rule) and has no on-failure destination: an event that fails its tries is lost without a trace; give it one (aws lambda put-function-event-invoke-config --function-name {function} --destination-config '{{\"OnFailure\":{{\"Destination\":\"QUEUE_ARN\"}}}}')"));
    }
}

/// Whether an event source ARN is the queue, stream or table stream named `name`.
fn names(arn: &str, kind: &str, name: &str) -> bool {
    match kind {
        "sqs" => arn.rsplit(':').next() == Some(name),
        "kinesis" => arn.ends_with(&format!(":stream/{name}")),
        _ => arn.contains(&format!(":table/{name}/stream/")),
    }
}

/// Whether the Lambda answers this source with partial batch responses.
fn answers_partially(description: &Value, kind: &str) -> bool {
    match (kind, crate::model::source(description, kind)) {
        ("sqs", Some(s)) => s["mode"] != "classic",
        (_, Some(s)) => s["partial_responses"] != false,
        // Detected sources answer partially by default.
        (_, None) => true,
    }
}

fn reports_item_failures(mapping: &EventSourceMappingConfiguration) -> bool {
    mapping
        .function_response_types()
        .contains(&FunctionResponseType::ReportBatchItemFailures)
}

/// A queue a mapping reads: its visibility timeout against the function's, its redrive
/// policy, and a FIFO queue's batch size.
async fn queue(
    sqs: &aws_sdk_sqs::Client,
    found: &mut Found,
    (lambda, resource, name): (&str, &str, &str),
    mapping: &EventSourceMappingConfiguration,
    timeout: u32,
) -> Result<(), String> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let url = match sqs.get_queue_url().queue_name(name).send().await {
        Ok(o) => o.queue_url().unwrap_or_default().to_owned(),
        Err(e) => {
            let e = aws_sdk_sqs::error::DisplayErrorContext(e);
            found.error(
                "not-deployed",
                lambda,
                resource,
                format!("the queue {name} cannot be read ({e})"),
            );
            return Ok(());
        }
    };
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(A::All)
        .send()
        .await
        .map_err(|e| {
            format!(
                "GetQueueAttributes for {name}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?;
    let attributes = attributes.attributes().cloned().unwrap_or_default();
    let visibility: u32 = attributes
        .get(&A::VisibilityTimeout)
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let window = mapping
        .maximum_batching_window_in_seconds()
        .unwrap_or(0)
        .max(0) as u32;
    let advised = crate::template::advised_visibility_timeout(timeout, window);
    if visibility < advised {
        found.error("short-visibility-timeout", lambda, resource, format!(
            "the queue's visibility timeout is {visibility} s, under the {advised} s AWS advises (six times the function's timeout of {timeout} s, plus the batching window of {window} s): messages being processed reappear and run twice; set VisibilityTimeout to {advised} (aws sqs set-queue-attributes --queue-url {url} --attributes VisibilityTimeout={advised})"));
    }
    if !attributes.contains_key(&A::RedrivePolicy) {
        found.error("no-redrive", lambda, resource, format!(
            "the queue has no redrive policy: a message that always fails is retried until it expires; give it a dead-letter queue (RedrivePolicy with deadLetterTargetArn and maxReceiveCount) on {url}"));
    }
    let fifo = attributes.get(&A::FifoQueue).is_some_and(|v| v == "true");
    let batch = mapping.batch_size().unwrap_or(10);
    if fifo && batch > 10 {
        found.error("fifo-batch-size", lambda, resource, format!(
            "the mapping {} reads a FIFO queue {batch} messages at a time; Lambda takes at most 10 from a FIFO queue: set BatchSize to 10 or less",
            mapping.uuid().unwrap_or("?")));
    }
    Ok(())
}
