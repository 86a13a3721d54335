//! `lpipe`: a system of lpipe Lambdas, described by its system file (`lpipe.toml`), checked and
//! drawn as a whole.
#![warn(missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lpipe_cli::check::{check, Level};
use lpipe_cli::descriptions::{describe_all, Binaries};
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
    },
    /// Prints the whole system as one Mermaid flowchart.
    Graph,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let binaries = match cli.bin_dir {
        Some(dir) => Binaries::In(dir),
        None => Binaries::Build,
    };
    let descriptions = match describe_all(&system, &base, &binaries) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("lpipe: {e}");
            return ExitCode::from(2);
        }
    };
    let model = Model::new(&system, &descriptions);
    match cli.command {
        Command::Graph => {
            print!("{}", lpipe_cli::graph::mermaid(&model));
            ExitCode::SUCCESS
        }
        Command::Check { json } => {
            let problems = check(&model);
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
                    system.lambdas.len()
                );
            }
            if errors > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
