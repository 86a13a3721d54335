//! The graph as a Mermaid flowchart, generated from the pipeline itself so that diagrams in
//! docs cannot drift from the code.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::action::Action;
use crate::path::PathName;
use crate::pipeline::{Pipeline, PipelineBuilder};
use crate::queue::Queue;

fn id(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{clean}")
}

fn label(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// Draws a graph: its paths in declaration order, and its dead-letter queue.
fn draw(paths: &[(&PathName, &[Action])], dead_letter: Option<&Queue>) -> String {
    let mut out = String::from("flowchart LR\n");
    let mut queues: BTreeMap<String, String> = BTreeMap::new();
    for (path, _) in paths {
        let _ = writeln!(
            out,
            "  {}([\"{}\"])",
            id("path", path.as_str()),
            label(path.as_str())
        );
    }
    for &(path, actions) in paths {
        let pid = id("path", path.as_str());
        let mut previous = pid.clone();
        for (i, action) in actions.iter().enumerate() {
            let aid = format!("{pid}_{}", i + 1);
            let _ = writeln!(out, "  {aid}[\"{}\"]", label(&action.label()));
            let _ = writeln!(out, "  {previous} --> {aid}");
            for p in action.get_paths() {
                let _ = writeln!(out, "  {aid} --> {}", id("path", p.as_str()));
            }
            for p in action.get_returns_to() {
                let _ = writeln!(out, "  {aid} -.->|\"returns\"| {}", id("path", p.as_str()));
            }
            for q in action.get_queues() {
                let key = format!("{}: {}", q.kind(), q.target());
                let n = queues.len() + 1;
                let qid = queues.entry(key.clone()).or_insert_with(|| {
                    let qid = format!("queue_{n}");
                    let _ = writeln!(out, "  {qid}[(\"{}\")]", label(&key));
                    qid
                });
                match q.consumer_path() {
                    Some(p) => {
                        let _ = writeln!(out, "  {aid} -->|\"{}\"| {qid}", label(p.as_str()));
                    }
                    None => {
                        let _ = writeln!(out, "  {aid} --> {qid}");
                    }
                }
            }
            previous = aid;
        }
    }
    if let Some(q) = dead_letter {
        let _ = writeln!(
            out,
            "  dropped{{{{\"dropped records\"}}}} -.-> dead_letter[(\"{}\")]",
            label(&format!("{}: {}", q.kind(), q.target()))
        );
    }
    out
}

impl Pipeline {
    /// The graph as a [Mermaid](https://mermaid.js.org) flowchart: paths are stadiums, actions
    /// boxes naming their functions (or what they forward), queues cylinders naming the
    /// consumer's path, the paths an action's functions return payloads to (see
    /// [`Action::returns_to`](crate::Action::returns_to)) dashed "returns" edges, and the
    /// dead-letter queue, if any, fed by a "dropped records" node.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Action, NoParams, Pipeline, Queue};
    /// async fn check(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
    /// let pipeline = Pipeline::builder()
    ///     .path("IN", [Action::new().function(check).path("OUT")])
    ///     .path("OUT", [Action::new().queue(Queue::sqs("next").path("CONSUME"))])
    ///     .dead_letter_queue(Queue::sqs("dropped"))
    ///     .record_outbound(lpipe_core::sink::MemorySink::new())
    ///     .build()
    ///     .unwrap();
    /// let chart = pipeline.to_mermaid();
    /// assert!(chart.contains(r#"dropped{{"dropped records"}} -.-> dead_letter[("sqs: dropped")]"#));
    /// assert!(chart.starts_with("flowchart LR"));
    /// assert!(chart.contains(r#"path_IN_1["check"]"#));
    /// assert!(chart.contains(r#"queue_1[("sqs: next")]"#));
    /// ```
    pub fn to_mermaid(&self) -> String {
        let paths: Vec<_> = self.paths().collect();
        draw(&paths, self.inner.dead_letter.as_ref())
    }
}

impl PipelineBuilder {
    /// The declared graph as a Mermaid flowchart, as [`Pipeline::to_mermaid`] draws it, without
    /// building the pipeline: drawing needs the graph, not its sinks or sources.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Action, Pipeline, Queue};
    /// // No sink for `sqs` is needed to draw.
    /// let chart = Pipeline::builder()
    ///     .path("OUT", [Action::new().queue(Queue::sqs("next").path("CONSUME"))])
    ///     .to_mermaid();
    /// assert!(chart.contains(r#"queue_1[("sqs: next")]"#));
    /// ```
    pub fn to_mermaid(&self) -> String {
        let paths: Vec<(&PathName, &[Action])> = self
            .paths
            .iter()
            .map(|(name, actions)| (name, actions.as_slice()))
            .collect();
        draw(&paths, self.dead_letter.as_ref())
    }
}
