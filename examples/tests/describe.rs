//! `my-lambda describe`: every example binary describes itself, the description says what the
//! code declares, and it validates against the JSON Schema of the format
//! (`lpipe-core/describe.schema.json`).

use std::process::Command;

use serde_json::Value;

/// Every example binary, by name, with its executable.
const BINARIES: [(&str, &str); 11] = [
    ("quickstart", env!("CARGO_BIN_EXE_quickstart")),
    ("graph", env!("CARGO_BIN_EXE_graph")),
    ("graph-mailer", env!("CARGO_BIN_EXE_graph-mailer")),
    ("orders-intake", env!("CARGO_BIN_EXE_orders-intake")),
    ("orders-store", env!("CARGO_BIN_EXE_orders-store")),
    ("orders", env!("CARGO_BIN_EXE_orders")),
    ("custom_sink", env!("CARGO_BIN_EXE_custom_sink")),
    ("sentry", env!("CARGO_BIN_EXE_sentry")),
    ("conformance", env!("CARGO_BIN_EXE_conformance")),
    ("fanout-publisher", env!("CARGO_BIN_EXE_fanout-publisher")),
    ("fanout-consumer", env!("CARGO_BIN_EXE_fanout-consumer")),
];

fn describe(name: &str, exe: &str) -> Value {
    let out = Command::new(exe)
        .arg("describe")
        // The defaults, whatever the environment says.
        .env_remove("GRAPH_MAILER_QUEUE")
        .env_remove("IDEMPOTENCY_TABLE")
        .output()
        .unwrap_or_else(|e| panic!("running {name} describe: {e}"));
    assert!(
        out.status.success(),
        "{name} describe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{name} describe printed no JSON: {e}"))
}

#[test]
fn every_binary_describes_what_its_code_declares() {
    for (name, exe) in BINARIES {
        let d = describe(name, exe);
        assert_eq!(d["schema"], "lpipe.describe/1", "{name}");
        assert_eq!(d["lambda"], name);
        assert!(!d["paths"].as_array().unwrap().is_empty(), "{name}: {d}");
    }
    let graph = describe("graph", env!("CARGO_BIN_EXE_graph"));
    assert_eq!(graph["sources"][0]["name"], "sqs");
    let signup = &graph["paths"][0];
    assert_eq!(signup["name"], "SIGNUP");
    // SIGNUP's last action forwards `email` as `address` and `name` to the mailer's queue.
    let forward = signup["actions"].as_array().unwrap().last().unwrap();
    let queue = &forward["queues"][0];
    assert_eq!(queue["kind"], "sqs");
    assert_eq!(queue["target"], "lpipe-graph-mailer");
    assert_eq!(
        queue["env"],
        serde_json::json!({"var": "GRAPH_MAILER_QUEUE", "default": "lpipe-graph-mailer"})
    );
    assert_eq!(queue["path"], "SEND_WELCOME");
    assert_eq!(forward["passes"], serde_json::json!(["address", "name"]));
    assert_eq!(
        graph["dead_letter_queue"]["env"]["var"],
        "GRAPH_DROPPED_QUEUE"
    );
    // The mailer's function and the parameters it takes.
    let mailer = describe("graph-mailer", env!("CARGO_BIN_EXE_graph-mailer"));
    let welcome = &mailer["paths"][0]["actions"][0]["functions"][0];
    assert_eq!(welcome["name"], "send_welcome");
    let params = &welcome["params"];
    assert_eq!(params["kind"], "fields");
    assert_eq!(params["fields"], serde_json::json!(["address", "name"]));
    assert_eq!(params["optional"], serde_json::json!([]));
    // Given `with_schema`: its argument type's JSON Schema.
    assert_eq!(params["schema"]["title"], "Welcome");
    assert_eq!(params["schema"]["properties"]["address"]["type"], "string");
    // The consumer's sources, envelope and idempotency.
    let consumer = describe("fanout-consumer", env!("CARGO_BIN_EXE_fanout-consumer"));
    let sources: Vec<&str> = consumer["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["sqs", "s3"]);
    assert_eq!(consumer["sources"][0]["envelope"]["kind"], "sns");
    assert_eq!(
        consumer["sources"][1]["routes"][0]["key_prefix"],
        "receipts/"
    );
    let idempotency = consumer["idempotency"].as_array().unwrap();
    assert_eq!(idempotency.len(), 2);
    assert!(idempotency
        .iter()
        .any(|i| i["key"] == serde_json::json!({"message_id": true})));
    assert_eq!(idempotency[0]["store"]["kind"], "memory");
    // Stream sources say whether they answer with partial batch responses (the mapping needs
    // ReportBatchItemFailures then), and DynamoDB Streams its routes.
    let store = describe("orders-store", env!("CARGO_BIN_EXE_orders-store"));
    assert_eq!(
        store["sources"][0],
        serde_json::json!({"name": "kinesis", "partial_responses": true})
    );
    let orders = describe("orders", env!("CARGO_BIN_EXE_orders"));
    assert_eq!(orders["sources"][1]["routes"]["INSERT"], "PLACE_ORDER");
}

#[test]
#[ignore = "needs the test command's Python with jsonschema (LPIPE_PYTHON): run ./scripts/test"]
fn every_description_validates_against_the_schema() {
    let python = std::env::var("LPIPE_PYTHON").unwrap_or_else(|_| {
        panic!("LPIPE_PYTHON is not set: run ./scripts/test, which installs jsonschema into .venv and sets it")
    });
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../lpipe-core/describe.schema.json"
    );
    let dir = std::env::temp_dir().join(format!("lpipe-describe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (name, exe) in BINARIES {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, describe(name, exe).to_string()).unwrap();
        files.push(file);
    }
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
bad = 0
for path in sys.argv[2:]:
    for error in validator.iter_errors(json.load(open(path))):
        bad += 1
        print(f"{path}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
sys.exit(1 if bad else 0)
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(schema)
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(
        out.status.success(),
        "descriptions that do not validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And the validator does refuse what breaks the schema.
    let broken = dir.join("broken.json");
    let mut d = describe("graph", env!("CARGO_BIN_EXE_graph"));
    d["paths"][0]["actions"][0]["queues"] = serde_json::json!([{"kind": "sqs"}]);
    std::fs::write(&broken, d.to_string()).unwrap();
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(schema)
        .arg(&broken)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a queue without its target validated"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
