//! How a worker consumes its queue: its options and the `worker` subcommand's flags.

use std::time::Duration;

/// How a worker consumes its queue (the `worker` subcommand's flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerOptions {
    /// The queue: its name or URL.
    pub queue: String,
    /// Messages per receive, 1 to 10 (`--batch-size`, default 10).
    pub batch_size: i32,
    /// Long-poll wait of a receive, 0 to 20 seconds (`--wait-seconds`, default 20).
    pub wait_seconds: i32,
    /// The visibility timeout of received messages (`--visibility-timeout`); the queue's own
    /// when not set.
    pub visibility_timeout: Option<i32>,
    /// Batches in flight at once (`--in-flight`, default 1).
    pub in_flight: usize,
    /// How long batches in flight have to finish after a shutdown signal (`--grace-seconds`,
    /// default 25: ECS and Kubernetes wait 30 before they kill).
    pub grace: Duration,
    /// Create the queue (by name; CreateQueue returns an existing one as it is) instead of
    /// only looking it up (`--create-queue`): for local runs.
    pub create_queue: bool,
}

impl WorkerOptions {
    /// The defaults, for this queue.
    pub fn new(queue: impl Into<String>) -> Self {
        WorkerOptions {
            queue: queue.into(),
            batch_size: 10,
            wait_seconds: 20,
            visibility_timeout: None,
            in_flight: 1,
            grace: Duration::from_secs(25),
            create_queue: false,
        }
    }

    /// Options from the arguments after `worker` (`--queue NAME_OR_URL [--batch-size N]
    /// [--wait-seconds S] [--visibility-timeout S] [--in-flight B] [--concurrency N]
    /// [--grace-seconds S] [--create-queue]`); also returns `--concurrency`, which the
    /// pipeline takes.
    ///
    /// # Errors
    ///
    /// A message naming the flag that is missing, unknown or out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_sqs::worker::WorkerOptions;
    /// let args = ["--queue", "signups", "--in-flight", "4", "--concurrency", "8"];
    /// let (opts, concurrency) = WorkerOptions::from_args(args.map(String::from)).unwrap();
    /// assert_eq!((opts.queue.as_str(), opts.in_flight, concurrency), ("signups", 4, Some(8)));
    /// assert!(WorkerOptions::from_args(["--batch-size", "11"].map(String::from)).is_err());
    /// ```
    pub fn from_args(
        args: impl IntoIterator<Item = String>,
    ) -> Result<(WorkerOptions, Option<usize>), String> {
        let mut opts = WorkerOptions::new("");
        let mut concurrency = None;
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "--create-queue" {
                opts.create_queue = true;
                continue;
            }
            let value = args.next();
            let number =
                |range: std::ops::RangeInclusive<i64>| number(&flag, value.as_deref(), range);
            match flag.as_str() {
                "--queue" => {
                    opts.queue = value.ok_or("--queue needs a queue name or URL")?;
                }
                "--batch-size" => opts.batch_size = number(1..=10)? as i32,
                "--wait-seconds" => opts.wait_seconds = number(0..=20)? as i32,
                "--visibility-timeout" => {
                    opts.visibility_timeout = Some(number(1..=43_200)? as i32)
                }
                "--in-flight" => opts.in_flight = number(1..=1000)? as usize,
                "--concurrency" => concurrency = Some(number(1..=10_000)? as usize),
                "--grace-seconds" => opts.grace = Duration::from_secs(number(0..=3600)? as u64),
                other => return Err(format!("unknown worker option {other}")),
            }
        }
        if opts.queue.is_empty() {
            return Err("the worker needs --queue NAME_OR_URL".to_owned());
        }
        Ok((opts, concurrency))
    }
}

/// A flag's numeric value, in range.
fn number(
    flag: &str,
    value: Option<&str>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, String> {
    let v = value.ok_or_else(|| format!("{flag} needs a value"))?;
    let n: i64 = v
        .parse()
        .map_err(|_| format!("{flag} takes a number, not {v:?}"))?;
    if !range.contains(&n) {
        return Err(format!(
            "{flag} must be from {} to {}, not {n}",
            range.start(),
            range.end()
        ));
    }
    Ok(n)
}
