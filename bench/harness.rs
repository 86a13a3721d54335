//! What the two hand-written bench programs (`bench/floor`, `bench/idiomatic`) share: reading
//! the event file named on the command line, timing the handling, printing the response, the
//! time and the peak memory for `scripts/bench.py`. Included by each with `#[path]`.

use std::process::ExitCode;
use std::time::Instant;

/// Runs `handle` on the event file and kind (`sqs` or `kinesis`) given as arguments; `handle`
/// returns the response and how many records it received.
pub fn run(
    program: &str,
    handle: impl FnOnce(&str, &str) -> Result<(String, usize), String>,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, kind] = args.as_slice() else {
        eprintln!("usage: {program} EVENT_FILE sqs|kinesis");
        return ExitCode::from(2);
    };
    let event = match std::fs::read_to_string(file) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let (response, received) = match handle(&event, kind) {
        Ok(handled) => handled,
        Err(e) => {
            eprintln!("invalid event: {e}");
            return ExitCode::FAILURE;
        }
    };
    let elapsed = started.elapsed();
    println!("{response}");
    eprintln!(
        "handle={:.3}ms per_record_us={:.2}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / received.max(1) as f64
    );
    if let Some(kb) = peak_rss_kb() {
        eprintln!("peak_rss_kb={kb}");
    }
    ExitCode::SUCCESS
}

/// This process's peak resident memory (`VmHWM`), in KiB, where Linux says it: printed for
/// `scripts/bench.py`, which cannot measure it from outside (a child's `ru_maxrss` includes the
/// Python parent's memory copied at fork, about 15 MiB).
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
