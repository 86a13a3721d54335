//! The dispatch benchmark: `bench EVENT_FILE` prints the response (stdout) and the time spent
//! handling the event (stderr), like the floor program `bench/floor`. With `BENCH_IO_MS=20`
//! (and `BENCH_CONCURRENCY=N`), `store` awaits 20 ms per record, N records at once. With
//! `BENCH_IDEMPOTENT=1`, records are idempotent by `user_id`, their keys kept in memory.
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
    lpipe::init_logging();
    // BENCH_IO_MS=20 BENCH_CONCURRENCY=10: the I/O-bound variant (`store` awaits 20 ms).
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let builder = match (number("BENCH_IO_MS"), number("BENCH_CONCURRENCY")) {
        (None, None) => crate::workload::pipeline(),
        (ms, concurrency) => {
            crate::workload::io_pipeline(ms.unwrap_or(0), concurrency.unwrap_or(1).max(1) as usize)
        }
    };
    // BENCH_IDEMPOTENT=1: each record idempotent by user_id, keys in memory.
    let builder = if std::env::var("BENCH_IDEMPOTENT").is_ok_and(|v| v == "1") {
        builder.idempotent(
            lpipe::Idempotency::new(lpipe::MemoryIdempotencyStore::new()).key_from(["user_id"]),
        )
    } else {
        builder
    };
    let pipeline = match builder.build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let result = pipeline
        .handle(&event, lpipe::lambda_runtime::Context::default())
        .await;
    let elapsed = started.elapsed();
    let (text, code) = match result {
        Ok(response) => (response.to_string(), ExitCode::SUCCESS),
        Err(e) => (
            serde_json::to_string(&e).unwrap_or_default(),
            ExitCode::FAILURE,
        ),
    };
    println!("{text}");
    let n = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["stats"]["received"].as_u64())
        .unwrap_or(0)
        .max(1);
    eprintln!(
        "handle={:.3}ms per_record_us={:.2}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    if let Some(kb) = peak_rss_kb() {
        eprintln!("peak_rss_kb={kb}");
    }
    code
}

/// This process's peak resident memory (`VmHWM`), in KiB, where Linux says it: printed for
/// `scripts/bench.py`, which cannot measure it from outside (a child's `ru_maxrss` includes the
/// Python parent's memory copied at fork, about 15 MiB).
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
