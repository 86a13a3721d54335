//! The `lpipe` command line's parts: the system file ([`system`]), each Lambda's description
//! ([`descriptions`]), the system as one graph ([`model`]), its checks ([`check`], with the
//! kwargs' [`types`]), its drawing ([`graph`]), its deployment ([`template`]) and the check of
//! what is deployed ([`deployed`]), and running it on one machine ([`up`], with a
//! [`stream`] poller, DynamoDB Streams records written as Lambda's events
//! ([`dynamodb_json`]), and a [`bridge`] for the services that invoke a Lambda themselves).
#![warn(missing_docs)]

pub mod bridge;
pub mod check;
pub mod deployed;
pub mod descriptions;
pub mod dynamodb_json;
pub mod graph;
pub mod model;
pub mod stream;
pub mod system;
pub mod template;
pub mod types;
pub mod up;
