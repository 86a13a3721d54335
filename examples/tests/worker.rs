//! The graph example's signup Lambda as an SQS worker (`graph worker --queue …`), against
//! moto_server behind a fault-injecting proxy this test owns (`scripts/fault_proxy.py`: it
//! throttles, fails with 5xx, fails entries of batch calls and drops connections, before and
//! after moto acts, on ReceiveMessage, DeleteMessageBatch and SendMessageBatch).
//!
//! Thousands of signups (`LPIPE_SOAK_SIGNUPS`, default 2,000) on queues with a redrive policy
//! (maxReceiveCount 2, visibility timeout 2 s): a tenth have a bad email (dropped, to the
//! signup Lambda's dead-letter queue), a tenth a store that is down (kept, until the queue's
//! redrive moves them to its DLQ), the rest succeed (a welcome message to the mailer queue).
//! Each worker gets SIGTERM in the middle (it finishes its batches and exits 0), and a second
//! worker finishes its queue. Nothing may be lost: every signup ends where its kind says;
//! duplicates (delivery is at least once) are counted and printed.
//!
//! The signups are spread over shards of at most [`SHARD`] (each its own source queue, DLQ,
//! mailer and dead-letter queue, and its own worker): moto's SQS slows down with the length of
//! a queue (draining 2,000 messages from one queue took 24 times as long as 500), not with
//! the number of queues.

use std::collections::{BTreeMap, HashMap};
use std::io::BufReader;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use lpipe::testing::{moto_endpoint, unique_name};
use lpipe_aws::testing::FaultProxy;
use serde_json::{json, Value};

fn signups() -> usize {
    std::env::var("LPIPE_SOAK_SIGNUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// The most signups one shard (one source queue and its worker) takes.
const SHARD: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Good,
    BadEmail,
    StoreDown,
}

fn kind_of(i: usize) -> Kind {
    match i % 10 {
        3 => Kind::StoreDown,
        7 => Kind::BadEmail,
        _ => Kind::Good,
    }
}

fn signup(i: usize) -> Value {
    let email = match kind_of(i) {
        Kind::BadEmail => format!("user-{i}-at-example.com"),
        _ => format!("user-{i}@example.com"),
    };
    let plan = if kind_of(i) == Kind::StoreDown {
        "unavailable"
    } else {
        "free"
    };
    json!({"path": "SIGNUP", "kwargs": {"email": email, "name": format!("user-{i}"), "plan": plan}})
}

struct Queues {
    source: String,
    source_dlq: String,
    mailer: String,
    dropped: String,
}

async fn client() -> aws_sdk_sqs::Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_sqs::Client::new(&config)
}

async fn url(client: &aws_sdk_sqs::Client, name: &str) -> String {
    client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

async fn create_queues(client: &aws_sdk_sqs::Client) -> Queues {
    let q = Queues {
        source: unique_name("soak-signups"),
        source_dlq: unique_name("soak-signups-dlq"),
        mailer: unique_name("soak-mailer"),
        dropped: unique_name("soak-dropped"),
    };
    for name in [&q.source_dlq, &q.mailer, &q.dropped] {
        client.create_queue().queue_name(name).send().await.unwrap();
    }
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(url(client, &q.source_dlq).await)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    client
        .create_queue()
        .queue_name(&q.source)
        .attributes(QueueAttributeName::VisibilityTimeout, "2")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}).to_string(),
        )
        .send()
        .await
        .unwrap();
    q
}

async fn send_signups(client: &aws_sdk_sqs::Client, queue: &str, ids: &[usize]) {
    let url = url(client, queue).await;
    for chunk in ids.chunks(10) {
        let entries = chunk
            .iter()
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(signup(*i).to_string())
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(out.failed.is_empty(), "{:?}", out.failed);
    }
}

/// Messages visible and in flight.
async fn depth(client: &aws_sdk_sqs::Client, queue: &str) -> (u64, u64) {
    let attributes = client
        .get_queue_attributes()
        .queue_url(url(client, queue).await)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let get = |a: QueueAttributeName| attributes[&a].parse::<u64>().unwrap();
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Every message on a queue: the bodies.
async fn drain(client: &aws_sdk_sqs::Client, queue: &str) -> Vec<Value> {
    let url = url(client, queue).await;
    let mut bodies = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let out = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
            continue;
        }
        // Not deleted: received for ten minutes, they are not received again here.
        for m in messages {
            bodies.push(serde_json::from_str(m.body().unwrap()).unwrap());
        }
    }
    bodies
}

fn start_worker(proxy_port: u16, q: &Queues) -> Child {
    Command::new(env!("CARGO_BIN_EXE_graph"))
        .args(["worker", "--queue", &q.source])
        .args([
            "--wait-seconds",
            "1",
            "--in-flight",
            "4",
            "--grace-seconds",
            "20",
        ])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{proxy_port}"))
        .env("GRAPH_MAILER_QUEUE", &q.mailer)
        .env("GRAPH_DROPPED_QUEUE", &q.dropped)
        .env("RUST_LOG", "warn,lpipe_sqs::worker=info")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("LPIPE_METRICS_NAMESPACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the graph binary starts")
}

