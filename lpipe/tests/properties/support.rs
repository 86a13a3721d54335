//! What the properties share: their configuration, a runtime, quiet generated panics.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};

use proptest::test_runner::{Config, RngSeed};

/// The configuration of a property: `cases` unless `PROPTEST_CASES` says otherwise, and a seed
/// that is printed (shown with the test's output when it fails) so that the run can be replayed
/// with `PROPTEST_RNG_SEED`.
pub fn config(cases: u32) -> Config {
    // Reads PROPTEST_CASES and PROPTEST_RNG_SEED.
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            let seed = hasher.finish();
            config.rng_seed = RngSeed::Fixed(seed);
            seed
        }
    };
    eprintln!(
        "proptest: {} cases, seed {seed} (replay with PROPTEST_RNG_SEED={seed})",
        config.cases
    );
    config
}

/// Runs a future on a current-thread runtime whose clock is paused (backoff sleeps take no
/// time).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// The message of the panics that generated functions raise on purpose.
pub const GENERATED_PANIC: &str = "generated panic";

/// Keeps the generated panics (thousands of them) out of the test output; other panics are
/// printed as usual.
pub fn quiet_generated_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if message != Some(GENERATED_PANIC) {
                default(info);
            }
        }));
    });
}
