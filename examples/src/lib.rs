//! Runnable lpipe Lambdas.
//!
//! - [`conformance`]: a port of Python lpipe's own test Lambda (`dummy_lambda/func/main.py`),
//!   run against the reference's fixture table.
//! - [`bench`](mod@bench): the dispatch benchmark's workload (see `shared/bench/README.md`).
//!
//! Each binary runs under Lambda when `AWS_LAMBDA_RUNTIME_API` is set and otherwise locally
//! on an event file.

pub mod bench;
pub mod conformance;
pub mod graph;
pub mod webhook;
