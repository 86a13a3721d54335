//! `lpipe up` against moto. The graph pair: two signups sent to the entry queue with `lpipe
//! send`, one with a bad email; the good one reaches the mailer (its log line seen, prefixed with
//! its name), the bad one is on the signup Lambda's dead-letter queue; Ctrl-C stops everything
//! and `lpipe up` exits 0. The orders pair likewise, through the Kinesis stream poller. The
//! fan-out pair through a topic, and the consumer's bucket through the bridge. Needs the
//! moto_server the test command starts, and the examples' binaries beside this crate's (see
//! tests/check.rs).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lpipe_core::testing::moto_endpoint;

mod common;
use common::{bin_dir, moto_config, scratch};

const SYSTEM: &str = r#"
[lambdas.graph]
binary = "graph"
[[lambdas.graph.triggers]]
sqs = "lpipe-graph-signups"
paths = ["SIGNUP"]
max_receive_count = 5
dead_letter_queue = "lpipe-graph-signups-dlq"

[lambdas.graph-mailer]
binary = "graph-mailer"
[[lambdas.graph-mailer.triggers]]
sqs = "lpipe-graph-mailer"
max_receive_count = 5
dead_letter_queue = "lpipe-graph-mailer-dlq"

[external]
queues = ["sqs:lpipe-graph-signup-dropped"]
"#;

/// A system file in a scratch folder, and a prefix of the test's own for its names in moto.
fn system(tag: &str, toml: &str) -> (PathBuf, PathBuf, String) {
    let dir = scratch(&format!("up-{tag}"));
    let file = dir.join("lpipe.toml");
    std::fs::write(&file, toml).unwrap();
    (dir, file, format!("{tag}{}-", std::process::id()))
}

/// `lpipe send QUEUE` of `messages` (JSON) to the system `lpipe up` runs.
fn send(system: &Path, prefix: &str, endpoint: &str, queue: &str, messages: &str) {
    let file = system.with_file_name(format!("{}.json", queue.replace(':', "-")));
    std::fs::write(&file, messages).unwrap();
    let sent = Command::new(env!("CARGO_BIN_EXE_lpipe"))
        .args(["-f", system.to_str().unwrap(), "send", "--prefix", prefix])
        .args([queue, file.to_str().unwrap()])
        .env("AWS_ENDPOINT_URL", endpoint)
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
}

fn wait_for(
    up: &mut std::process::Child,
    lines: &Arc<Mutex<Vec<String>>>,
    what: &str,
    needle: impl Fn(&str) -> bool,
) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if lines.lock().unwrap().iter().any(|l| needle(l)) {
            return;
        }
        if let Some(status) = up.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(200));
            panic!(
                "lpipe up exited ({status}) before the {what}:\n{}",
                lines.lock().unwrap().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "no {what} within a minute; lpipe up printed:\n{}",
        lines.lock().unwrap().join("\n")
    );
}

