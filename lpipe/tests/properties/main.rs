//! Property tests: lpipe's invariants hold for generated inputs, not only for the examples.
//!
//! - `outcomes`: every record of a generated batch ends exactly once as the outcome its
//!   generated behaviour implies, per source (raw, SQS standard and FIFO, Kinesis,
//!   EventBridge), and the response names exactly the records to retry.
//! - `outbox`: against a sink that fails generated subsets of entries, no call breaks the
//!   sink's limits, every message is delivered once or its record fails, and order per key holds.
//! - `decoders`: arbitrary bytes and JSON as events, arbitrary Kinesis data: a clear error or
//!   per-record drops, never a panic, never a record taken from a foreign event.
//! - `params`: generated kwargs for a typed function run it with exactly the present values,
//!   or drop the record with an error naming the field.
//!
//! Case counts are fixed per property (`PROPTEST_CASES` overrides them all); the seed is
//! random per run and printed with a failure (`PROPTEST_RNG_SEED` replays it). Shrunk failures
//! are kept in `proptest-regressions/` and replayed first; the ones found while writing these
//! became the `regression_*` tests beside the properties.

mod decoders;
mod outbox;
mod outcomes;
mod params;
mod support;
