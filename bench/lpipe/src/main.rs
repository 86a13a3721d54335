//! The dispatch benchmark: `bench EVENT_FILE` prints the response (stdout) and the time spent
//! handling the event (stderr), like the floor program `bench/floor`. With `BENCH_IO_MS=20`
//! (and `BENCH_CONCURRENCY=N`), `store` awaits 20 ms per record, N records at once. With
//! `BENCH_IDEMPOTENT=1`, records are idempotent by `user_id`, their keys kept in memory.
//!
//! With `BENCH_PAIRED=ROUNDS`, it measures what idempotency costs in a warm process instead
//! (as a Lambda's later invocations run): ROUNDS rounds, each handling the event once plain and
//! once idempotent with a new in-memory store (which of the two goes first alternates), and
//! prints the medians and lower deciles of both and the median of the rounds' ratios. Two runs
//! a few milliseconds apart share the machine's state, so the ratios hold on a noisy machine
//! where whole-process times do not.
mod workload;

use std::process::ExitCode;
use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(file) = std::env::args().nth(1) else {
        eprintln!("usage: bench EVENT_FILE");
        return ExitCode::from(2);
    };
    let event = match std::fs::read_to_string(&file) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    // Logs as every lpipe binary has them (text at info unless the environment says otherwise).
    lpipe::runtime::init_logging();
    // BENCH_IO_MS=20 BENCH_CONCURRENCY=10: the I/O-bound variant (`store` awaits 20 ms).
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let (io_ms, concurrency) = (number("BENCH_IO_MS"), number("BENCH_CONCURRENCY"));
    let builder = || match (io_ms, concurrency) {
        (None, None) => crate::workload::pipeline(),
        (ms, concurrency) => {
            crate::workload::io_pipeline(ms.unwrap_or(0), concurrency.unwrap_or(1).max(1) as usize)
        }
    };
    // BENCH_IDEMPOTENT=1: each record idempotent by user_id, keys in memory (a new store each
    // time this is called).
    let idempotent = || {
        builder()
            .idempotent(
                lpipe::Idempotency::new(lpipe::idempotency::MemoryIdempotencyStore::new())
                    .key_from(["user_id"]),
            )
            .build()
    };
    if let Some(rounds) = number("BENCH_PAIRED") {
        return paired(
            &event,
            rounds.max(1) as usize,
            builder().build(),
            idempotent,
        )
        .await;
    }
    let built = if std::env::var("BENCH_IDEMPOTENT").is_ok_and(|v| v == "1") {
        idempotent()
    } else {
        builder().build()
    };
    let pipeline = match usable(built) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (ms, response) = timed(&event, &pipeline).await;
    let (text, code) = match response {
        Ok(text) => (text, ExitCode::SUCCESS),
        Err(text) => (text, ExitCode::FAILURE),
    };
    println!("{text}");
    let n = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["stats"]["received"].as_u64())
        .unwrap_or(0)
        .max(1);
    eprintln!("handle={ms:.3}ms per_record_us={:.2}", ms * 1e3 / n as f64);
    if let Some(kb) = peak_rss_kb() {
        eprintln!("peak_rss_kb={kb}");
    }
    code
}

/// `BENCH_PAIRED`: the plain pipeline against the same one with idempotent records, handled
/// in alternating order, each idempotent round with a new store (so none of its records is a
/// duplicate: the responses must be the same).
async fn paired(
    event: &str,
    rounds: usize,
    plain: Result<lpipe::Pipeline, lpipe::InvalidConfigurationError>,
    idempotent: impl Fn() -> Result<lpipe::Pipeline, lpipe::InvalidConfigurationError>,
) -> ExitCode {
    let plain = match usable(plain) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (mut plain_ms, mut idempotent_ms) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let pipeline = match usable(idempotent()) {
            Ok(p) => p,
            Err(code) => return code,
        };
        let (p, i) = if round % 2 == 0 {
            let p = timed(event, &plain).await;
            (p, timed(event, &pipeline).await)
        } else {
            let i = timed(event, &pipeline).await;
            (timed(event, &plain).await, i)
        };
        if p.1 != i.1 {
            eprintln!(
                "round {round}: the idempotent response differs:\n{:?}\n{:?}",
                p.1, i.1
            );
            return ExitCode::FAILURE;
        }
        plain_ms.push(p.0);
        idempotent_ms.push(i.0);
    }
    let mut ratios: Vec<f64> = idempotent_ms
        .iter()
        .zip(&plain_ms)
        .map(|(i, p)| i / p)
        .collect();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let decile = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[(v.len() - 1) / 10]
    };
    println!(
        "paired rounds={rounds} plain_median_ms={:.3} idempotent_median_ms={:.3} plain_decile_ms={:.3} idempotent_decile_ms={:.3} cost_median_of_ratios={:+.2}%",
        median(&mut plain_ms),
        median(&mut idempotent_ms),
        decile(&mut plain_ms),
        decile(&mut idempotent_ms),
        (median(&mut ratios) - 1.0) * 100.0
    );
    ExitCode::SUCCESS
}

/// The pipeline, or (its configuration refused, said on stderr) the exit code for a usage error.
fn usable(
    built: Result<lpipe::Pipeline, lpipe::InvalidConfigurationError>,
) -> Result<lpipe::Pipeline, ExitCode> {
    built.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

/// Handles the event; returns the milliseconds it took and the response's text (or the
/// invocation error's JSON).
async fn timed(event: &str, pipeline: &lpipe::Pipeline) -> (f64, Result<String, String>) {
    let started = Instant::now();
    let response = pipeline
        .handle(event, lpipe::lambda_runtime::Context::default())
        .await;
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    let text = match response {
        Ok(r) => Ok(r.to_string()),
        Err(e) => Err(serde_json::to_string(&e).unwrap_or_default()),
    };
    (elapsed, text)
}

/// This process's peak resident memory (`VmHWM`), in KiB, where Linux says it: printed for
/// `scripts/bench.py`, which cannot measure it from outside (a child's `ru_maxrss` includes the
/// Python parent's memory copied at fork, about 15 MiB).
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
