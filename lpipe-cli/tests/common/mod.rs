//! What the command line's tests share: the binaries, the examples' system, scratch folders,
//! and an AWS configuration for moto.
#![allow(dead_code)] // each test file uses its part

use std::path::{Path, PathBuf};
use std::process::Output;

/// Where the examples' binaries are: beside this crate's (`cargo test --workspace` builds
/// every package's binaries).
pub fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_lpipe"))
        .parent()
        .unwrap()
        .to_owned();
    assert!(
        dir.join("graph").exists(),
        "the examples' binaries are not in {}: build them first (cargo build -p lpipe-examples; the test command does)",
        dir.display()
    );
    dir
}

/// examples/lpipe.toml.
pub fn examples_system() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/lpipe.toml")
}

/// A process's standard output and error, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A fresh folder of this test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lpipe-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The AWS configuration of moto at `endpoint`.
pub async fn moto_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

/// What an example binary says of itself (`BINARY describe`).
pub fn describe(binary: &str) -> serde_json::Value {
    let out = std::process::Command::new(bin_dir().join(binary))
        .arg("describe")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A system file in `dir` (its path) whose Lambdas' descriptions are files beside it: each
/// example binary's, as `BINARY.json`.
pub fn described_system(dir: &Path, binaries: &[&str], toml: &str) -> PathBuf {
    for binary in binaries {
        let file = dir.join(format!("{binary}.json"));
        std::fs::write(file, describe(binary).to_string()).unwrap();
    }
    let file = dir.join("lpipe.toml");
    std::fs::write(&file, toml).unwrap();
    file
}
