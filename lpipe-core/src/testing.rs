//! The test kit (feature `test-kit`): event builders and helpers for testing pipelines without
//! AWS. The in-memory sink ([`MemorySink`](crate::MemorySink)) and the capturing reporter
//! ([`CapturingReporter`](crate::CapturingReporter)) live in the crate root because the local
//! mode uses them too.

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