/// Starts `lpipe up` on a system file; its output lines, gathered as they come.
fn start(
    system: &Path,
    prefix: &str,
    endpoint: &str,
) -> (std::process::Child, Arc<Mutex<Vec<String>>>) {
    let mut up = Command::new(env!("CARGO_BIN_EXE_lpipe"))
        .args(["-f", system.to_str().unwrap(), "--bin-dir"])
        .arg(bin_dir())
        .args(["up", "--prefix", prefix, "--grace-seconds", "2"])
        .env("AWS_ENDPOINT_URL", endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        Box::new(up.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(up.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }
    (up, lines)
}

/// Ctrl-C: everything stops, and `lpipe up` exits 0.
fn stop(mut up: std::process::Child, lines: &Arc<Mutex<Vec<String>>>) {
    let _ = Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = up.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = up.kill();
            panic!("lpipe up did not stop within 30 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "{status}:\n{}",
        lines.lock().unwrap().join("\n")
    );
}

#[test]
#[ignore = "needs moto_server: run ./scripts/test, which starts one"]
fn up_runs_the_graph_pair_and_stops_on_ctrl_c() {
    let endpoint = moto_endpoint("up_runs_the_graph_pair_and_stops_on_ctrl_c");
    let (dir, system, prefix) = system("ug", SYSTEM);

    let (mut up, lines) = start(&system, &prefix, &endpoint);
    wait_for(&mut up, &lines, "start", |l| {
        l.contains("2 workers, 0 stream pollers and 0 bridges running")
    });

    send(
        &system,
        &prefix,
        &endpoint,
        "sqs:lpipe-graph-signups",
        r#"[{"path": "SIGNUP", "kwargs": {"name": "Ann", "email": "ann@example.com"}},
            {"path": "SIGNUP", "kwargs": {"name": "Bob", "email": "bob-at-example.com"}}]"#,
    );

    // Ann reaches the mailer.
    wait_for(&mut up, &lines, "welcome mail", |l| {
        l.starts_with("[graph-mailer]")
            && l.contains("sending welcome email")
            && l.contains("ann@example.com")
    });
    // Bob is on the signup Lambda's dead-letter queue.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let letters = rt.block_on(async {
        let sqs = aws_sdk_sqs::Client::new(&moto_config(&endpoint).await);
        let url = sqs
            .get_queue_url()
            .queue_name(format!("{prefix}lpipe-graph-signup-dropped"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let mut bodies = Vec::new();
        for _ in 0..20 {
            let got = sqs
                .receive_message()
                .queue_url(&url)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            bodies.extend(got.into_iter().filter_map(|m| m.body));
            if !bodies.is_empty() {
                break;
            }
        }
        bodies
    });
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].contains("bob-at-example.com"), "{letters:?}");

    // Ctrl-C stops everything; lpipe up exits 0.
    stop(up, &lines);
    let _ = std::fs::remove_dir_all(&dir);
}

const ORDERS: &str = r#"
[lambdas.orders-intake]
binary = "orders-intake"
[[lambdas.orders-intake.triggers]]
sqs = "lpipe-orders-intake"
paths = ["ORDER"]
max_receive_count = 5
dead_letter_queue = "lpipe-orders-intake-dlq"

[lambdas.orders-store]
binary = "orders-store"
[[lambdas.orders-store.triggers]]
kinesis = "lpipe-orders-enriched"
batch_size = 100

[external]
queues = ["sqs:lpipe-orders-notify.fifo"]
"#;

#[test]
#[ignore = "needs moto_server: run ./scripts/test, which starts one"]
fn up_runs_the_orders_pair_through_the_stream_poller() {
    let endpoint = moto_endpoint("up_runs_the_orders_pair_through_the_stream_poller");
    let (dir, system, prefix) = system("uo", ORDERS);

    let (mut up, lines) = start(&system, &prefix, &endpoint);
    wait_for(&mut up, &lines, "start", |l| {
        l.contains("1 workers, 1 stream pollers and 0 bridges running")
    });
    send(
        &system,
        &prefix,
        &endpoint,
        "sqs:lpipe-orders-intake",
        r#"{"path": "ORDER", "kwargs": {"order_id": "o-77", "customer_id": "c-1",
            "items": [{"sku": "tea", "qty": 2, "unit_price_cents": 450}]}}"#,
    );
    // Priced by the intake, through the stream, stored by the store.
    wait_for(&mut up, &lines, "stored order", |l| {
        l.starts_with("[orders-store]")
            && l.contains("stored order")
            && l.contains("o-77")
            && l.contains("total_cents=900")
    });
    stop(up, &lines);
    let _ = std::fs::remove_dir_all(&dir);
}

const FANOUT: &str = r#"
[lambdas.fanout-publisher]
binary = "fanout-publisher"
[[lambdas.fanout-publisher.triggers]]
sqs = "lpipe-fanout-intake"
paths = ["PUBLISH_ORDER"]
max_receive_count = 5
dead_letter_queue = "lpipe-fanout-intake-dlq"

