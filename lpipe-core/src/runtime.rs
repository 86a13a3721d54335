//! Running a pipeline: under the Lambda runtime when `AWS_LAMBDA_RUNTIME_API` is set,
//! otherwise locally on an event file or stdin.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::value::RawValue;

use crate::error::InvocationError;
use crate::pipeline::PipelineBuilder;
use crate::sink::MemorySink;

/// How to run a pipeline outside Lambda.
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// The event file; stdin when absent (or `-`).
    pub event_file: Option<PathBuf>,
    /// Send outbound messages for real, with the registered sinks, instead of recording and
    /// printing them.
    pub send: bool,
}

impl LocalOptions {
    /// Options from the command line: `[--send] [EVENT_FILE]`, and `LPIPE_SEND=1`.
    ///
    /// # Errors
    ///
    /// A message naming an argument that is not understood.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut opts = LocalOptions {
            send: std::env::var("LPIPE_SEND").is_ok_and(|v| v == "1" || v == "true"),
            ..Default::default()
        };
        for arg in args {
            match arg.as_str() {
                "--send" => opts.send = true,
                "-" => opts.event_file = None,
                a if a.starts_with("--") => {
                    return Err(format!(
                        "unknown option {a} (expected [--send] [EVENT_FILE])"
                    ))
                }
                a if opts.event_file.is_none() => opts.event_file = Some(PathBuf::from(a)),
                a => {
                    return Err(format!(
                        "unexpected argument {a} (expected [--send] [EVENT_FILE])"
                    ))
                }
            }
        }
        Ok(opts)
    }
}

/// Installs a `tracing` subscriber writing to stderr, filtered by `RUST_LOG` (default `info`),
/// unless one is installed already.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Runs a pipeline the way its environment asks: under the Lambda runtime when
/// `AWS_LAMBDA_RUNTIME_API` is set, otherwise locally with options from the command line
/// (`[--send] [EVENT_FILE]`, see [`run_local`]).
///
/// # Examples
///
/// ```no_run
/// use lpipe_core::{Action, Pipeline};
/// #[derive(serde::Deserialize)]
/// struct Greet { name: String }
/// async fn greet(args: Greet) -> Result<String, std::convert::Infallible> {
///     Ok(format!("hello {}", args.name))
/// }
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     lpipe_core::run(Pipeline::builder().path("GREET", [Action::new().function(greet)])).await
/// }
/// ```
pub async fn run(builder: PipelineBuilder) -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return run_lambda(builder).await;
    }
    match LocalOptions::from_args(std::env::args().skip(1)) {
        Ok(opts) => run_local(builder, opts).await,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// Runs a pipeline under the Lambda runtime (`lambda_runtime`), until the runtime stops.
pub async fn run_lambda(builder: PipelineBuilder) -> ExitCode {
    init_logging();
    let pipeline = match builder.build() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let handler = service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let pipeline = pipeline.clone();
        async move { pipeline.handle(event.payload.get(), event.context).await }
    });
    match lambda_runtime::run(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("the Lambda runtime stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a pipeline once on a local event: the response JSON goes to stdout, logs to stderr;
/// outbound messages are recorded and printed to stderr unless `opts.send`. An invocation
/// error prints Lambda's `{"errorType", "errorMessage"}` on stdout and exits with 1; a bad
/// configuration or event file exits with 2.
pub async fn run_local(builder: PipelineBuilder, opts: LocalOptions) -> ExitCode {
    init_logging();
    let recorder = MemorySink::new();
    let builder = if opts.send {
        builder.record_unsendable(recorder.clone())
    } else {
        builder.record_outbound(recorder.clone())
    };
    let pipeline = match builder.build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let event = match read_event(opts.event_file.as_ref()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut context = lambda_runtime::Context::default();
    // Unique per run, as Lambda's are per invocation (outbound message ids of the raw source
    // are scoped by it, and FIFO deduplication ids derive from those).
    context.request_id = format!(
        "local-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let config = lambda_runtime::Config {
        function_name: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .unwrap_or_else(|_| "local".to_owned()),
        ..Default::default()
    };
    context.env_config = std::sync::Arc::new(config);
    let result = pipeline.handle(&event, context).await;
    let messages = recorder.messages();
    if !messages.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "outbound messages (recorded, not sent{}):",
            if opts.send {
                ": their queue kind has no sink"
            } else {
                "; pass --send to send them"
            }
        );
        for m in &messages {
            let _ = writeln!(err, "  -> {}: {}", m.queue, m.body);
        }
    }
    let mut out = std::io::stdout().lock();
    match result {
        Ok(response) => {
            let _ = writeln!(out, "{response}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(out, "{}", serde_json::to_string(&e).unwrap_or_default());
            ExitCode::FAILURE
        }
    }
}

fn read_event(file: Option<&PathBuf>) -> Result<String, String> {
    match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read event file {}: {e}", path.display())),
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read the event from stdin: {e}"))?;
            Ok(s)
        }
    }
}

impl InvocationError {
    /// The JSON Lambda reports for it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}
