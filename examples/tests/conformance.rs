//! The reference's fixture table (Python lpipe 4.2.0, tests/fixtures.py DATA), run through the
//! raw source in-process and through the `conformance` binary.

use std::process::Command;

use lpipe::testing::lambda_context;
use lpipe::{sink::MemorySink, PipelineBuilder};
use lpipe_examples::conformance;
use serde_json::Value;

fn fixtures() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/conformance.json"
    ))
    .expect("fixture table");
    let doc: Value = serde_json::from_str(&text).expect("fixture table is JSON");
    doc["fixtures"]
        .as_array()
        .expect("a list of fixtures")
        .clone()
}

fn builder_for(fixture: &Value) -> PipelineBuilder {
    let builder = conformance::pipeline();
    match fixture["default_path"].as_str() {
        Some(p) => builder.default_path(p),
        None => builder,
    }
}

/// Checks a response against a fixture: the stats the reference reports (received,
/// successes) and the output when the fixture lists one.
fn check(name: &str, fixture: &Value, response: &Value) {
    let expected = &fixture["response"];
    assert_eq!(response["event"], "Finished.", "{name}: {response}");
    for key in ["received", "successes"] {
        assert_eq!(
            response["stats"][key], expected["stats"][key],
            "{name}: stats.{key} in {response}"
        );
    }
    let s = &response["stats"];
    assert_eq!(
        s["received"].as_u64().unwrap(),
        s["successes"].as_u64().unwrap()
            + s["dropped"].as_u64().unwrap()
            + s["failed"].as_u64().unwrap(),
        "{name}: every record has one outcome: {response}"
    );
    if let Some(output) = expected.get("output") {
        assert_eq!(&response["output"], output, "{name}: output");
    }
}

#[tokio::test]
async fn the_fixture_table_passes_through_the_raw_source() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 27, "the whole table is there");
    for fixture in &fixtures {
        let name = fixture["name"].as_str().unwrap();
        let sink = MemorySink::new();
        let pipeline = builder_for(fixture)
            .record_outbound(sink.clone())
            .build()
            .expect("the conformance graph is valid");
        let event = fixture["payload"].to_string();
        let result = pipeline.handle(&event, lambda_context(0)).await;
        match fixture["error"].as_str() {
            Some(error_type) => {
                let err = result.expect_err(name);
                assert_eq!(err.error_type, error_type, "{name}");
                assert!(
                    err.error_message.contains("record 0"),
                    "{name}: {}",
                    err.error_message
                );
            }
            None => check(
                name,
                fixture,
                &result.unwrap_or_else(|e| panic!("{name}: {e}")),
            ),
        }
        // What the queue paths forward.
        let bodies: Vec<Value> = sink
            .messages()
            .iter()
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect();
        let sent: Vec<String> = sink
            .messages()
            .iter()
            .map(|m| m.queue.to_string())
            .collect();
        match name {
            "KINESIS_OUTPUT" => {
                assert_eq!(sent, ["kinesis:test-kinesis-stream (path TEST_FUNC)"]);
                assert_eq!(
                    bodies,
                    [serde_json::json!({"path": "TEST_FUNC", "kwargs": {"uri": "foo"}})]
                );
            }
            "SQS_OUTPUT" => {
                assert_eq!(sent, ["sqs:test-sqs-queue (path TEST_FUNC)"]);
                assert_eq!(
                    bodies,
                    [serde_json::json!({"path": "TEST_FUNC", "kwargs": {"uri": "foo"}})]
                );
            }
            "SQS_OUTPUT_NO_PATH" => assert_eq!(bodies, [serde_json::json!({"uri": "foo"})]),
            "MULTI_TRIGGER_PATH" => {
                assert_eq!(
                    bodies,
                    [serde_json::json!({"path": "TEST_FUNC", "kwargs": {"foo": "bar"}})]
                )
            }
            _ => assert!(bodies.is_empty(), "{name} sends nothing: {bodies:?}"),
        }
    }
}

#[tokio::test]
async fn the_single_function_form_calls_test_func() {
    let pipeline = conformance::call_pipeline().build().unwrap();
    let response = pipeline
        .handle(r#"[{"foo": "bar"}]"#, lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["received"], 1);
    assert_eq!(response["stats"]["successes"], 1);
}

fn run_binary(args: &[&str], event: &str) -> (i32, Value, String) {
    let dir = std::env::temp_dir().join(format!("lpipe-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("event-{}.json", fastrand_name(event)));
    std::fs::write(&file, event).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(args)
        .arg(&file)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("the conformance binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let json: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}): {stdout}"));
    (
        output.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

fn fastrand_name(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

#[test]
fn the_conformance_binary_gives_lpipes_stats_for_every_fixture() {
    for fixture in fixtures() {
        let name = fixture["name"].as_str().unwrap();
        let mut args = Vec::new();
        if let Some(p) = fixture["default_path"].as_str() {
            args.extend(["--default-path", p]);
        }
        let (code, json, stderr) = run_binary(&args, &fixture["payload"].to_string());
        match fixture["error"].as_str() {
            Some(error_type) => {
                assert_eq!(code, 1, "{name}: an invocation error exits non-zero");
                assert_eq!(json["errorType"], error_type, "{name}: {json}");
                assert!(
                    json["errorMessage"].as_str().unwrap().contains("record 0"),
                    "{name}: {json}"
                );
            }
            None => {
                assert_eq!(code, 0, "{name}: {stderr}");
                check(name, &fixture, &json);
            }
        }
        if name == "SQS_OUTPUT" {
            assert!(stderr.contains("recorded, not sent"), "{stderr}");
            assert!(stderr.contains(r#"sqs:test-sqs-queue (path TEST_FUNC): {"path":"TEST_FUNC","kwargs":{"uri":"foo"}}"#), "{stderr}");
        }
    }
}

#[test]
fn the_conformance_binary_has_the_call_form_and_rejects_bad_arguments() {
    let (code, json, _) = run_binary(&["--call"], r#"[{"foo": "bar"}]"#);
    assert_eq!(code, 0);
    assert_eq!(json["stats"]["successes"], 1);
    let output = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(["--default-path", "NOT_A_PATH", "/dev/null"])
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("the default path NOT_A_PATH is not declared"));
}
