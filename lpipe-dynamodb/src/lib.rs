//! Amazon DynamoDB for [lpipe](https://crates.io/crates/lpipe): an idempotency store and the
//! DynamoDB Streams event source.
//!
//! - [`DynamoDbStore`] keeps the idempotency keys of
//!   [`Idempotency`](lpipe_core::Idempotency) in a table laid out as Powertools for AWS Lambda
//!   lays out its own (partition key `id`, TTL attribute `expiration`): each record's effects
//!   once, however often SQS, Kinesis or a stream delivers it.
//! - [`DynamoDbSource`] decodes DynamoDB Streams events (`eventSource: "aws:dynamodb"`). With
//!   routes ([`DynamoDbSource::route`]) a record of an event name runs its path with the item as
//!   kwargs (`NewImage`, or `OldImage` for `REMOVE`), turned from DynamoDB's attribute values
//!   into plain JSON ([`item_to_json`]); without, each item is an lpipe message. The event
//!   name, keys and old image are on the function's context (`ctx.record().dynamodb()`).
//!   Records run in order; after a record fails, later ones are not run and are reported with
//!   it. The response is a partial batch response (`{"batchItemFailures": [{"itemIdentifier":
//!   SequenceNumber}], "stats": …}`), or, for mappings without `ReportBatchItemFailures`
//!   ([`DynamoDbSource::without_partial_responses`]), a failed invocation.
//!
//! The source registers itself when this crate is linked (the `dynamodb` feature of `lpipe`);
//! a program that depends on this crate directly and names nothing of it links it with
//! `use lpipe_dynamodb as _;`.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use lpipe_core::{Idempotency, Pipeline};
//! use lpipe_dynamodb::{DynamoDbSource, DynamoDbStore};
//!
//! # #[derive(serde::Deserialize)] struct Order { order_id: String }
//! # async fn place(_: Order) -> Result<(), lpipe_core::BoxError> { Ok(()) }
//! # async fn build() -> Pipeline {
//! let store = DynamoDbStore::from_env("idempotency").await;
//! Pipeline::builder()
//!     .path_fn("PLACE_ORDER", place)
//!     .idempotent(Idempotency::new(store).key_from(["order_id"]).expires_after(Duration::from_secs(3600)))
//!     .event_source(DynamoDbSource::new().route("INSERT", "PLACE_ORDER"))
//!     .build()
//!     .unwrap()
//! # }
//! ```
#![warn(missing_docs)]

mod attribute;
mod source;
mod store;

use std::sync::Arc;

use lpipe_core::{registry::SourceRegistration, source::EventSource};

pub use attribute::item_to_json;
pub use source::DynamoDbSource;
pub use store::DynamoDbStore;

/// The DynamoDB client shared by everything in this crate that was not given one: built once
/// per process from the standard AWS configuration (`AWS_ENDPOINT_URL` /
/// `AWS_ENDPOINT_URL_DYNAMODB` included).
pub async fn shared_client() -> aws_sdk_dynamodb::Client {
    static CLIENT: tokio::sync::OnceCell<aws_sdk_dynamodb::Client> =
        tokio::sync::OnceCell::const_new();
    CLIENT
        .get_or_init(|| async { aws_sdk_dynamodb::Client::new(&lpipe_aws::sdk_config().await) })
        .await
        .clone()
}

fn build_source() -> Arc<dyn EventSource> {
    Arc::new(DynamoDbSource::new())
}

lpipe_core::registry::inventory::submit! { SourceRegistration { name: DynamoDbSource::NAME, build: build_source } }

/// Refers to this crate, so that it is linked and its registration (its event source) is
/// seen; returns the source's name. A program that depends on this crate directly and names
/// nothing of it would not link it: `use lpipe_dynamodb as _;` once in the program does it, and
/// so does calling this. Through the `lpipe` facade nothing is needed.
#[inline(never)]
pub fn link() -> &'static str {
    DynamoDbSource::NAME
}