/// Sends SIGTERM; returns the exit status and what the worker logged.
fn stop_worker(mut worker: Child) -> (std::process::ExitStatus, String) {
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    let stderr = worker.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s).unwrap();
        s
    });
    let status = worker.wait().unwrap();
    (status, log.join().unwrap())
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_loses_nothing_under_sqs_faults_and_sigterm() {
    let moto = moto_endpoint("the_worker_loses_nothing_under_sqs_faults_and_sigterm");
    let n = signups();
    let client = client().await;
    // Signup i goes to shard i % shards.
    let shards = n.div_ceil(SHARD).max(1);
    let mut queues = Vec::new();
    for shard in 0..shards {
        let q = create_queues(&client).await;
        let ids: Vec<usize> = (shard..n).step_by(shards).collect();
        send_signups(&client, &q.source, &ids).await;
        queues.push(q);
    }
    let proxy = FaultProxy::start(&moto, &["--rate", "0.08", "--seed", "7"]);
    let started = Instant::now();

    // The first workers, stopped by SIGTERM once about a third of the signups went through.
    let workers: Vec<Child> = queues
        .iter()
        .map(|q| start_worker(proxy.port(), q))
        .collect();
    let third = (n / 3) as u64;
    loop {
        let mut mailed = 0;
        for q in &queues {
            mailed += depth(&client, &q.mailer).await.0;
        }
        if mailed >= third || started.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (worker, q) in workers.into_iter().zip(&queues) {
        let (status, log) = stop_worker(worker);
        assert!(
            status.success(),
            "the worker exits 0 on SIGTERM: {status:?}\n{log}"
        );
        assert!(
            log.contains("SIGTERM: finishing the batches in flight"),
            "{log}"
        );
        let (left, in_flight) = depth(&client, &q.source).await;
        println!(
            "{} after SIGTERM: {left} messages left, {in_flight} in flight",
            q.source
        );
    }

    // Second workers finish the queues: wait until every source is empty for a while (kept
    // messages come back after their visibility timeout, twice, then go to the DLQ).
    let workers: Vec<Child> = queues
        .iter()
        .map(|q| start_worker(proxy.port(), q))
        .collect();
    let mut quiet_since: Option<Instant> = None;
    loop {
        let (mut visible, mut invisible) = (0, 0);
        for q in &queues {
            let (v, i) = depth(&client, &q.source).await;
            (visible, invisible) = (visible + v, invisible + i);
        }
        if visible + invisible == 0 {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(6) {
                break;
            }
        } else {
            quiet_since = None;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the queues are not drained: {visible} visible, {invisible} in flight"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for worker in workers {
        let (status, log) = stop_worker(worker);
        assert!(status.success(), "{status:?}\n{log}");
    }
    let elapsed = started.elapsed();
    drop(proxy);

    // Where every signup ended.
    let name_of = |v: &Value, key: &str| -> usize {
        let name = v["kwargs"][key]
            .as_str()
            .or_else(|| v[key].as_str())
            .unwrap_or_else(|| panic!("a name in {v}"));
        name.trim_start_matches("user-").parse().unwrap()
    };
    let mut ended: BTreeMap<(Kind, &str), HashMap<usize, usize>> = BTreeMap::new();
    let mut others_on_dlq = 0;
    let ends = queues.iter().enumerate().flat_map(|(shard, q)| {
        [
            (&q.mailer, Kind::Good, q, shard),
            (&q.dropped, Kind::BadEmail, q, shard),
            (&q.source_dlq, Kind::StoreDown, q, shard),
        ]
    });
    for (queue, kind_expected, q, shard) in ends {
        for body in drain(&client, queue).await {
            let i = name_of(&body, "name");
            assert_eq!(
                i % shards,
                shard,
                "user-{i} ended on another shard's {queue}"
            );
            // Any signup can end on the source's DLQ (received twice without being handled:
            // a response lost on the way, a receive abandoned at shutdown), kept, not lost.
            let kind_expected = if queue == &q.source_dlq && kind_of(i) != Kind::StoreDown {
                others_on_dlq += 1;
                kind_of(i)
            } else {
                kind_expected
            };
            assert_eq!(kind_of(i), kind_expected, "user-{i} on {queue}: {body}");
            *ended
                .entry((kind_expected, queue.as_str()))
                .or_default()
                .entry(i)
                .or_default() += 1;
        }
    }
    let mut duplicates = 0;
    for kind in [Kind::Good, Kind::BadEmail, Kind::StoreDown] {
        let expected: Vec<usize> = (0..n).filter(|i| kind_of(*i) == kind).collect();
        // On its queue or the source's DLQ: wherever, at least once.
        let mut seen: HashMap<usize, usize> = HashMap::new();
        for (_, m) in ended.iter().filter(|((k, _), _)| *k == kind) {
            for (i, c) in m {
                *seen.entry(*i).or_default() += c;
            }
        }
        let missing: Vec<&usize> = expected.iter().filter(|i| !seen.contains_key(i)).collect();
        assert!(
            missing.is_empty(),
            "{kind:?}: lost {} signups: {missing:?}",
            missing.len()
        );
        duplicates += seen.values().map(|c| c - 1).sum::<usize>();
    }
    for q in &queues {
        assert_eq!(
            depth(&client, &q.source).await,
            (0, 0),
            "the source queue {} is empty",
            q.source
        );
    }
    println!(
        "{n} signups over {shards} queues and workers in {:.1} s through the fault proxy; nothing lost; {duplicates} duplicates (at least once); {others_on_dlq} good or bad-email signups on the source's DLQ (received twice without being handled)",
        elapsed.as_secs_f64()
    );
}
