//! Running a pipeline: under the Lambda runtime when `AWS_LAMBDA_RUNTIME_API` is set,
//! otherwise from the command line: once on an event file or stdin, `graph`, or `--help`.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::value::RawValue;

use crate::error::InvocationError;
use crate::pipeline::PipelineBuilder;
use crate::sink::MemorySink;

pub use crate::logging::{init_logging, LogFormat, LogSettings};

/// How to run a pipeline outside Lambda.
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// The event file; stdin when absent (or `-`).
    pub event_file: Option<PathBuf>,
    /// Send outbound messages for real, with the registered sinks, instead of recording and
    /// printing them.
    pub send: bool,
}

/// What the command line asks of an lpipe binary outside Lambda (see [`run`]).
#[derive(Clone, Debug)]
pub enum Command {
    /// `[--send] [EVENT_FILE]`: run once on an event.
    Run(LocalOptions),
    /// `graph` (or `--mermaid`): print the graph as a Mermaid flowchart.
    Graph,
    /// `describe`: print the Lambda's description as JSON (see [`crate::describe`]).
    Describe,
    /// `--help` (or `-h`): print the usage.
    Help,
}

impl Command {
    /// The command a command line asks for (the program name left out).
    ///
    /// # Errors
    ///
    /// A message naming an argument that is not understood.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::runtime::Command;
    /// assert!(matches!(Command::from_args(["graph".to_owned()]), Ok(Command::Graph)));
    /// assert!(matches!(Command::from_args(["--help".to_owned()]), Ok(Command::Help)));
    /// let Ok(Command::Run(opts)) = Command::from_args(["--send".to_owned(), "e.json".to_owned()]) else {
    ///     panic!()
    /// };
    /// assert!(opts.send);
    /// ```
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
        let args: Vec<String> = args.into_iter().collect();
        match args.first().map(String::as_str) {
            Some("--help" | "-h" | "help") => Ok(Command::Help),
            Some("graph" | "--mermaid") if args.len() == 1 => Ok(Command::Graph),
            Some("describe") if args.len() == 1 => Ok(Command::Describe),
            Some("graph" | "--mermaid" | "describe") => Err(format!(
                "{} takes no arguments (got {})",
                args[0],
                args[1..].join(" ")
            )),
            _ => LocalOptions::from_args(args).map(Command::Run),
        }
    }
}