[lambdas.fanout-consumer]
binary = "fanout-consumer"
idempotency_table = { name = "lpipe-fanout-idempotency", env = "FANOUT_IDEMPOTENCY_TABLE" }
[[lambdas.fanout-consumer.triggers]]
sqs = "lpipe-fanout-consumer"
subscribed_to = "sns:lpipe-fanout-orders"
max_receive_count = 5
dead_letter_queue = "lpipe-fanout-consumer-dlq"
[[lambdas.fanout-consumer.triggers]]
s3 = "lpipe-fanout-receipts"
"#;

#[test]
#[ignore = "needs moto_server: run ./scripts/test, which starts one"]
fn up_runs_the_fanout_pair_through_the_topic_and_the_bucket() {
    let endpoint = moto_endpoint("up_runs_the_fanout_pair_through_the_topic_and_the_bucket");
    let (dir, system, prefix) = system("uf", FANOUT);

    let (mut up, lines) = start(&system, &prefix, &endpoint);
    wait_for(&mut up, &lines, "start", |l| {
        l.contains("2 workers, 0 stream pollers and 1 bridges running")
    });
    // An order through the publisher, the topic and the consumer's subscribed queue.
    send(
        &system,
        &prefix,
        &endpoint,
        "sqs:lpipe-fanout-intake",
        r#"{"path": "PUBLISH_ORDER", "kwargs": {"order_id": "o-31", "total_cents": 1200}}"#,
    );
    wait_for(&mut up, &lines, "recorded order", |l| {
        l.starts_with("[fanout-consumer]") && l.contains("recording order") && l.contains("o-31")
    });
    // A receipt put in the bucket: its notification invokes the consumer through the bridge.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let items = rt.block_on(async {
        let config = moto_config(&endpoint).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        s3.put_object()
            .bucket(format!("{prefix}lpipe-fanout-receipts"))
            .key("receipts/r-9.txt")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"paid"))
            .send()
            .await
            .unwrap();
        // The consumer's keys are in the table lpipe up made and named to it.
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        dynamodb
            .scan()
            .table_name(format!("{prefix}lpipe-fanout-idempotency"))
            .send()
            .await
            .unwrap()
            .count()
    });
    assert!(items >= 1, "no idempotency key in the table");
    wait_for(&mut up, &lines, "filed receipt", |l| {
        l.starts_with("[fanout-consumer]")
            && l.contains("filing receipt")
            && l.contains("receipts/r-9.txt")
    });
    stop(up, &lines);
    let _ = std::fs::remove_dir_all(&dir);
}

const TABLE: &str = r#"
[lambdas.orders]
binary = "orders"
[[lambdas.orders.triggers]]
dynamodb = "lpipe-orders-table"
table_key = "order_id"
batch_size = 10

[external]
queues = ["sqs:lpipe-orders-out"]
"#;

#[test]
#[ignore = "needs moto_server: run ./scripts/test, which starts one"]
fn up_runs_a_table_s_lambda_through_the_dynamodb_streams_poller() {
    let endpoint = moto_endpoint("up_runs_a_table_s_lambda_through_the_dynamodb_streams_poller");
    let (dir, system, prefix) = system("ut", TABLE);

    let (mut up, lines) = start(&system, &prefix, &endpoint);
    wait_for(&mut up, &lines, "start", |l| {
        l.contains("0 workers, 1 stream pollers and 0 bridges running")
    });
    // An order inserted in the table lpipe up made: its stream's INSERT runs PLACE_ORDER.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use aws_sdk_dynamodb::types::AttributeValue;
        let config = moto_config(&endpoint).await;
        aws_sdk_dynamodb::Client::new(&config)
            .put_item()
            .table_name(format!("{prefix}lpipe-orders-table"))
            .item("order_id", AttributeValue::S("o-5".into()))
            .item("item", AttributeValue::S("tea".into()))
            .item("quantity", AttributeValue::N("2".into()))
            .send()
            .await
            .unwrap();
    });
    wait_for(&mut up, &lines, "placed order", |l| {
        l.starts_with("[orders]") && l.contains("order placed") && l.contains("o-5")
    });
    stop(up, &lines);
    let _ = std::fs::remove_dir_all(&dir);
}
