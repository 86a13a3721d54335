//! Running a batch, in parts that read on their own:
//!
//! - `message`: a record's body becomes its path and kwargs;
//! - `graph`: a path's actions call functions with typed kwargs, run further paths and
//!   returned payloads, and stage outbound messages;
//! - `batch`: the records of a batch run in lanes, in order where the source keeps one, unless
//!   an earlier failure or the deadline says not;
//! - `outcome`: outbound messages go through the outbox (`crate::outbox`), idempotency keys
//!   are completed or released (`crate::idempotency`), and the outcomes are counted, logged and
//!   reported;
//! - `payload`: payloads kept in S3 are fetched before their records run, and deleted after.
//!
//! [`Pipeline::handle`] reads as those steps.
//!
//! A record's body and kwargs are freed as soon as it has run; what outlives it until the
//! batch's response is made is its result (and, on an idempotent path, the key it holds until
//! the key is settled), its kwargs only if it did not succeed (for reports), and its outbound
//! messages until the outbox has sent them.

use std::sync::Arc;

use crate::context::Invocation;
use crate::error::InvocationError;
use crate::idempotency::HeldKeys;
use crate::pipeline::Pipeline;
use crate::source::{EventProbe, EventSource};

mod batch;
mod graph;
mod message;
mod outcome;
mod payload;

use batch::BatchRun;

impl Pipeline {
    /// Handles one Lambda event: decodes it with its event source, runs every record through
    /// the graph, sends the outbound messages, reports dropped and failed records, and builds
    /// the response.
    ///
    /// # Errors
    ///
    /// An [`InvocationError`] when the event cannot be read, or when the source reports
    /// failures by failing the invocation (direct invocations, EventBridge).
    pub async fn handle(
        &self,
        event: &str,
        lambda: lambda_runtime::Context,
    ) -> Result<serde_json::Value, InvocationError> {
        self.handle_with(event, lambda, None).await
    }

    /// As [`handle`](Self::handle), noting in `held` the idempotency keys its records hold
    /// until each is settled, so that another task can extend their locks with
    /// [`HeldKeys::extend_locks`] while the batch runs past its deadline (the SQS worker does,
    /// with each heartbeat that keeps the batch's messages invisible).
    ///
    /// # Errors
    ///
    /// As [`handle`](Self::handle).
    pub async fn handle_holding(
        &self,
        event: &str,
        lambda: lambda_runtime::Context,
        held: &HeldKeys,
    ) -> Result<serde_json::Value, InvocationError> {
        self.handle_with(event, lambda, Some(held.clone())).await
    }

    async fn handle_with(
        &self,
        event: &str,
        lambda: lambda_runtime::Context,
        held: Option<HeldKeys>,
    ) -> Result<serde_json::Value, InvocationError> {
        // A UTF-8 byte-order mark (some editors write one into event files) is not JSON.
        let event = event.strip_prefix('\u{feff}').unwrap_or(event);
        let source = self.source_for(event)?;
        let records = source
            .decode(event)
            .map_err(|e| InvocationError::new("InvalidEvent", e.to_string()))?;
        let invocation = self.invocation(lambda, source.as_ref(), held);
        let scope = crate::log_scope::Scope {
            invocation: invocation.clone(),
            record: None,
            path: None,
        };
        let run = async {
            let started = std::time::Instant::now();
            let batch = BatchRun::new(source.as_ref(), &invocation);
            let mut ran = self.run_records(records, &batch).await;
            self.deliver(&mut ran, batch.deadline).await;
            outcome::answer_twins(&mut ran);
            self.settle_claims(&ran, invocation.held.as_ref()).await;
            self.delete_payloads(&ran).await;
            let summary = self.inner.metrics.as_ref().map(|_| outcome::summary(&ran));
            let result = self
                .conclude(ran, source.name(), &invocation.lambda.request_id)
                .await;
            if let (Some(metrics), Some(mut summary)) = (&self.inner.metrics, summary) {
                summary.batch_ms = started.elapsed().as_secs_f64() * 1000.0;
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let documents = metrics.documents(&summary, invocation.metrics.as_ref(), now_ms);
                metrics.write(&documents, self.inner.local);
            }
            source.respond(event, &result).await
        };
        crate::log_scope::with_scope(scope, run).await
    }

    /// What the records of this invocation share: the Lambda context, the pipeline's state,
    /// and how outbound ids are scoped (by the request, when record ids are positions).
    fn invocation(
        &self,
        lambda: lambda_runtime::Context,
        source: &dyn EventSource,
        held: Option<HeldKeys>,
    ) -> Arc<Invocation> {
        let message_scope = (!source.stable_record_ids()).then(|| lambda.request_id.clone());
        // The runtime gives the header per invocation; locally it comes from the environment.
        let trace_header = lambda
            .xray_trace_id
            .clone()
            .or_else(|| std::env::var("_X_AMZN_TRACE_ID").ok())
            .filter(|h| !h.is_empty())
            .map(Arc::from);
        Arc::new(Invocation {
            trace_header,
            metrics: self.inner.metrics.as_ref().map(|_| Default::default()),
            lambda,
            state: self.inner.state.clone(),
            message_scope,
            held,
            claimed: Default::default(),
        })
    }

    /// The source of an event: the pinned one if it recognises the event, else the registered
    /// one that does. A source never takes an event it does not recognise (see
    /// [`EventSource::matches`](crate::source::EventSource::matches)): decoded with the wrong layout,
    /// every record would be dropped and acknowledged, and lost.
    fn source_for(&self, event: &str) -> Result<Arc<dyn EventSource>, InvocationError> {
        let inner = &self.inner;
        let probe = EventProbe::of(event);
        if !inner.sources.is_empty() {
            if let Some(s) = inner.sources.iter().find(|s| s.matches(&probe)) {
                return Ok(s.clone());
            }
            let names: Vec<&str> = inner.sources.iter().map(|s| s.name()).collect();
            return Err(InvocationError::new(
                "InvalidEvent",
                format!(
                    "this pipeline takes only '{}' events, and this is not one ({}); no record of it is taken (is the event source mapping attached to the right function?)",
                    names.join("' or '"),
                    probe.describe()
                ),
            ));
        }
        inner.registry.detect(&probe).ok_or_else(|| {
            let registered = inner.registry.source_names();
            let hint = crate::registry::source_plugin_hint(&probe, &registered)
                .map_or(String::new(), |h| format!("; {h}"));
            InvocationError::new(
                "InvalidEvent",
                format!(
                    "no registered event source recognises this event ({}; registered: {}{hint})",
                    probe.describe(),
                    registered.join(", ")
                ),
            )
        })
    }
}
