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

/// The fault-injecting proxy the tests put in front of moto (`scripts/fault_proxy.py`, whose
/// docs list its faults), started with `python3`; killed when dropped.
///
/// ```text
/// let proxy = FaultProxy::start(&moto, &["--rate", "0.08", "--seed", "7"]);
/// // … point a client at proxy.endpoint()
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    child: std::process::Child,
    port: u16,
}

impl FaultProxy {
    /// Starts the proxy in front of `upstream` with these arguments, and waits for its port.
    ///
    /// # Panics
    ///
    /// When `python3` cannot run the script, or the script prints no port.
    pub fn start(upstream: &str, args: &[&str]) -> FaultProxy {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/fault_proxy.py"
            ))
            .args(["--upstream", upstream])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("python3 runs the fault proxy");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("the proxy's stdout"))
            .read_line(&mut line)
            .expect("the proxy prints its port");
        let port = line.trim().parse().expect("the proxy prints its port");
        FaultProxy { child, port }
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    /// SIGTERM, so that the proxy prints the faults it injected, then waits for it.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
