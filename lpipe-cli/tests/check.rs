//! `lpipe check` and `lpipe graph` on the examples' system (examples/lpipe.toml), and `lpipe
//! check` on broken systems, one per rule: each fails naming the Lambda, path, queue and field.
//!
//! The examples' binaries are asked to describe themselves; they are built beside this crate's
//! binary by the test command (`cargo test --workspace` builds every package's binaries).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

mod common;
use common::{bin_dir, describe, examples_system, text};

fn lpipe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lpipe"))
        .args(args)
        .output()
        .expect("runs lpipe")
}

#[test]
fn the_examples_system_checks_clean() {
    let system = examples_system();
    let dir = bin_dir();
    let out = lpipe(&[
        "-f",
        system.to_str().unwrap(),
        "--bin-dir",
        dir.to_str().unwrap(),
        "check",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("6 lambdas: 0 errors, 0 warnings"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_examples_readme_draws_the_system_as_lpipe_graph_does() {
    let system = examples_system();
    let dir = bin_dir();
    let out = lpipe(&[
        "-f",
        system.to_str().unwrap(),
        "--bin-dir",
        dir.to_str().unwrap(),
        "graph",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let chart = String::from_utf8(out.stdout).unwrap();
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/README.md"),
    )
    .unwrap();
    let marker = "<!-- lpipe graph -->\n```mermaid\n";
    let start = readme.find(marker).expect("the system picture's marker") + marker.len();
    let end = start + readme[start..].find("```").unwrap();
    assert_eq!(
        &readme[start..end],
        chart,
        "examples/README.md's system picture is stale: regenerate it with `lpipe -f examples/lpipe.toml graph`"
    );
}

/// The graph pair's descriptions (from their binaries), to break.
fn graph_pair() -> (Value, Value) {
    (describe("graph"), describe("graph-mailer"))
}

const SYSTEM: &str = r#"
[lambdas.graph]
description = "graph.json"
[[lambdas.graph.triggers]]
sqs = "lpipe-graph-signups"
paths = ["SIGNUP"]
max_receive_count = 5
dead_letter_queue = "lpipe-graph-signups-dlq"

[lambdas.graph-mailer]
description = "graph-mailer.json"
[[lambdas.graph-mailer.triggers]]
sqs = "MAILER_QUEUE"
max_receive_count = 5
dead_letter_queue = "lpipe-graph-mailer-dlq"

[external]
queues = ["sqs:lpipe-graph-signup-dropped"]
"#;

/// Checks the graph pair as broken by `breaks` (on the descriptions and the system file).
fn check_broken(
    name: &str,
    breaks: impl FnOnce(&mut Value, &mut Value, &mut String),
    json_output: bool,
) -> (bool, String) {
    let (mut graph, mut mailer) = graph_pair();
    let mut system = SYSTEM.replace("MAILER_QUEUE", "lpipe-graph-mailer");
    breaks(&mut graph, &mut mailer, &mut system);
    let dir = std::env::temp_dir().join(format!("lpipe-check-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("graph.json"), graph.to_string()).unwrap();
    std::fs::write(dir.join("graph-mailer.json"), mailer.to_string()).unwrap();
    std::fs::write(dir.join("lpipe.toml"), system).unwrap();
    let file = dir.join("lpipe.toml");
    let mut args = vec!["-f", file.to_str().unwrap(), "check"];
    if json_output {
        args.push("--json");
    }
    let out = lpipe(&args);
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.success(), text(&out))
}

fn forward_action(graph: &mut Value) -> &mut Value {
    let signup = &mut graph["paths"][0];
    assert_eq!(signup["name"], "SIGNUP");
    let actions = signup["actions"].as_array_mut().unwrap();
    actions.last_mut().unwrap()
}

#[test]
fn the_pair_as_it_is_checks_clean() {
    let (ok, out) = check_broken("clean", |_, _, _| {}, false);
    assert!(ok, "{out}");
    assert!(out.contains("2 lambdas: 0 errors, 0 warnings"), "{out}");
}

#[test]
fn a_kwarg_renamed_on_one_side_is_an_error() {
    let (ok, out) = check_broken(
        "renamed",
        |_, mailer, _| {
            mailer["paths"][0]["actions"][0]["functions"][0]["params"]["fields"] =
                json!(["email", "name"]);
        },
        false,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("error[missing-param]: lambda graph, path SIGNUP, queue sqs:lpipe-graph-mailer, field email: action 2 does not pass email, which send_welcome, the first function of graph-mailer's path SEND_WELCOME, requires"),
        "{out}"
    );
}

#[test]
fn a_kwarg_whose_type_differs_on_the_two_sides_is_an_error() {
    // The graph pair's functions carry their argument schemas (`with_schema`): the signup
    // Lambda takes `email` as a string and passes it on as `address`.
    let (ok, out) = check_broken(
        "type",
        |_, mailer, _| {
            let schema = &mut mailer["paths"][0]["actions"][0]["functions"][0]["params"]["schema"];
            assert_eq!(
                schema["properties"]["address"]["type"], "string",
                "{schema}"
            );
            schema["properties"]["address"]["type"] = json!("integer");
        },
        false,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("error[type-mismatch]: lambda graph, path SIGNUP, queue sqs:lpipe-graph-mailer, field address: action 2 passes address as string (validate_signup takes email as such), but send_welcome, the first function of graph-mailer's path SEND_WELCOME, takes it as integer"),
        "{out}"
    );
    // Without the schema on one side, nothing is compared.
    let (ok, out) = check_broken(
        "type-unknown",
        |_, mailer, _| {
            let params = &mut mailer["paths"][0]["actions"][0]["functions"][0]["params"];
            params.as_object_mut().unwrap().remove("schema");
        },
        false,
    );
    assert!(ok, "{out}");
}

#[test]
fn a_path_the_consumer_does_not_have_is_an_error() {
    let (ok, out) = check_broken(
        "missing-path",
        |_, mailer, _| mailer["paths"][0]["name"] = json!("SEND_HELLO"),
        false,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("error[missing-path]: lambda graph, path SIGNUP, queue sqs:lpipe-graph-mailer: action 2 sends path SEND_WELCOME to graph-mailer, which has no such path (it has: SEND_HELLO)"),
        "{out}"
    );
}

#[test]
fn a_fifo_queue_without_a_group_is_an_error() {
    let (ok, out) = check_broken(
        "fifo",
        |graph, _, system| {
            forward_action(graph)["queues"][0]["target"] = json!("lpipe-graph-mailer.fifo");
            *system = SYSTEM.replace("MAILER_QUEUE", "lpipe-graph-mailer.fifo");
        },
        false,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("error[fifo-without-group]: lambda graph, path SIGNUP, queue sqs:lpipe-graph-mailer.fifo: action 2 sends to a FIFO queue without a message group"),
        "{out}"
    );
}

#[test]
fn a_queue_nothing_consumes_is_an_error() {
    let (ok, out) = check_broken(
        "unconsumed",
        |_, _, system| *system = SYSTEM.replace("MAILER_QUEUE", "lpipe-graph-other"),
        false,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("error[unconsumed-queue]: lambda graph, path SIGNUP, queue sqs:lpipe-graph-mailer: action 2 forwards to sqs:lpipe-graph-mailer, which no Lambda of the system consumes and which is not declared external"),
        "{out}"
    );
}

#[test]
fn a_consumed_queue_without_redrive_is_an_error() {
    let (ok, out) = check_broken(
        "redrive",
        |_, _, system| {
            *system = SYSTEM
                .replace("MAILER_QUEUE", "lpipe-graph-mailer")
                .replace("dead_letter_queue = \"lpipe-graph-mailer-dlq\"\n", "");
        },
        false,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("error[no-redrive]: lambda graph-mailer, queue sqs:lpipe-graph-mailer: the queue it consumes has no redrive policy"),
        "{out}"
    );
}

#[test]
fn a_cycle_across_lambdas_is_an_error_and_json_says_the_same() {
    let (ok, out) = check_broken(
        "cycle",
        |_, mailer, _| {
            mailer["paths"][0]["actions"][0]["queues"] = json!([{
                "kind": "sqs", "target": "lpipe-graph-signups", "env": null,
                "path": "SIGNUP", "options": {}
            }]);
        },
        true,
    );
    assert!(!ok, "{out}");
    let problems: Value = serde_json::from_str(&out).unwrap();
    let cycle = problems
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["rule"] == "cycle")
        .unwrap_or_else(|| panic!("no cycle in {out}"));
    assert_eq!(cycle["level"], "error");
    let message = cycle["message"].as_str().unwrap();
    assert!(
        message.contains("graph:SIGNUP -> graph-mailer:SEND_WELCOME -> graph:SIGNUP"),
        "{message}"
    );
}

#[test]
fn a_path_nothing_reaches_is_a_warning() {
    let (ok, out) = check_broken(
        "unreached",
        |_, _, system| {
            *system = SYSTEM
                .replace("MAILER_QUEUE", "lpipe-graph-mailer")
                .replace("paths = [\"SIGNUP\"]\n", "");
        },
        false,
    );
    assert!(ok, "warnings alone pass: {out}");
    assert!(
        out.contains("warning[unreached-path]: lambda graph, path SIGNUP: nothing reaches it"),
        "{out}"
    );
}

#[test]
fn a_system_file_with_a_typo_is_refused_naming_it() {
    let dir = std::env::temp_dir().join(format!("lpipe-typo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lpipe.toml");
    std::fs::write(
        &file,
        "[lambdas.a]\npackage = \"p\"\n[[lambdas.a.triggers]]\nsqs = \"q\"\nmax_recieve_count = 3\n",
    )
    .unwrap();
    let out = lpipe(&["-f", file.to_str().unwrap(), "check"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("max_recieve_count"), "{}", text(&out));
}
