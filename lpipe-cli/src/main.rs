//! `lpipe`: a system of lpipe Lambdas, described by its system file (`lpipe.toml`), checked and
//! drawn as a whole.
#![warn(missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lpipe_cli::check::{check, Level};
use lpipe_cli::descriptions::{describe_all, executables, Binaries};
use lpipe_cli::model::Model;
use lpipe_cli::system::System;

/// A system of lpipe Lambdas, checked and drawn as a whole.
///
/// The system file (default `lpipe.toml`) names the Lambdas, what triggers each, and what
/// they may send outside the system; each Lambda's binary is built with cargo and asked to
/// `describe` itself.
#[derive(Parser)]
#[command(name = "lpipe", version)]
struct Cli {
    /// The system file.
    #[arg(long, short = 'f', global = true, default_value = "lpipe.toml")]
    system: PathBuf,
    /// Take the binaries from this directory (e.g. target/debug) instead of building them.
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks the system: exits 1 when it has errors, naming the Lambda, path, queue and field
    /// of each problem.
    Check {
        /// Prints the problems as JSON.
        #[arg(long)]
        json: bool,
        /// Also reads what is deployed (the AWS account and region of the environment, or
        /// AWS_ENDPOINT_URL) and names every setting that contradicts the system or AWS's
        /// advice: mappings without ReportBatchItemFailures or an on-failure destination,
        /// visibility timeouts under six times the function's timeout, queues without redrive,
        /// FIFO batches over 10.
        #[arg(long)]
        deployed: bool,
        /// With --deployed: the prefix the template was made with.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Prints the whole system as one Mermaid flowchart.
    Graph,
    /// Writes the system's AWS SAM template: its queues (redrive, visibility timeouts, FIFO),
    /// streams, topics and subscriptions, buckets, idempotency tables, each Lambda with its
    /// event source mappings (ReportBatchItemFailures on), and one least-privilege IAM role per
    /// Lambda. Refuses a system `lpipe check` finds errors in.
    Template {
        /// Write it to this file instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Prefix every resource name with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Where `cargo lambda build` puts each binary's directory, relative to the template.
        #[arg(long, default_value = "target/lambda")]
        code_dir: String,
    },
    /// Runs the whole system on this machine against moto: creates its queues (with their
    /// redrive policies and dead-letter queues), streams, topics (with their subscriptions),
    /// buses and rules, buckets and tables; runs each SQS-triggered Lambda as an SQS worker,
    /// each Kinesis- or DynamoDB-Streams-triggered one behind a stream poller, each one a
    /// topic, bucket or rule invokes behind a bridge; prints their logs prefixed with their
    /// names; Ctrl-C stops all. Uses AWS_ENDPOINT_URL when set, else starts moto_server on a
    /// free loopback port; never a real AWS account.
    Up {
        /// Prefix every resource name with this (several systems, or runs, on one moto).
        #[arg(long, default_value = "")]
        prefix: String,
        /// How long workers have to finish their batches after Ctrl-C.
        #[arg(long, default_value_t = 5)]
        grace_seconds: u64,
        /// The moto_server to start (default: moto_server on the PATH).
        #[arg(long, default_value = "moto_server")]
        moto_server: PathBuf,
    },
    /// Puts the messages of FILE (one JSON message, or an array) on QUEUE of the system
    /// `lpipe up` runs.
    Send {
        /// The queue (`sqs:NAME` or `NAME`, as the system file names it).
        queue: String,
        /// The messages.
        file: PathBuf,
        /// The prefix `lpipe up` was given.
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Send {
        queue,
        file,
        prefix,
    } = &cli.command
    {
        return send(&cli.system, queue, file, prefix);
    }
    let system = match System::read(&cli.system) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lpipe: {e}");
            return ExitCode::from(2);
        }
    };
    let base = cli
        .system
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let binaries = match cli.bin_dir.clone() {
        Some(dir) => Binaries::In(dir),
        None => Binaries::Build,
    };
    // Built (or found) once: described, and run by `up`.
    let exes = match executables(&system, &binaries) {
        Ok(exes) => exes,
        Err(e) => {
            eprintln!("lpipe: {e}");
            return ExitCode::from(2);
        }
    };
    let descriptions = match describe_all(&system, &base, &exes) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("lpipe: {e}");
            return ExitCode::from(2);
        }
    };
    let model = Model::new(&system, &descriptions);
    match cli.command {
        Command::Send { .. } => unreachable!("handled above"),
        Command::Up {
            prefix,
            grace_seconds,
            moto_server,
        } => {
            let up = lpipe_cli::up::Up {
                prefix,
                grace_seconds,
            };
            run_up(&model, &exes, &up, &cli.system, &moto_server)
        }
        Command::Graph => {
            print!("{}", lpipe_cli::graph::mermaid(&model));
            ExitCode::SUCCESS
        }
        Command::Template {
            output,
            prefix,
            code_dir,
        } => {
            let options = lpipe_cli::template::Options { prefix, code_dir };
            write_template(&model, &options, output.as_deref())
        }
        Command::Check {
            json,
            deployed,
            prefix,
        } => run_check(&model, json, deployed.then_some(prefix.as_str())),
    }
}

