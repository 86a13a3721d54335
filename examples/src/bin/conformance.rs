//! The conformance Lambda. Locally:
//! `conformance [--default-path NAME] [--call] [--send] [EVENT_FILE]` (stdin without a file),
//! `conformance describe`, `conformance graph`.
use std::process::ExitCode;

use lpipe_examples::conformance;

const USAGE: &str = "usage: conformance [--default-path NAME] [--call] [--send] [EVENT_FILE]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut default_path = None;
    let mut call = false;
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--default-path" => match args.next() {
                Some(p) => default_path = Some(p),
                None => {
                    eprintln!("--default-path needs a path name\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--call" => call = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => rest.push(arg),
        }
    }
    let mut builder = if call {
        conformance::call_pipeline()
    } else {
        conformance::pipeline()
    };
    if let Some(p) = default_path {
        if call {
            eprintln!("--call and --default-path exclude each other\n{USAGE}");
            return ExitCode::from(2);
        }
        builder = builder.default_path(p);
    }
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lpipe::runtime::run_lambda(builder).await;
    }
    lpipe::runtime::run_command_line(builder, "conformance", rest).await
}
