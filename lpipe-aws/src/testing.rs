//! Test doubles for the AWS plugins' tests (feature `test-kit`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
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
///
/// It also keeps the most calls that were ever sent and not yet answered at once
/// ([`CountCalls::max_in_flight`]), of any operation.
#[derive(Clone, Debug, Default)]
pub struct CountCalls(Arc<Mutex<Counts>>);

#[derive(Debug, Default)]
struct Counts {
    by_operation: HashMap<String, usize>,
    in_flight: usize,
    max_in_flight: usize,
}

impl CountCalls {
    /// How many times the operation was sent.
    pub fn get(&self, operation: &str) -> usize {
        self.counts()
            .by_operation
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// The most calls, of any operation, that were sent and not yet answered at one time since
    /// the last [`reset`](Self::reset). A call whose sending fails (no response) stays counted
    /// as in flight.
    pub fn max_in_flight(&self) -> usize {
        self.counts().max_in_flight
    }

    /// Forgets the counts so far.
    pub fn reset(&self) {
        *self.counts() = Counts::default();
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
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
        let mut counts = self.counts();
        *counts.by_operation.entry(operation).or_default() += 1;
        counts.in_flight += 1;
        counts.max_in_flight = counts.max_in_flight.max(counts.in_flight);
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut counts = self.counts();
        counts.in_flight = counts.in_flight.saturating_sub(1);
        Ok(())
    }
}
