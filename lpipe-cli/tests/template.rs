//! `lpipe template` on the examples' system (examples/lpipe.toml): what each IAM role allows,
//! compared with what each Lambda calls; the template checked by AWS's `cfn-lint`, translated
//! by AWS's `aws-sam-translator`, created as a stack in moto's CloudFormation and read back;
//! and `lpipe check --deployed` on that stack and on a mapping and queue set up wrong.
//!
//! The Python tools come from the test command's `.venv` (`LPIPE_PYTHON`), moto from its
//! `moto_server` (`LPIPE_MOTO_ENDPOINT`): run ./scripts/test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use lpipe_core::testing::moto_endpoint;
use serde_json::{json, Value};

mod common;
use common::{bin_dir, describe, described_system, examples_system, moto_config, scratch, text};

/// `lpipe -f SYSTEM --bin-dir … template --prefix PREFIX -o FILE`; the file's path.
fn template_file(system: &Path, prefix: &str, dir: &Path) -> PathBuf {
    let file = dir.join("template.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_lpipe"))
        .args(["-f", system.to_str().unwrap(), "--bin-dir"])
        .arg(bin_dir())
        .args(["template", "--prefix", prefix, "-o", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    file
}

fn python() -> String {
    std::env::var("LPIPE_PYTHON").unwrap_or_else(|_| {
        panic!("LPIPE_PYTHON is not set: run ./scripts/test, which installs cfn-lint and aws-sam-translator into .venv and sets it")
    })
}

fn script(name: &str) -> String {
    format!("{}/tests/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The template translated to plain CloudFormation by aws-sam-translator.
fn translate(template: &Path, dir: &Path) -> (PathBuf, Value) {
    let out_file = dir.join("template.json");
    let out = Command::new(python())
        .arg(script("sam_translate.py"))
        .arg(template)
        .arg(&out_file)
        .arg("lpipe-code")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "aws-sam-translator: {}", text(&out));
    let translated = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    (out_file, translated)
}

/// Each role's statements as (action, resource) pairs, the resource as `Ref:ID`, `GetAtt:ID`
/// or `Sub:TEXT`.
fn grants(template: &Value) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut out = BTreeMap::new();
    for (id, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::IAM::Role" {
            continue;
        }
        let policies = resource["Properties"]["Policies"].as_array().unwrap();
        assert_eq!(policies.len(), 1, "{id}: one policy");
        let mut pairs = BTreeSet::new();
        for statement in policies[0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
        {
            assert_eq!(statement["Effect"], "Allow", "{id}: {statement}");
            let r = &statement["Resource"];
            let resource = if let Some(id) = r["Ref"].as_str() {
                format!("Ref:{id}")
            } else if let Some(att) = r["Fn::GetAtt"].as_array() {
                assert_eq!(att[1], "Arn", "{id}: {statement}");
                format!("GetAtt:{}", att[0].as_str().unwrap())
            } else if let Some(sub) = r["Fn::Sub"].as_str() {
                format!("Sub:{sub}")
            } else {
                panic!("{id}: a resource that is not the ARN of something named: {statement}");
            };
            for action in statement["Action"].as_array().unwrap() {
                pairs.insert((action.as_str().unwrap().to_owned(), resource.clone()));
            }
        }
        out.insert(id.clone(), pairs);
    }
    out
}

fn pairs(list: &[(&[&str], &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .flat_map(|(actions, resource)| {
            actions
                .iter()
                .map(move |a| ((*a).to_owned(), (*resource).to_owned()))
        })
        .collect()
}

const LOGS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];
/// What Lambda's SQS mapping calls with the function's role.
const SQS_MAPPING: &[&str] = &[
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

/// What each example Lambda calls, read from its code and description (not from the
/// template): its mapping's calls on its trigger, its sinks' and stores' calls, its logs.
fn expected_grants() -> BTreeMap<&'static str, BTreeSet<(String, String)>> {
    BTreeMap::from([
        (
            "GraphRole",
            pairs(&[
                (LOGS, "GetAtt:GraphLogGroup"),
                (SQS_MAPPING, "GetAtt:LpipeGraphSignupsQueue"),
                // Forwards SEND_WELCOME to the mailer's queue (given its URL).
                (&["sqs:SendMessage"], "GetAtt:LpipeGraphMailerQueue"),
                // Its dead-letter queue is outside the system: given an ARN, the sink looks
                // its URL up.
                (
                    &["sqs:SendMessage", "sqs:GetQueueUrl"],
                    "Ref:LpipeGraphSignupDroppedQueueArn",
                ),
            ]),
        ),
        (
            "GraphMailerRole",
            pairs(&[
                (LOGS, "GetAtt:GraphMailerLogGroup"),
                (SQS_MAPPING, "GetAtt:LpipeGraphMailerQueue"),
            ]),
        ),
        (
            "OrdersIntakeRole",
            pairs(&[
                (LOGS, "GetAtt:OrdersIntakeLogGroup"),
                (SQS_MAPPING, "GetAtt:LpipeOrdersIntakeQueue"),
                (&["kinesis:PutRecords"], "GetAtt:LpipeOrdersEnrichedStream"),
                (
                    &["sqs:SendMessage", "sqs:GetQueueUrl"],
                    "Ref:LpipeOrdersNotifyFifoQueueArn",
                ),
            ]),
        ),
        (
            "OrdersStoreRole",
            pairs(&[
                (LOGS, "GetAtt:OrdersStoreLogGroup"),
                // Lambda's Kinesis mapping, with the function's role.
                (
                    &[
                        "kinesis:DescribeStream",
                        "kinesis:DescribeStreamSummary",
                        "kinesis:GetRecords",
                        "kinesis:GetShardIterator",
                        "kinesis:ListShards",
                        "kinesis:SubscribeToShard",
                    ],
                    "GetAtt:LpipeOrdersEnrichedStream",
                ),
                // …and its on-failure destination.
                (
                    &["sqs:SendMessage"],
                    "GetAtt:LpipeOrdersEnrichedOrdersStoreFailuresQueue",
                ),
            ]),
        ),
        (
            "FanoutPublisherRole",
            pairs(&[
                (LOGS, "GetAtt:FanoutPublisherLogGroup"),
                (SQS_MAPPING, "GetAtt:LpipeFanoutIntakeQueue"),
                // PublishBatch is authorized as sns:Publish; the topic is given by ARN.
                (&["sns:Publish"], "Ref:LpipeFanoutOrdersTopic"),
            ]),
        ),
        (
            "FanoutConsumerRole",
            pairs(&[
                (LOGS, "GetAtt:FanoutConsumerLogGroup"),
                (SQS_MAPPING, "GetAtt:LpipeFanoutConsumerQueue"),
                // Its idempotency store (the bucket's notifications need no permission of
                // the function's).
                (
                    &[
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:DeleteItem",
                    ],
                    "GetAtt:LpipeFanoutIdempotencyTable",
                ),
                // Where Lambda sends a bucket's event it gave up on (asynchronous invocation).
                (
                    &["sqs:SendMessage"],
                    "GetAtt:FanoutConsumerAsyncFailuresQueue",
                ),
            ]),
        ),
    ])
}

#[test]
fn every_role_allows_exactly_what_its_lambda_calls() {
    let dir = scratch("roles");
    let file = template_file(&examples_system(), "", &dir);
    let template: Value = serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let found = grants(&template);
    let expected = expected_grants();
    assert_eq!(
        found.keys().map(String::as_str).collect::<Vec<_>>(),
        expected.keys().copied().collect::<Vec<_>>()
    );
    for (role, wanted) in &expected {
        let has = &found[*role];
        let missing: Vec<_> = wanted.difference(has).collect();
        let extra: Vec<_> = has.difference(wanted).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{role}: missing {missing:?}, allowed beyond what it calls {extra:?}"
        );
    }
    // Each function runs with its own role, and each variable the code reads its targets from
    // names what the template made for it.
    let function = &template["Resources"]["GraphFunction"]["Properties"];
    assert_eq!(
        function["Role"],
        json!({"Fn::GetAtt": ["GraphRole", "Arn"]})
    );
    assert_eq!(
        function["Environment"]["Variables"],
        json!({
            "GRAPH_MAILER_QUEUE": {"Ref": "LpipeGraphMailerQueue"},
            "GRAPH_DROPPED_QUEUE": {"Ref": "LpipeGraphSignupDroppedQueueArn"},
        })
    );
    let consumer = &template["Resources"]["FanoutConsumerFunction"]["Properties"];
    assert_eq!(
        consumer["Environment"]["Variables"]["FANOUT_IDEMPOTENCY_TABLE"],
        json!({"Ref": "LpipeFanoutIdempotencyTable"})
    );
}

#[test]
fn the_template_says_what_the_system_file_says() {
    let dir = scratch("settings");
    let file = template_file(&examples_system(), "", &dir);
    let template: Value = serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let r = &template["Resources"];
    // Redrive as the trigger says; visibility six times the function's timeout (30 s).
    let signups = &r["LpipeGraphSignupsQueue"]["Properties"];
    assert_eq!(signups["VisibilityTimeout"], 180);
    assert_eq!(
        signups["RedrivePolicy"],
        json!({"deadLetterTargetArn": {"Fn::GetAtt": ["LpipeGraphSignupsDlqQueue", "Arn"]}, "maxReceiveCount": 5})
    );
    // Mappings answer with partial batch responses; the stream's bisects, retries 10 times
    // (the system file) and sends what it gives up on to a queue.
    let graph_events = &r["GraphFunction"]["Properties"]["Events"];
    assert_eq!(
        graph_events["LpipeGraphSignupsQueue"]["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let stream = &r["OrdersStoreFunction"]["Properties"]["Events"]["LpipeOrdersEnrichedStream"];
    assert_eq!(stream["Type"], "Kinesis");
    let p = &stream["Properties"];
    assert_eq!(
        p["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(p["BisectBatchOnFunctionError"], true);
    assert_eq!(p["MaximumRetryAttempts"], 10);
    assert_eq!(p["BatchSize"], 100);
    assert_eq!(
        p["DestinationConfig"]["OnFailure"]["Destination"],
        json!({"Fn::GetAtt": ["LpipeOrdersEnrichedOrdersStoreFailuresQueue", "Arn"]})
    );
    // The topic's subscription, and the queue policy that lets the topic deliver.
    let subscription = &r["LpipeFanoutConsumerQueueSubscription"]["Properties"];
    assert_eq!(subscription["Protocol"], "sqs");
    assert_eq!(
        subscription["TopicArn"],
        json!({"Ref": "LpipeFanoutOrdersTopic"})
    );
    let policy =
        &r["LpipeFanoutConsumerQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(
        policy["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!({"Ref": "LpipeFanoutOrdersTopic"})
    );
    // The idempotency table: `id`, TTL on `expiration`, on demand.
    let table = &r["LpipeFanoutIdempotencyTable"]["Properties"];
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "id", "KeyType": "HASH"}])
    );
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({"AttributeName": "expiration", "Enabled": true})
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    // The consumer, which the bucket invokes: two retries, then to a queue.
    assert_eq!(
        r["FanoutConsumerFunction"]["Properties"]["EventInvokeConfig"],
        json!({"MaximumRetryAttempts": 2, "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["FanoutConsumerAsyncFailuresQueue", "Arn"]}}}})
    );
    assert!(r["GraphFunction"]["Properties"]
        .get("EventInvokeConfig")
        .is_none());
    // Functions from cargo lambda's output.
    let f = &r["GraphMailerFunction"]["Properties"];
    assert_eq!(f["CodeUri"], "target/lambda/graph-mailer/");
    assert_eq!(f["Runtime"], "provided.al2023");
    assert_eq!(f["Architectures"], json!(["arm64"]));
}

#[test]
fn the_system_file_sets_any_property_of_the_template() {
    let dir = scratch("set");
    let system = std::fs::read_to_string(examples_system()).unwrap()
        + "\n[template.set]\n\"Resources.GraphFunction.Properties.MemorySize\" = 1024\n\"Resources.GraphFunction.Properties.Tracing\" = \"Active\"\n";
    let system = system.replace("package = \"lpipe-examples\"\n", "");
    let file = dir.join("lpipe.toml");
    std::fs::write(&file, system).unwrap();
    let template = template_file(&file, "", &dir);
    let template: Value =
        serde_norway::from_str(&std::fs::read_to_string(&template).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let f = &template["Resources"]["GraphFunction"]["Properties"];
    assert_eq!(f["MemorySize"], 1024);
    assert_eq!(f["Tracing"], "Active");
}

#[test]
#[ignore = "needs the test command's Python with cfn-lint and aws-sam-translator (LPIPE_PYTHON): run ./scripts/test"]
fn the_template_passes_cfn_lint_and_translates_to_cloudformation() {
    let dir = scratch("lint");
    let file = template_file(&examples_system(), "", &dir);
    // The cfn-lint command beside the test command's Python.
    let cfn_lint = Path::new(&python()).with_file_name("cfn-lint");
    let out = Command::new(&cfn_lint)
        .arg("--")
        .arg(&file)
        .output()
        .unwrap();
    // cfn-lint exits 0 when it finds nothing (2: errors, 4: warnings, 8: notes).
    assert!(out.status.success(), "cfn-lint: {}", text(&out));
    // A queue fed by a bus's rule, too.
    let bus_dir = scratch("lint-bus");
    let bus_template = template_file(&bus_system(&bus_dir), "", &bus_dir);
    let out = Command::new(&cfn_lint)
        .arg("--")
        .arg(&bus_template)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&bus_dir);
    assert!(out.status.success(), "cfn-lint: {}", text(&out));
    let (_, translated) = translate(&file, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let types: BTreeMap<&str, usize> =
        translated["Resources"]
            .as_object()
            .unwrap()
            .values()
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r["Type"].as_str().unwrap()).or_default() += 1;
                m
            });
    assert!(
        !types.keys().any(|t| t.starts_with("AWS::Serverless::")),
        "{types:?}"
    );
    assert_eq!(types["AWS::Lambda::Function"], 6, "{types:?}");
    // One mapping per queue or stream trigger, every one answering partially.
    assert_eq!(types["AWS::Lambda::EventSourceMapping"], 6, "{types:?}");
    for (id, r) in translated["Resources"].as_object().unwrap() {
        if r["Type"] == "AWS::Lambda::EventSourceMapping" {
            assert_eq!(
                r["Properties"]["FunctionResponseTypes"],
                json!(["ReportBatchItemFailures"]),
                "{id}"
            );
        }
    }
    // The bucket's notification invokes the consumer: SAM adds the permission.
    assert_eq!(types["AWS::Lambda::Permission"], 1, "{types:?}");
}

/// The graph pair with the mailer's queue FIFO (and its dead-letter queue), as description
/// files, for a template with a FIFO queue.
fn fifo_graph_system(dir: &Path) -> PathBuf {
    let mut graph = describe("graph");
    let forward = graph["paths"][0]["actions"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap();
    forward["queues"][0]["target"] = json!("lpipe-graph-mailer.fifo");
    forward["queues"][0]["options"] = json!({"message_group_id_from": "address"});
    std::fs::write(dir.join("graph.json"), graph.to_string()).unwrap();
    std::fs::write(
        dir.join("graph-mailer.json"),
        describe("graph-mailer").to_string(),
    )
    .unwrap();
    let system = r#"
[lambdas.graph]
description = "graph.json"
[[lambdas.graph.triggers]]
sqs = "lpipe-graph-signups"
paths = ["SIGNUP"]
max_receive_count = 5
dead_letter_queue = "lpipe-graph-signups-dlq"

[lambdas.graph-mailer]
description = "graph-mailer.json"
timeout = 20
[[lambdas.graph-mailer.triggers]]
sqs = "lpipe-graph-mailer.fifo"
window_seconds = 2
max_receive_count = 3
dead_letter_queue = "lpipe-graph-mailer-dlq.fifo"

[external]
queues = ["sqs:lpipe-graph-signup-dropped"]
"#;
    let file = dir.join("lpipe.toml");
    std::fs::write(&file, system).unwrap();
    file
}

/// Creates the translated template as a stack in moto; what moto made (moto_stack.py).
fn create_stack(endpoint: &str, translated: &Path, stack: &str) -> Value {
    let out = Command::new(python())
        .arg(script("moto_stack.py"))
        .args([endpoint, translated.to_str().unwrap(), stack])
        .output()
        .unwrap();
    assert!(out.status.success(), "moto_stack.py: {}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "CREATE_COMPLETE", "{report:#}");
    report
}

fn check_deployed(endpoint: &str, system: &Path, prefix: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lpipe"))
        .args(["-f", system.to_str().unwrap(), "--bin-dir"])
        .arg(bin_dir())
        .args(["check", "--deployed", "--prefix", prefix])
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    (out.status.success(), text(&out))
}

#[test]
#[ignore = "needs moto_server and the test command's Python (aws-sam-translator, boto3): run ./scripts/test"]
fn the_stack_creates_in_moto_and_checks_clean_when_deployed() {
    let endpoint = moto_endpoint("the_stack_creates_in_moto_and_checks_clean_when_deployed");
    let dir = scratch("stack");
    let prefix = format!("t{}-", std::process::id());
    let file = template_file(&examples_system(), &prefix, &dir);
    let (translated, _) = translate(&file, &dir);
    let report = create_stack(&endpoint, &translated, &format!("{prefix}examples"));
    // What moto's CloudFormation does not make (the test applies the invoke configuration
    // through the Lambda API, as CloudFormation would; see moto_stack.py).
    assert_eq!(
        report["not_made"],
        json!([
            "AWS::Lambda::EventInvokeConfig",
            "AWS::SNS::Subscription",
            "AWS::SQS::QueuePolicy"
        ]),
        "{report:#}"
    );
    assert_eq!(report["applied"].as_array().unwrap().len(), 1, "{report:#}");
    let queue = |name: &str| report["queues"][format!("{prefix}{name}")].clone();
    let signups = queue("lpipe-graph-signups");
    assert_eq!(signups["VisibilityTimeout"], "180", "{report:#}");
    let redrive: Value = serde_json::from_str(signups["RedrivePolicy"].as_str().unwrap()).unwrap();
    assert_eq!(redrive["maxReceiveCount"], 5);
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{prefix}lpipe-graph-signups-dlq")),
        "{redrive}"
    );
    // The table, with its key. Moto's CloudFormation does not apply a table's
    // TimeToLiveSpecification (it reports DISABLED), so the TTL is checked in the template
    // (the_template_says_what_the_system_file_says), not here.
    assert!(
        report["tables"][format!("{prefix}lpipe-fanout-idempotency")].is_object(),
        "{report:#}"
    );
    // The stream's mapping as the template says.
    let stream_mapping = report["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["EventSourceArn"].as_str().unwrap().contains(":stream/"))
        .unwrap();
    assert_eq!(stream_mapping["BisectBatchOnFunctionError"], true);
    assert_eq!(stream_mapping["MaximumRetryAttempts"], 10);
    // Deployed as generated, it checks clean.
    let (ok, out) = check_deployed(&endpoint, &examples_system(), &prefix);
    assert!(ok, "{out}");
    assert!(out.contains("6 lambdas: 0 errors, 0 warnings"), "{out}");

    // A FIFO queue: its attributes, its FIFO dead-letter queue, its visibility from the
    // mailer's timeout (20 s) and window (2 s).
    let fifo_dir = scratch("fifo");
    let system = fifo_graph_system(&fifo_dir);
    let fifo_prefix = format!("f{}-", std::process::id());
    let file = template_file(&system, &fifo_prefix, &fifo_dir);
    let (translated, _) = translate(&file, &fifo_dir);
    let report = create_stack(&endpoint, &translated, &format!("{fifo_prefix}fifo"));
    let mailer = &report["queues"][format!("{fifo_prefix}lpipe-graph-mailer.fifo")];
    assert_eq!(mailer["FifoQueue"], "true", "{report:#}");
    assert_eq!(mailer["VisibilityTimeout"], "122", "{report:#}");
    let dlq = &report["queues"][format!("{fifo_prefix}lpipe-graph-mailer-dlq.fifo")];
    assert_eq!(dlq["FifoQueue"], "true", "{report:#}");
    let (ok, out) = check_deployed(&endpoint, &system, &fifo_prefix);
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&fifo_dir);
}

/// A zip holding an empty `bootstrap`: code for a function moto creates and never runs.
fn code_zip() -> Vec<u8> {
    let out = Command::new(python())
        .args([
            "-c",
            "import io, sys, zipfile\nb = io.BytesIO()\nwith zipfile.ZipFile(b, 'w') as z: z.writestr('bootstrap', '')\nsys.stdout.buffer.write(b.getvalue())",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    out.stdout
}

/// A function in moto (timeout 30 s) that is never run: a role it can assume (made with boto3:
/// the crate has no IAM client), and an empty `bootstrap`.
async fn create_function(endpoint: &str, config: &aws_config::SdkConfig, name: &str) {
    let out = Command::new(python())
        .args([
            "-c",
            "import boto3, json, sys\niam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\ntrust = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Principal': {'Service': 'lambda.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]}\nprint(iam.create_role(RoleName=sys.argv[2], AssumeRolePolicyDocument=json.dumps(trust))['Role']['Arn'])",
            endpoint,
            &format!("{name}-role"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let role = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    aws_sdk_lambda::Client::new(config)
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .role(role)
        .handler("bootstrap")
        .timeout(30)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(code_zip()))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[test]
#[ignore = "needs moto_server and the test command's Python: run ./scripts/test"]
fn check_deployed_names_a_mapping_without_partial_responses_and_a_short_visibility_timeout() {
    let endpoint = moto_endpoint(
        "check_deployed_names_a_mapping_without_partial_responses_and_a_short_visibility_timeout",
    );
    let prefix = format!("w{}-", std::process::id());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let config = moto_config(&endpoint).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let lambda = aws_sdk_lambda::Client::new(&config);
        // The mailer's queue by hand: a redrive policy, but the default 30 s visibility for a
        // function whose timeout is 30 s.
        sqs.create_queue()
            .queue_name(format!("{prefix}lpipe-graph-mailer-dlq"))
            .send()
            .await
            .unwrap();
        let dlq_arn = format!("arn:aws:sqs:us-east-1:123456789012:{prefix}lpipe-graph-mailer-dlq");
        sqs.create_queue()
            .queue_name(format!("{prefix}lpipe-graph-mailer"))
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}).to_string(),
            )
            .send()
            .await
            .unwrap();
        create_function(&endpoint, &config, &format!("{prefix}graph-mailer")).await;
        // The mapping without FunctionResponseTypes: partial failures retried as whole batches.
        lambda
            .create_event_source_mapping()
            .function_name(format!("{prefix}graph-mailer"))
            .event_source_arn(format!(
                "arn:aws:sqs:us-east-1:123456789012:{prefix}lpipe-graph-mailer"
            ))
            .batch_size(10)
            .send()
            .await
            .unwrap();
    });
    let dir = scratch("wrong");
    let system = described_system(
        &dir,
        &["graph-mailer"],
        r#"
[lambdas.graph-mailer]
description = "graph-mailer.json"
[[lambdas.graph-mailer.triggers]]
sqs = "lpipe-graph-mailer"
paths = ["SEND_WELCOME"]
max_receive_count = 5
dead_letter_queue = "lpipe-graph-mailer-dlq"
"#,
    );
    let (ok, out) = check_deployed(&endpoint, &system, &prefix);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!ok, "{out}");
    assert!(
        out.contains("error[no-report-batch-item-failures]: lambda graph-mailer, queue sqs:lpipe-graph-mailer: the mapping "),
        "{out}"
    );
    assert!(
        out.contains("--function-response-types ReportBatchItemFailures"),
        "{out}"
    );
    assert!(
        out.contains("error[short-visibility-timeout]: lambda graph-mailer, queue sqs:lpipe-graph-mailer: the queue's visibility timeout is 30 s, under the 180 s AWS advises"),
        "{out}"
    );
    assert!(out.contains("1 lambdas: 2 errors, 0 warnings"), "{out}");
}

#[test]
fn a_system_with_errors_gets_no_template() {
    let dir = scratch("broken");
    // Without [external], the orders notifier's queue is forwarded to and consumed by nobody.
    let system = std::fs::read_to_string(examples_system()).unwrap();
    let system = &system[..system.find("\n[external]\n").unwrap()];
    let file = dir.join("lpipe.toml");
    std::fs::write(&file, system).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lpipe"))
        .args(["-f", file.to_str().unwrap(), "--bin-dir"])
        .arg(bin_dir())
        .arg("template")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let text = text(&out);
    assert!(
        text.contains("error[unconsumed-queue]: lambda orders-intake, path ROUTE, queue sqs:lpipe-orders-notify.fifo"),
        "{text}"
    );
    assert!(
        text.contains("lpipe template: the system has errors (above): fix them first"),
        "{text}"
    );
}

/// The mailer alone, its queue fed by a rule on a bus of the system.
fn bus_system(dir: &Path) -> PathBuf {
    described_system(
        dir,
        &["graph-mailer"],
        r#"
[lambdas.graph-mailer]
description = "graph-mailer.json"
[[lambdas.graph-mailer.triggers]]
sqs = "lpipe-graph-mailer"
subscribed_to = "eventbridge:lpipe-signups"
pattern = { source = ["signups"], detail-type = ["SEND_WELCOME"] }
paths = ["SEND_WELCOME"]
max_receive_count = 5
dead_letter_queue = "lpipe-graph-mailer-dlq"
"#,
    )
}

#[test]
fn a_queue_fed_by_a_bus_gets_a_rule_and_a_policy_for_it() {
    let dir = scratch("bus");
    let template = template_file(&bus_system(&dir), "", &dir);
    let template: Value =
        serde_norway::from_str(&std::fs::read_to_string(&template).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let r = &template["Resources"];
    assert_eq!(r["LpipeSignupsBus"]["Type"], "AWS::Events::EventBus");
    let rule = &r["LpipeGraphMailerQueueRule"];
    assert_eq!(rule["Type"], "AWS::Events::Rule");
    assert_eq!(
        rule["Properties"]["EventBusName"],
        json!({"Ref": "LpipeSignupsBus"})
    );
    assert_eq!(
        rule["Properties"]["EventPattern"],
        json!({"source": ["signups"], "detail-type": ["SEND_WELCOME"]})
    );
    assert_eq!(
        rule["Properties"]["Targets"],
        json!([{"Arn": {"Fn::GetAtt": ["LpipeGraphMailerQueue", "Arn"]}, "Id": "queue"}])
    );
    let statement =
        &r["LpipeGraphMailerQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(
        statement["Principal"],
        json!({"Service": "events.amazonaws.com"})
    );
    assert_eq!(
        statement["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!({"Fn::GetAtt": ["LpipeGraphMailerQueueRule", "Arn"]})
    );
    assert!(r.get("LpipeGraphMailerQueueSubscription").is_none());
}

#[test]
#[ignore = "needs moto_server and the test command's Python: run ./scripts/test"]
fn check_deployed_names_an_asynchronously_invoked_function_without_an_on_failure_destination() {
    let endpoint = moto_endpoint(
        "check_deployed_names_an_asynchronously_invoked_function_without_an_on_failure_destination",
    );
    let prefix = format!("a{}-", std::process::id());
    let function = format!("{prefix}receipts");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        create_function(&endpoint, &moto_config(&endpoint).await, &function).await;
    });
    let dir = scratch("async");
    let system = described_system(
        &dir,
        &["fanout-consumer"],
        r#"
[lambdas.receipts]
description = "fanout-consumer.json"
[[lambdas.receipts.triggers]]
s3 = "lpipe-receipts"
paths = ["RECORD_ORDER"]
"#,
    );
    let (ok, out) = check_deployed(&endpoint, &system, &prefix);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("error[no-async-on-failure-destination]: lambda receipts, queue lambda:{function}: {function} is invoked asynchronously (by a topic, bucket or rule) and has no on-failure destination")),
        "{out}"
    );
    assert!(out.contains("1 lambdas: 1 errors, 0 warnings"), "{out}");
}

#[test]
fn settings_aws_would_refuse_are_named_before_deploying() {
    let dir = scratch("refused");
    let template = |trigger: &str| {
        let system = described_system(
            &dir,
            &["graph-mailer"],
            &format!("[lambdas.graph-mailer]\ndescription = \"graph-mailer.json\"\n[[lambdas.graph-mailer.triggers]]\npaths = [\"SEND_WELCOME\"]\nmax_receive_count = 5\n{trigger}\n"),
        );
        let out = Command::new(env!("CARGO_BIN_EXE_lpipe"))
            .args(["-f", system.to_str().unwrap(), "template"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}", text(&out));
        text(&out)
    };
    let out = template(
        "sqs = \"q.fifo\"\ndead_letter_queue = \"dlq.fifo\"\nbatch_size = 20\nwindow_seconds = 1",
    );
    assert!(out.contains("lambda 'graph-mailer', trigger sqs:q.fifo: a FIFO queue's mapping takes at most 10 messages a batch (batch_size = 20)"), "{out}");
    let out = template("sqs = \"q\"\ndead_letter_queue = \"dlq\"\nbatch_size = 20");
    assert!(out.contains("set window_seconds to 1 or more"), "{out}");
    let out = template("sqs = \"q.fifo\"\ndead_letter_queue = \"dlq\"");
    assert!(
        out.contains("the queue sqs:q.fifo and its dead_letter_queue dlq must both be FIFO queues"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_names_that_would_share_a_logical_id_are_refused() {
    let dir = scratch("collide");
    let system = described_system(
        &dir,
        &["graph-mailer"],
        "[lambdas.graph-mailer]\ndescription = \"graph-mailer.json\"\n[[lambdas.graph-mailer.triggers]]\nsqs = \"mail-in\"\npaths = [\"SEND_WELCOME\"]\nmax_receive_count = 5\ndead_letter_queue = \"mail_in\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_lpipe"))
        .args(["-f", system.to_str().unwrap(), "template"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(
            "sqs:mail-in and sqs:mail_in would share the logical id MailInQueue: rename one"
        ),
        "{}",
        text(&out)
    );
}
