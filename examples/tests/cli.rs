//! Every lpipe binary's command line, outside Lambda: `--help`, `graph`, and an event file
//! that is not JSON or starts with a byte-order mark. Runs the built example binaries.

use std::process::{Command, Output};

use lpipe::testing::assert_contains;

fn run(binary: &str, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("RUST_LOG", "error")
        .output()
        .expect("the example binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_binary_answers_help() {
    for binary in [
        env!("CARGO_BIN_EXE_graph"),
        env!("CARGO_BIN_EXE_graph-mailer"),
        env!("CARGO_BIN_EXE_quickstart"),
        env!("CARGO_BIN_EXE_custom_sink"),
    ] {
        let out = run(binary, &["--help"]);
        assert!(out.status.success(), "{binary}: {}", text(&out.stderr));
        let usage = text(&out.stdout);
        assert_contains(&usage, "[--send] [EVENT_FILE]");
        assert_contains(&usage, "graph                   print the graph");
    }
}

#[test]
fn graph_prints_the_pipelines_diagram() {
    let expected = lpipe_examples::graph::signup()
        .record_outbound(lpipe::MemorySink::new())
        .build()
        .unwrap()
        .to_mermaid();
    for arg in ["graph", "--mermaid"] {
        let out = run(env!("CARGO_BIN_EXE_graph"), &[arg]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), expected);
    }
    let out = run(env!("CARGO_BIN_EXE_graph"), &["graph", "extra"]);
    assert_eq!(out.status.code(), Some(2));
    assert_contains(text(&out.stderr), "graph takes no arguments (got extra)");
}

#[test]
fn an_event_file_that_is_not_json_is_named_with_line_and_column() {
    let dir = std::env::temp_dir().join(format!("lpipe-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"Records\": [\n  {\"body\": }\n]}").unwrap();
    let out = run(env!("CARGO_BIN_EXE_graph"), &[bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_contains(
        text(&out.stderr),
        "is not JSON: expected value at line 2 column 12",
    );

    // A byte-order mark in front of a good event is skipped.
    let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/events/graph.json")).unwrap();
    let with_bom = dir.join("bom.json");
    std::fs::write(&with_bom, [&[0xef, 0xbb, 0xbf][..], &sample].concat()).unwrap();
    let out = run(env!("CARGO_BIN_EXE_graph"), &[with_bom.to_str().unwrap()]);
    assert_contains(text(&out.stdout), "\"batchItemFailures\"");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_option_prints_the_usage() {
    let out = run(env!("CARGO_BIN_EXE_quickstart"), &["--sned"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_contains(&err, "unknown option --sned");
    assert_contains(&err, "quickstart --help");
}