/// `lpipe check`: the system's problems, and with `deployed` (its prefix) what is deployed.
fn run_check(model: &Model<'_>, json: bool, deployed: Option<&str>) -> ExitCode {
    let mut problems = check(model);
    if let Some(prefix) = deployed {
        match runtime().block_on(check_deployed(model, prefix)) {
            Ok(found) => problems.extend(found),
            Err(e) => {
                eprintln!("lpipe check --deployed: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let errors = problems.iter().filter(|p| p.level == Level::Error).count();
    if json {
        let text = serde_json::to_string_pretty(&problems).expect("JSON");
        println!("{text}");
    } else {
        for p in &problems {
            println!("{p}");
        }
        let warnings = problems.len() - errors;
        println!(
            "{} lambdas: {errors} errors, {warnings} warnings",
            model.system.lambdas.len()
        );
    }
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn check_deployed(
    model: &Model<'_>,
    prefix: &str,
) -> Result<Vec<lpipe_cli::check::Problem>, String> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let at = lpipe_cli::deployed::Deployed {
        config: &config,
        prefix,
    };
    lpipe_cli::deployed::check_deployed(model, &at).await
}

fn write_template(
    model: &Model<'_>,
    options: &lpipe_cli::template::Options,
    output: Option<&std::path::Path>,
) -> ExitCode {
    let errors: Vec<_> = check(model)
        .into_iter()
        .filter(|p| p.level == Level::Error)
        .collect();
    if !errors.is_empty() {
        for p in &errors {
            eprintln!("{p}");
        }
        eprintln!("lpipe template: the system has errors (above): fix them first");
        return ExitCode::FAILURE;
    }
    let yaml = match lpipe_cli::template::template(model, options)
        .and_then(|t| lpipe_cli::template::to_yaml(&t))
    {
        Ok(yaml) => yaml,
        Err(e) => {
            eprintln!("lpipe template: {e}");
            return ExitCode::FAILURE;
        }
    };
    match output {
        None => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Some(file) => match std::fs::write(file, yaml) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lpipe template: cannot write {}: {e}", file.display());
                ExitCode::FAILURE
            }
        },
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a tokio runtime")
}

/// Local credentials and region for moto, unless the environment has its own.
fn local_aws_environment() {
    for (var, value) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, value);
        }
    }
}

fn run_up(
    model: &Model<'_>,
    exes: &std::collections::BTreeMap<String, PathBuf>,
    up: &lpipe_cli::up::Up,
    system_file: &std::path::Path,
    moto_server: &std::path::Path,
) -> ExitCode {
    local_aws_environment();
    let (endpoint, mut moto) = match std::env::var("AWS_ENDPOINT_URL") {
        Ok(e) if !e.is_empty() => (e, None),
        _ => match start_moto(moto_server) {
            Ok((endpoint, child)) => (endpoint, Some(child)),
            Err(e) => {
                eprintln!("lpipe up: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let state = lpipe_cli::up::state_file(system_file);
    let _ = std::fs::write(&state, format!("{endpoint}\n"));
    let result = runtime().block_on(lpipe_cli::up::up(model, exes, up, &endpoint));
    let _ = std::fs::remove_file(&state);
    if let Some(child) = &mut moto {
        let _ = child.kill();
        let _ = child.wait();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lpipe up: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts moto_server on a free loopback port; its endpoint, once it answers.
fn start_moto(moto_server: &std::path::Path) -> Result<(String, std::process::Child), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let child = std::process::Command::new(moto_server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} ({e}): install it (pip install 'moto[server]') or set AWS_ENDPOINT_URL",
                moto_server.display()
            )
        })?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((format!("http://127.0.0.1:{port}"), child));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(format!(
        "{} did not answer on port {port}",
        moto_server.display()
    ))
}

fn send(
    system_file: &std::path::Path,
    queue: &str,
    file: &std::path::Path,
    prefix: &str,
) -> ExitCode {
    local_aws_environment();
    let endpoint = match std::env::var("AWS_ENDPOINT_URL") {
        Ok(e) if !e.is_empty() => e,
        _ => {
            match std::fs::read_to_string(lpipe_cli::up::state_file(system_file)) {
                Ok(e) => e.trim().to_owned(),
                Err(_) => {
                    eprintln!("lpipe send: no system is up (no {}): run `lpipe up`, or set AWS_ENDPOINT_URL", lpipe_cli::up::state_file(system_file).display());
                    return ExitCode::from(2);
                }
            }
        }
    };
    match runtime().block_on(lpipe_cli::up::send(&endpoint, queue, file, prefix)) {
        Ok(n) => {
            println!("sent {n} messages to {queue}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lpipe send: {e}");
            ExitCode::FAILURE
        }
    }
}
