//! Every lpipe binary's command line, outside Lambda: `--help`, `graph`, and an event file
//! that is not JSON or starts with a byte-order mark. Runs the built example binaries.

use std::process::{Command, Output};

use lpipe::testing::{assert_contains, assert_not_contains};

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
    let expected = lpipe_examples::graph::signup().to_mermaid();
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

#[test]
fn local_mode_shows_how_each_message_would_be_routed() {
    let out = run(
        env!("CARGO_BIN_EXE_orders-intake"),
        &[concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/orders-intake.json"
        )],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        stdout["stats"],
        serde_json::json!({"received": 4, "successes": 3, "dropped": 1, "failed": 0})
    );
    let err = text(&out.stderr);
    assert_contains(
        &err,
        "  -> kinesis:lpipe-orders-enriched (path STORE) [PartitionKey=c-1]: {",
    );
    assert_contains(
        &err,
        "  -> sqs:lpipe-orders-notify.fifo (path NOTIFY) [MessageGroupId=c-2, MessageDeduplicationId=",
    );
}

#[test]
fn outputs_are_logged_at_debug_level() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/events/orders-store.json");
    let out = Command::new(env!("CARGO_BIN_EXE_orders-store"))
        .arg(sample)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_contains(&err, "record output");
    assert_contains(&err, r#"output={"order_id":"o-1","total_cents":2100}"#);
    // Not at the default level.
    let out = run(env!("CARGO_BIN_EXE_orders-store"), &[sample]);
    assert_not_contains(text(&out.stderr), "record output");
}

#[test]
fn the_eventbridge_sample_runs_its_directed_path() {
    let out = run(
        env!("CARGO_BIN_EXE_conformance"),
        &[concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/conformance-eventbridge.json"
        )],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let response: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(response["output"], serde_json::json!(["foobar"]));
}

/// With no event file and a terminal on stdin, the binary prints its usage instead of waiting
/// for an event to be typed. `script` (util-linux) gives it a terminal.
#[test]
fn a_terminal_on_stdin_gets_the_usage_not_a_wait() {
    let binary = env!("CARGO_BIN_EXE_graph");
    let Ok(out) = Command::new("script")
        .args(["-qec", binary, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
    else {
        eprintln!("SKIPPED a_terminal_on_stdin_gets_the_usage_not_a_wait: no `script` command (util-linux) to give the binary a terminal");
        return;
    };
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let said = text(&out.stdout);
    assert_contains(&said, "no event: give an event file, or pipe one in");
    assert_contains(&said, "graph --help");
}

/// Runs the graph example locally on its sample event with these log settings.
fn graph_with_logs(vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_graph"));
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/events/graph.json"))
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("RUST_LOG")
        .env_remove("AWS_LAMBDA_LOG_FORMAT")
        .env_remove("AWS_LAMBDA_LOG_LEVEL")
        .env(
            "_X_AMZN_TRACE_ID",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
        );
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().expect("the graph example runs")
}

#[test]
fn with_json_logs_every_line_on_stderr_is_json_logs_messages_and_metrics() {
    let out = graph_with_logs(&[
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    // Debug lines (kwargs) are there: the level was taken.
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "record received" && l["level"] == "DEBUG"),
        "{stderr}"
    );
    // Each line logged while a record ran names its request, record, path and trace.
    let stored: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "stored user")
        .collect();
    assert_eq!(stored.len(), 2, "{stderr}");
    for l in &stored {
        assert!(
            l["request_id"].as_str().unwrap().starts_with("local-"),
            "{l}"
        );
        assert!(
            l["record_id"]
                .as_str()
                .unwrap()
                .starts_with("00000000-0000-4000-8000-"),
            "{l}"
        );
        assert_eq!(l["path"], "SIGNUP", "{l}");
        assert_eq!(l["function"], "store_user", "{l}");
        assert_eq!(l["trace_id"], "1-5759e988-bd862e3fe1be46a994272793", "{l}");
    }
    let dropped: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("record dropped"))
        })
        .collect();
    assert_eq!(dropped.len(), 1, "{stderr}");
    assert_eq!(dropped[0]["level"], "WARN");
    assert_eq!(dropped[0]["function"], "validate_signup");
    // The messages it would send, and the metrics.
    let messages = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("outbound message"))
        })
        .count();
    assert_eq!(messages, 3, "{stderr}");
    let metrics: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    assert!(!metrics.is_empty(), "{stderr}");
    for m in metrics {
        lpipe::testing::check_emf(m).unwrap();
    }
    // stdout is the response alone.
    let response: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(response["stats"]["received"], 4);
}

#[test]
fn with_text_logs_lines_are_readable_and_the_level_is_honoured() {
    let out = graph_with_logs(&[("AWS_LAMBDA_LOG_LEVEL", "WARN")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    // WARN: the dropped record, not the info lines.
    assert_contains(&stderr, "WARN");
    assert_contains(&stderr, "record dropped");
    assert_not_contains(&stderr, "stored user");
    assert_not_contains(&stderr, "\"level\":");
    // RUST_LOG overrides the Lambda level.
    let out = graph_with_logs(&[("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "info")]);
    let stderr = text(&out.stderr);
    assert_contains(&stderr, " INFO lpipe{request_id=\"local-");
    assert_contains(
        &stderr,
        "trace_id=\"1-5759e988-bd862e3fe1be46a994272793\" record_id=\"00000000-0000-4000-8000-000000000001\" path=\"SIGNUP\" function=\"store_user\"}: stored user name=Ann plan=pro",
    );
}

#[test]
fn the_worker_subcommand_names_a_bad_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_graph"))
        .args(["worker", "--queue", "q", "--batch-size", "11"])
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_contains(&err, "--batch-size must be from 1 to 10, not 11");
    assert_contains(&err, "usage: PROGRAM worker --queue NAME_OR_URL");
    let out = run(env!("CARGO_BIN_EXE_graph"), &["--help"]);
    assert_contains(text(&out.stdout), "graph worker --queue QUEUE");
}
