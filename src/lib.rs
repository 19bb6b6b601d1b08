//! Meridian: an authoritative DNS server that answers each load-balanced
//! name with the nearest healthy zone's load balancer.
//!
//! The crate is laid out along the path a query takes and the path a change
//! takes, which meet in one place:
//!
//! - [`config`] reads and checks the operator's TOML, reporting every
//!   mistake with file, line and column.
//! - [`snapshot`] holds the immutable state the answer path reads (config
//!   plus the lookup tables built from it) and the store it is swapped in.
//! - [`dns`] owns the wire: `answer` (the general path) and `fast` (the
//!   common shapes, from pre-encoded bytes) turn request bytes into reply
//!   bytes from one snapshot with no locks and no I/O; `server` owns the
//!   UDP and TCP sockets and feeds them to those.
//! - [`admin`] is the operator's HTTP endpoint.
//!
//! [`run`] wires them together over sockets the caller has already bound, so
//! the binary and the tests start the same server.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod dns;
pub mod health;
pub mod metrics;
pub mod publisher;
pub mod routing;
pub mod snapshot;
pub mod time;

mod run;
pub use run::{Listeners, RunError, run};

#[cfg(test)]
mod test_rng;
