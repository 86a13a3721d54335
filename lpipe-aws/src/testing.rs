//! Test doubles for the AWS plugins' tests (feature `test-kit`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Counts the operations an AWS client sends, by name: an interceptor for any SDK whose
/// protocol names the operation in the `x-amz-target` header (`AmazonSQS.GetQueueUrl`,
/// `DynamoDB_20120810.PutItem`: SQS, DynamoDB, Kinesis). Clones share their counts.
///
/// ```text
/// let calls = CountCalls::default();
/// let client = aws_sdk_sqs::Client::from_conf(
///     aws_sdk_sqs::config::Builder::from(&config).interceptor(calls.clone()).build(),
/// );
/// // … then calls.get("GetQueueUrl")
/// ```
#[derive(Clone, Debug, Default)]
pub struct CountCalls(Arc<Mutex<HashMap<String, usize>>>);

impl CountCalls {
    /// How many times the operation was sent.
    pub fn get(&self, operation: &str) -> usize {
        self.counts().get(operation).copied().unwrap_or(0)
    }

    /// Forgets the counts so far.
    pub fn reset(&self) {
        self.counts().clear();
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "CountCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        *self.counts().entry(operation).or_default() += 1;
        Ok(())
    }
}
