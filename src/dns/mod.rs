//! The DNS side of a node: the domain's lookup table, the pure answer
//! function, and the sockets that carry queries to it.
//!
//! - [`table`]: the domain's names and record sets, built per snapshot.
//! - [`encoded`]: the same, pre-encoded for the fast path, built per snapshot
//!   (its names indexed by `names`, found in any letter case).
//! - [`wire`]: the rules both answer paths share (sizes, ECS, the routed client).
//! - [`mod@answer`]: the general path, through hickory-proto's `Message`; the reference.
//! - [`fast`]: the common query shapes answered from bytes; declines the rest.
//! - [`secure`]: DO=1 on the general path: pre-made RRSIGs and NSEC proofs attached.
//! - [`cookie`], [`rrl`]: DNS cookies and response rate limiting.
//! - [`server`] and `batch`: the UDP and TCP loops; `answerer`: what a query
//!   goes through between them and its reply (either path, rate limiting,
//!   counting).
//!
//! Dependencies point down: `table`, `encoded` and `wire` know nothing of
//! the snapshot (which is built from them); `answer` and `fast` read it.

pub mod answer;
mod answerer;
mod batch;
pub mod cookie;
#[cfg(test)]
mod differential;
pub mod encoded;
pub mod fast;
#[cfg(test)]
pub(crate) mod fixture;
mod names;
pub mod rrl;
pub mod secure;
pub mod server;
pub mod table;
pub mod wire;

pub use answer::answer;
pub use server::{DnsServer, DnsSockets, TcpLimits};
pub use wire::Transport;
