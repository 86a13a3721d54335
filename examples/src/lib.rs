//! Runnable lpipe Lambdas.
//!
//! - [`conformance`]: a port of Python lpipe's own test Lambda (`dummy_lambda/func/main.py`),
//!   run against the reference's fixture table.
//! - [`graph`]: a directed graph across two Lambdas joined by SQS.
//! - [`fanout`]: a publisher and a consumer joined by an SNS topic and a subscribed queue.
//! - [`orders`]: SQS in, Kinesis and SQS FIFO out, and the stream's consumer.
//! - [`place_order`]: each order placed once (idempotent by `order_id`, keys in DynamoDB or
//!   in memory), from SQS or a DynamoDB stream.
//! - [`webhook`]: a sink of the user's own (an HTTP webhook).
//!
//! Each binary runs under Lambda when `AWS_LAMBDA_RUNTIME_API` is set and otherwise locally
//! on an event file.

pub mod conformance;
pub mod fanout;
pub mod graph;
pub mod orders;
pub mod place_order;
pub mod webhook;
