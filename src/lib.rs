//! Meridian: an authoritative DNS server that answers each load-balanced
//! name with the nearest healthy zone's load balancer.
//!
//! The crate is laid out along the path a query takes and the path a change
//! takes, which meet in one place, the snapshot. Dependencies point one way,
//! down this list (`tests/architecture.rs` checks it):
//!
//! - [`admin`] is the operator's HTTP endpoint: it reads the snapshot and
//!   sends writes to the publisher.
//! - [`publisher`] is the control plane: one task owns every change and
//!   builds the next snapshot, around a pure `State::apply`.
//! - [`snapshot`] holds the immutable state the answer path reads and its
//!   pure `build`, and the store it is swapped in.
//! - [`dns`] owns the wire: `answer` (the general path) and `fast` (the
//!   common shapes, from pre-encoded bytes) turn request bytes into reply
//!   bytes from one snapshot with no locks and no I/O; `server` owns the
//!   UDP and TCP sockets and feeds them to those.
//! - [`routing`] decides which zones a client gets: location, policies,
//!   latency, the decision memo, explain.
//! - [`cluster`] is what nodes tell each other and how their votes become
//!   one decision.
//! - [`health`] probes, turns results into up/down, keeps drains, and
//!   reports transitions on a channel.
//! - [`config`] reads and checks the operator's TOML, reporting every
//!   mistake with file, line and column.
//! - [`metrics`] counts and renders; [`time`] formats dates;
//!   [`allocator`] is the binary's memory allocator and its settings.
//!
//! [`run()`] wires them together over sockets the caller has already bound,
//! so the binary and the tests start the same server.
//!
//! These docs are for those working on Meridian, and their links name
//! private items freely: build them with `cargo doc --document-private-items`.

#![allow(rustdoc::private_intra_doc_links)]

pub mod admin;
pub mod allocator;
pub mod cluster;
pub mod config;
pub mod dns;
pub mod dnssec;
pub mod health;
pub mod metrics;
pub mod publisher;
pub mod routing;
pub mod snapshot;
pub mod time;

mod run;
pub use run::{Listeners, RunError, run};

#[cfg(test)]
mod test_config;
#[cfg(test)]
mod test_rng;
