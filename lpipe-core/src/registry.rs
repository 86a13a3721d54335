//! The plugin registry: which event sources and sink kinds exist.
//!
//! Plugin crates submit a [`SourceRegistration`] or [`SinkRegistration`] with
//! [`inventory::submit!`]; the features of the `lpipe` facade decide which crates are linked,
//! and so which plugins exist. A [`Registry`] is a snapshot that a pipeline uses; tests build
//! their own instead of depending on global state.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::plugins::{plugin_hint, BUILT_IN_PLUGINS};
use crate::queue::QueueKind;
use crate::sink::Sink;
use crate::source::{EventProbe, EventSource, RawSource};

/// Re-exported for plugin registration (`lpipe_core::registry::inventory::submit!`).
pub use inventory;

/// An event source offered by a plugin crate.
///
/// # Examples
///
/// ```
/// use lpipe_core::{source::{EventSource, RawSource}, registry::SourceRegistration};
/// fn build() -> std::sync::Arc<dyn EventSource> { std::sync::Arc::new(RawSource) }
/// lpipe_core::registry::inventory::submit! { SourceRegistration { name: "my-raw", build } }
/// ```
pub struct SourceRegistration {
    /// The source's name.
    pub name: &'static str,
    /// Builds it.
    pub build: fn() -> Arc<dyn EventSource>,
}

/// A sink kind offered by a plugin crate.
pub struct SinkRegistration {
    /// The queue kind it sends to (`sqs`, `kinesis`, `eventbridge`, …).
    pub kind: &'static str,
    /// Builds it. Sinks that need AWS clients build them lazily, once per process.
    pub build: fn() -> Arc<dyn Sink>,
}

/// The hint for an event no registered source recognises, when it looks like one a built-in
/// plugin's source would take and that source is not registered.
pub(crate) fn source_plugin_hint(probe: &EventProbe, registered: &[&str]) -> Option<String> {
    let source = match probe.first_event_source.as_deref() {
        Some("aws:sqs") => "sqs",
        Some("aws:kinesis") => "kinesis",
        Some("aws:dynamodb") => "dynamodb",
        Some("aws:sns") => "sns",
        Some("aws:s3") => "s3",
        _ if probe.has_detail && probe.source.is_some() => "cloudwatch",
        _ => return None,
    };
    if registered.contains(&source) {
        return None;
    }
    BUILT_IN_PLUGINS
        .iter()
        .find(|p| p.source == source)
        .map(|p| plugin_hint(p.feature, p.krate))
}

inventory::collect!(SourceRegistration);
inventory::collect!(SinkRegistration);

fn build_raw() -> Arc<dyn EventSource> {
    Arc::new(RawSource)
}

inventory::submit! { SourceRegistration { name: RawSource::NAME, build: build_raw } }

/// The event sources and sinks a pipeline may use.
#[derive(Clone, Default)]
pub struct Registry {
    sources: Vec<Arc<dyn EventSource>>,
    sinks: BTreeMap<QueueKind, Arc<dyn Sink>>,
}

impl Registry {
    /// Everything registered with `inventory` by the linked crates.
    pub fn from_inventory() -> Self {
        let mut registry = Registry::empty();
        let mut sources: Vec<&SourceRegistration> =
            inventory::iter::<SourceRegistration>().collect();
        sources.sort_by_key(|s| s.name);
        for s in sources {
            registry = registry.with_source((s.build)());
        }
        for s in inventory::iter::<SinkRegistration>() {
            registry = registry.with_sink(QueueKind::custom(s.kind), (s.build)());
        }
        registry
    }

    /// Nothing registered.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds a source (replacing one of the same name).
    pub fn with_source(mut self, source: Arc<dyn EventSource>) -> Self {
        self.sources.retain(|s| s.name() != source.name());
        self.sources.push(source);
        self
    }

    /// Adds a sink for a queue kind (replacing the previous one).
    pub fn with_sink(mut self, kind: QueueKind, sink: Arc<dyn Sink>) -> Self {
        self.sinks.insert(kind, sink);
        self
    }

    /// The sources' names, sorted.
    pub fn source_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.sources.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names
    }

    /// The sink kinds, sorted.
    pub fn sink_kinds(&self) -> Vec<String> {
        self.sinks.keys().map(|k| k.as_str().to_owned()).collect()
    }

    /// The source of this name.
    pub fn source(&self, name: &str) -> Option<Arc<dyn EventSource>> {
        self.sources.iter().find(|s| s.name() == name).cloned()
    }

    /// The sink for this kind.
    pub fn sink(&self, kind: &QueueKind) -> Option<Arc<dyn Sink>> {
        self.sinks.get(kind).cloned()
    }

    /// The source an event belongs to: the first specific source (by name) that recognises
    /// it, else the raw source if registered and it does. An empty `Records` list names no
    /// source, so none is detected (a pipeline pinned to one takes it).
    pub fn detect(&self, probe: &EventProbe) -> Option<Arc<dyn EventSource>> {
        if probe.empty_records {
            return None;
        }
        let mut ordered: Vec<&Arc<dyn EventSource>> = self.sources.iter().collect();
        ordered.sort_by_key(|s| (s.name() == RawSource::NAME, s.name()));
        ordered.into_iter().find(|s| s.matches(probe)).cloned()
    }

    pub(crate) fn sinks_mut(&mut self) -> &mut BTreeMap<QueueKind, Arc<dyn Sink>> {
        &mut self.sinks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_registers_the_raw_source_and_no_sinks() {
        let r = Registry::from_inventory();
        assert_eq!(r.source_names(), vec!["raw"]);
        assert!(r.sink_kinds().is_empty());
        assert!(r.detect(&EventProbe::of("[]")).is_some());
        assert!(r.detect(&EventProbe::of(r#"{"Records": []}"#)).is_none());
    }
}