/// The usage of an lpipe binary, for `--help` and for mistakes.
pub fn usage(program: &str) -> String {
    let commands = [
        (
            format!("{program} [--send] [EVENT_FILE]"),
            "run once on the event in EVENT_FILE (`-` or none: stdin);\nthe response goes to stdout, logs and the outbound\nmessages it would send to stderr",
        ),
        (
            format!("{program} graph"),
            "print the graph as a Mermaid flowchart (also --mermaid)",
        ),
        (
            format!("{program} describe"),
            "print what this Lambda consumes, runs and sends as JSON\n(schema lpipe.describe/1)",
        ),
        (
            format!("{program} worker --queue QUEUE"),
            "consume the SQS queue QUEUE (a name or URL) as Lambda's\nevent source mapping would (lpipe's `sqs` feature);\nmore options: --batch-size N,\n--wait-seconds S, --visibility-timeout S, --in-flight B,\n--concurrency N, --grace-seconds S, --create-queue;\nstops on SIGTERM",
        ),
        (format!("{program} --help"), "print this text"),
    ];
    let width = commands.iter().map(|(c, _)| c.len()).max().unwrap_or(0) + 3;
    let mut text = format!(
        "{program}: an lpipe Lambda. Under Lambda (AWS_LAMBDA_RUNTIME_API set) it serves the\nruntime's invocations; elsewhere it runs as the command line says:\n\n"
    );
    for (command, what) in &commands {
        for (i, line) in what.lines().enumerate() {
            let left = if i == 0 { command.as_str() } else { "" };
            text.push_str(&format!("  {left:width$}{line}\n"));
        }
    }
    text.push_str(
        "\n  --send   send outbound messages with the real sinks (AWS configuration from the\n           environment) instead of printing them; also LPIPE_SEND=1\n\nEnvironment: AWS_LAMBDA_LOG_FORMAT=JSON writes JSON log lines; AWS_LAMBDA_LOG_LEVEL sets the\nlevel (default INFO) and RUST_LOG overrides it with a filter; LPIPE_METRICS_NAMESPACE turns\nCloudWatch (EMF) metrics on; _X_AMZN_TRACE_ID gives the X-Ray trace header;\nAWS_LAMBDA_FUNCTION_NAME names the function in the Lambda context.\n",
    );
    text
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

/// Runs a pipeline the way its environment asks: under the Lambda runtime when
/// `AWS_LAMBDA_RUNTIME_API` is set, otherwise as the command line says ([`Command`]): once on
/// an event (`[--send] [EVENT_FILE]`, see [`run_local`]), `graph` (the Mermaid flowchart, see
/// [`Pipeline::to_mermaid`](crate::Pipeline::to_mermaid)) or `--help`. With no event file and
/// a terminal on stdin, it prints the usage rather than wait for an event to be typed.
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
    let program = std::env::args()
        .next()
        .and_then(|p| {
            PathBuf::from(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "lambda".to_owned());
    run_command_line(builder, &program, std::env::args().skip(1)).await
}

/// Runs a pipeline as its command line says outside Lambda (`program` names it in messages;
/// `args` leave the program out): once on an event, `graph`, `describe` or `--help`. For
/// binaries that read options of their own first and pass on the rest.
pub async fn run_command_line(
    builder: PipelineBuilder,
    program: &str,
    args: impl IntoIterator<Item = String>,
) -> ExitCode {
    match Command::from_args(args) {
        Ok(Command::Help) => {
            print!("{}", usage(program));
            ExitCode::SUCCESS
        }
        Ok(Command::Graph) => print_graph(builder),
        Ok(Command::Describe) => print_description(builder, program),
        Ok(Command::Run(opts)) if opts.event_file.is_none() && std::io::stdin().is_terminal() => {
            eprint!(
                "no event: give an event file, or pipe one in\n\n{}",
                usage(program)
            );
            ExitCode::from(2)
        }
        Ok(Command::Run(opts)) => run_local(builder, opts).await,
        Err(e) => {
            eprint!("{e}\n\n{}", usage(program));
            ExitCode::from(2)
        }
    }
}

/// Prints the pipeline's graph as a Mermaid flowchart (drawing needs no sinks).
fn print_graph(builder: PipelineBuilder) -> ExitCode {
    print!("{}", builder.to_mermaid());
    ExitCode::SUCCESS
}

/// Prints the Lambda's description (see [`crate::describe`]), or why its pipeline does not
/// build (exit 2).
fn print_description(builder: PipelineBuilder, program: &str) -> ExitCode {
    match builder.build() {
        Ok(pipeline) => {
            let described = pipeline.describe(program);
            println!(
                "{}",
                serde_json::to_string_pretty(&described).expect("JSON serializes")
            );
            ExitCode::SUCCESS
        }
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
    let builder = builder.local();
    let builder = if opts.send {
        builder.record_unsendable(recorder.clone())
    } else {
        builder.record_outbound(recorder.clone())
    };
    let pipeline = match builder.build() {
        Ok(p) => p,
        Err(e) => {
            say_error(&e.to_string());
            return ExitCode::from(2);
        }
    };
    let event = match read_event(opts.event_file.as_ref()) {
        Ok(e) => e,
        Err(e) => {
            say_error(&e.to_string());
            return ExitCode::from(2);
        }
    };
    // An event that is not JSON: say where, rather than that no source recognises it.
    let json = event.strip_prefix('\u{feff}').unwrap_or(&event);
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(json) {
        let from = opts
            .event_file
            .as_ref()
            .map_or("stdin".to_owned(), |p| p.display().to_string());
        say_error(&format!("the event in {from} is not JSON: {e}"));
        return ExitCode::from(2);
    }
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
    context.env_config = std::sync::Arc::new(lambda_config_from_env());
    let result = pipeline.handle(&event, context).await;
    print_recorded(&pipeline, &recorder, opts.send);
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

/// The function's configuration as Lambda gives it, read from the same environment
/// variables (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_VERSION`,
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `AWS_LAMBDA_LOG_GROUP_NAME`,
/// `AWS_LAMBDA_LOG_STREAM_NAME`), for runs outside Lambda: the local mode and the SQS worker.
/// Without `AWS_LAMBDA_FUNCTION_NAME` the function is named after the executable (its file
/// name), so that two programs never share a name by accident; the version defaults to
/// `$LATEST`. Never panics: a missing or malformed variable takes its default.
///
/// The function name is what idempotency keys are namespaced by (unless
/// [`Idempotency::namespace`](crate::Idempotency::namespace) says otherwise): set
/// `AWS_LAMBDA_FUNCTION_NAME` to the Lambda's name where a worker and the Lambda must
/// recognise each other's records.
pub fn lambda_config_from_env() -> lambda_runtime::Config {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let function_name = var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "local".to_owned())
    });
    lambda_runtime::Config {
        function_name,
        memory: var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
            .and_then(|m| m.parse().ok())
            .unwrap_or(0),
        version: var("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_else(|| "$LATEST".to_owned()),
        log_stream: var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_default(),
        log_group: var("AWS_LAMBDA_LOG_GROUP_NAME").unwrap_or_default(),
    }
}

/// Says why a local run stops, on stderr: as text, or as a JSON log line with JSON logs.
fn say_error(message: &str) {
    if crate::logging::format_from_env() == crate::logging::LogFormat::Json {
        eprintln!("{}", local_json_line("ERROR", message, []));
    } else {
        eprintln!("{message}");
    }
}

/// A line the local mode writes itself, shaped like the JSON log lines around it.
fn local_json_line(
    level: &str,
    message: &str,
    fields: impl IntoIterator<Item = (&'static str, serde_json::Value)>,
) -> serde_json::Value {
    let mut line = serde_json::json!({
        "timestamp": crate::logging::rfc3339_now(),
        "level": level,
        "target": "lpipe::local",
        "message": message,
    });
    for (name, value) in fields {
        line[name] = value;
    }
    line
}

/// Prints the messages recorded rather than sent, to stderr: readable text, or with JSON logs
/// one JSON object per message, like the log lines around it.
fn print_recorded(pipeline: &crate::Pipeline, recorder: &MemorySink, sent_others: bool) {
    let messages = recorder.messages();
    if messages.is_empty() {
        return;
    }
    let why = if sent_others {
        "recorded, not sent: their queue kind has no sink"
    } else {
        "recorded, not sent; pass --send to send them"
    };
    let mut err = std::io::stderr().lock();
    if crate::logging::format_from_env() == crate::logging::LogFormat::Json {
        for m in &messages {
            let routing: serde_json::Map<String, serde_json::Value> = pipeline
                .routing(m)
                .into_iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
                .collect();
            let line = local_json_line(
                "INFO",
                &format!("outbound message ({why})"),
                [
                    ("queue", m.queue.to_string().into()),
                    ("routing", routing.into()),
                    ("body", m.body.as_str().into()),
                ],
            );
            let _ = writeln!(err, "{line}");
        }
        return;
    }
    let _ = writeln!(err, "outbound messages ({why}):");
    for m in &messages {
        let routing = pipeline.routing(m);
        if routing.is_empty() {
            let _ = writeln!(err, "  -> {}: {}", m.queue, m.body);
        } else {
            let routing: Vec<String> = routing.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(err, "  -> {} [{}]: {}", m.queue, routing.join(", "), m.body);
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
