//! Each Lambda's description (`my-lambda describe`): from its binary, built with cargo, or
//! from a file the system names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::system::System;

/// Where binaries come from.
#[derive(Clone, Debug)]
pub enum Binaries {
    /// Built with `cargo build` (the default).
    Build,
    /// Already built, in this directory (`--bin-dir`).
    In(PathBuf),
}

/// The descriptions of the system's Lambdas, by name: each description file the system names
/// (`base` is the system file's directory), else what each executable ([`executables`]) says.
///
/// # Errors
///
/// A binary that did not describe itself, or a description in another format, naming the
/// Lambda.
pub fn describe_all(
    system: &System,
    base: &Path,
    exes: &BTreeMap<String, PathBuf>,
) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for (name, lambda) in &system.lambdas {
        let description = match &lambda.description {
            Some(file) => {
                let file = base.join(file);
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("lambda '{name}': cannot read {}: {e}", file.display()))?;
                serde_json::from_str(&text)
                    .map_err(|e| format!("lambda '{name}': {} is not JSON: {e}", file.display()))?
            }
            None => run_describe(name, &exes[name])?,
        };
        let schema = description["schema"].as_str().unwrap_or("");
        if schema != lpipe_core::describe::DESCRIBE_SCHEMA {
            return Err(format!(
                "lambda '{name}': its description is in the format '{schema}', and this tool reads '{}'",
                lpipe_core::describe::DESCRIBE_SCHEMA
            ));
        }
        out.insert(name.clone(), description);
    }
    Ok(out)
}

/// The executable of each Lambda that has a binary (not only a description file), built with
/// cargo or found in the directory given.
///
/// # Errors
///
/// A build that failed, or a binary cargo did not build, naming the Lambda.
pub fn executables(
    system: &System,
    binaries: &Binaries,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let built = match binaries {
        Binaries::Build => build(system)?,
        Binaries::In(_) => BTreeMap::new(),
    };
    let mut out = BTreeMap::new();
    for (name, lambda) in &system.lambdas {
        if lambda.description.is_some() {
            continue;
        }
        let binary = lambda.binary.as_deref().unwrap_or(name);
        let exe = match binaries {
            Binaries::In(dir) => dir.join(binary),
            Binaries::Build => built
                .get(binary)
                .cloned()
                .ok_or_else(|| format!("lambda '{name}': cargo built no binary '{binary}'"))?,
        };
        out.insert(name.clone(), exe);
    }
    Ok(out)
}

fn run_describe(name: &str, exe: &Path) -> Result<Value, String> {
    let out = Command::new(exe)
        .arg("describe")
        .output()
        .map_err(|e| format!("lambda '{name}': cannot run {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "lambda '{name}': `{} describe` failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "lambda '{name}': `{} describe` printed no JSON ({e}); is it built with lpipe::run?",
            exe.display()
        )
    })
}

/// Builds the binaries the system names with cargo; their executables by binary name.
fn build(system: &System) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut by_package: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, lambda) in &system.lambdas {
        if lambda.description.is_some() {
            continue;
        }
        let package = lambda.package.as_deref().ok_or_else(|| {
            format!("lambda '{name}': name its cargo `package` (or a `description` file)")
        })?;
        by_package
            .entry(package)
            .or_default()
            .push(lambda.binary.as_deref().unwrap_or(name));
    }
    let mut executables = BTreeMap::new();
    for (package, binaries) in by_package {
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args([
            "build",
            "--message-format=json-render-diagnostics",
            "-p",
            package,
        ]);
        for b in &binaries {
            cargo.args(["--bin", b]);
        }
        let out = cargo
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo build -p {package} failed"));
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(message) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let (Some(exe), Some(name)) = (
                message["executable"].as_str(),
                message["target"]["name"].as_str(),
            ) {
                executables.insert(name.to_owned(), PathBuf::from(exe));
            }
        }
    }
    Ok(executables)
}
