//! The test kit (feature `test-kit`): event builders for every source ([`SqsEvent`],
//! [`KinesisEvent`], [`EventBridgeEvent`], [`DynamoDbEvent`], [`raw_event`]), messages, a Lambda context, and
//! assertions, a reporter that keeps what it is told ([`CapturingReporter`]), logs kept
//! for assertions ([`CapturedLogs`]) and an idempotency store that is down ([`DownStore`]),
//! for testing
//! pipelines without AWS. The test doubles elsewhere are behind this feature too:
//! [`MemorySink`](crate::sink::MemorySink)'s programmed failures (`fail_next`,
//! `fail_bodies_containing`, …) and [`Context::for_test`](crate::Context::for_test). The
//! in-memory sink itself lives in the crate root: the local mode records with it.
//!
//! Enable it for your tests only: `lpipe = { version = "0.1", features = ["test-kit"] }` under
//! `[dev-dependencies]` (beside your normal `lpipe` dependency).

mod emf;
mod events;
mod logs;
mod notifications;
mod reporter;
mod store;

pub use emf::check_emf;
pub use logs::CapturedLogs;
pub use notifications::{S3Event, SnsEvent};
pub use reporter::{CapturedReport, CapturingReporter};
pub use store::DownStore;

pub use events::{
    attribute_value, DynamoDbEvent, EventBridgeEvent, KinesisEvent, KinesisRecord, SqsEvent,
    SqsRecord,
};

use serde::Serialize;

/// A direct-invocation event: a JSON array of the given messages.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// let event = lpipe_core::testing::raw_event(&[json!({"path": "A", "kwargs": {}})]);
/// assert_eq!(event, r#"[{"kwargs":{},"path":"A"}]"#);
/// ```
pub fn raw_event<T: Serialize>(messages: &[T]) -> String {
    serde_json::to_string(messages).expect("messages serialize")
}

/// An lpipe message `{"path": path, "kwargs": kwargs}` as a JSON value.
pub fn message(path: &str, kwargs: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"path": path, "kwargs": kwargs})
}

/// A Lambda context for tests: a request id, and a deadline `millis` from now (none when 0).
pub fn lambda_context(millis: u64) -> lambda_runtime::Context {
    let mut ctx = lambda_runtime::Context::default();
    ctx.request_id = "test-request".to_owned();
    if millis > 0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as u64;
        ctx.deadline = now + millis;
    }
    ctx
}

/// The endpoint of the `moto_server` the test command started (`LPIPE_MOTO_ENDPOINT`), for
/// tests against real AWS APIs.
///
/// Such tests are marked `#[ignore = "needs moto_server: …"]`, so that `cargo test` by hand
/// lists them as ignored, with the reason, instead of passing without their server; the test
/// command starts moto and runs them with `--include-ignored`.
///
/// # Panics
///
/// When `LPIPE_MOTO_ENDPOINT` is not set: a test that needs the server never passes without it.
pub fn moto_endpoint(test: &str) -> String {
    match std::env::var("LPIPE_MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{test} needs moto_server, and LPIPE_MOTO_ENDPOINT is not set: run ./scripts/test, which starts one"
        ),
    }
}

/// Asserts that `haystack` contains `needle`; the panic message shows both.
///
/// # Examples
///
/// ```
/// lpipe_core::testing::assert_contains("record 2 (FailCatastrophically: down)", "record 2 (");
/// ```
#[track_caller]
pub fn assert_contains(haystack: impl AsRef<str>, needle: impl AsRef<str>) {
    let (haystack, needle) = (haystack.as_ref(), needle.as_ref());
    assert!(
        haystack.contains(needle),
        "expected to find {needle:?} in:\n{haystack}"
    );
}

/// Asserts that `haystack` does not contain `needle`; the panic message shows both.
///
/// # Examples
///
/// ```
/// lpipe_core::testing::assert_not_contains("record 2 (FailCatastrophically: down)", "record 1 (");
/// ```
#[track_caller]
pub fn assert_not_contains(haystack: impl AsRef<str>, needle: impl AsRef<str>) {
    let (haystack, needle) = (haystack.as_ref(), needle.as_ref());
    assert!(
        !haystack.contains(needle),
        "expected not to find {needle:?} in:\n{haystack}"
    );
}

/// A name that no other test run uses (for queues and streams on a shared server).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
