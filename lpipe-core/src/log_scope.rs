//! What a log line is about: the invocation, record, path and function running when it is
//! written, kept per thread while lpipe polls them (set and restored around each poll).
//!
//! `tracing` spans would carry the same fields, but a span per record and per function call
//! costs an allocation and a formatting of its fields each: at 100,000 records, more than the
//! records' own work. Swapping a thread-local slot costs next to nothing; lpipe's log layers
//! ([`crate::runtime::LogSettings`]) read it for each line.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::context::{Invocation, RecordInfo};
use crate::path::PathName;

/// The invocation and record being run.
pub(crate) struct Scope {
    pub(crate) invocation: Arc<Invocation>,
    pub(crate) record: Option<Arc<RecordInfo>>,
    /// The path the record entered by, once its message was read.
    pub(crate) path: Option<PathName>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
    static FUNCTION: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Swaps the slot with the thread's scope; swaps back when dropped (a panic included).
struct Swapped<'s>(&'s mut Option<Scope>);

impl<'s> Swapped<'s> {
    fn new(slot: &'s mut Option<Scope>) -> Self {
        SCOPE.with(|s| std::mem::swap(&mut *s.borrow_mut(), slot));
        Swapped(slot)
    }
}

impl Drop for Swapped<'_> {
    fn drop(&mut self) {
        SCOPE.with(|s| std::mem::swap(&mut *s.borrow_mut(), self.0));
    }
}

pin_project_lite::pin_project! {
    /// [`with_scope`]'s future. A struct, not an `async fn`: that would hold the wrapped
    /// future twice (as its argument and pinned), and every record's future is wrapped.
    pub(crate) struct WithScope<F> {
        slot: Option<Scope>,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for WithScope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _swapped = Swapped::new(this.slot);
        this.fut.poll(cx)
    }
}

/// Runs `fut` with `scope` as the thread's scope while it is polled.
pub(crate) fn with_scope<F: Future>(scope: Scope, fut: F) -> WithScope<F> {
    WithScope {
        slot: Some(scope),
        fut,
    }
}

/// Restores the thread's function when dropped.
struct FunctionSet(Option<&'static str>);

impl Drop for FunctionSet {
    fn drop(&mut self) {
        FUNCTION.with(|f| f.set(self.0));
    }
}

pin_project_lite::pin_project! {
    /// [`with_function`]'s future (a struct for the reason [`WithScope`] is).
    pub(crate) struct WithFunction<F> {
        name: &'static str,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for WithFunction<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _restore = FunctionSet(FUNCTION.with(|f| f.replace(Some(*this.name))));
        this.fut.poll(cx)
    }
}

/// Runs `fut` with `name` as the thread's function while it is polled.
pub(crate) fn with_function<F: Future>(name: &'static str, fut: F) -> WithFunction<F> {
    WithFunction { name, fut }
}

/// Sets the entry path of the record being run.
pub(crate) fn set_path(path: &PathName) {
    SCOPE.with(|s| {
        if let Some(scope) = s.borrow_mut().as_mut() {
            scope.path = Some(path.clone());
        }
    });
}

/// The fields of the current scope, for a log line: `(name, value)` in a fixed order
/// (`request_id`, `trace_id`, `record_id`, `path`, `function`), those that are known.
pub(crate) fn fields(mut f: impl FnMut(&'static str, &str)) {
    SCOPE.with(|s| {
        let Ok(scope) = s.try_borrow() else { return };
        let Some(scope) = scope.as_ref() else { return };
        f("request_id", &scope.invocation.lambda.request_id);
        // A record that arrived with its own trace is logged under that trace's id.
        let trace = scope
            .record
            .as_ref()
            .and_then(|r| r.meta.trace_header())
            .or(scope.invocation.trace_header.as_deref())
            .and_then(crate::source::trace_id);
        if let Some(trace) = trace {
            f("trace_id", trace);
        }
        if let Some(record) = &scope.record {
            if let Some(id) = record.id() {
                f("record_id", id);
            }
        }
        if let Some(path) = &scope.path {
            f("path", path.as_str());
        }
        if let Some(function) = FUNCTION.with(Cell::get) {
            f("function", function);
        }
    });
}
