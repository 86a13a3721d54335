//! The `lpipe` command line's parts: the system file ([`system`]), each Lambda's description
//! ([`descriptions`]), the system as one graph ([`model`]), its checks ([`check`], with the kwargs' [`types`]) and its
//! drawing ([`graph`]), and running it on one machine ([`up`]).
#![warn(missing_docs)]

pub mod check;
pub mod descriptions;
pub mod graph;
pub mod model;
pub mod stream;
pub mod system;
pub mod types;
pub mod up;
