//! Several nodes, one view: the checker pool shared across the domain's
//! nodes.
//!
//! Every node probes every address and serves its own observations (and
//! its drain records, and its config's digest) on its admin endpoint; each
//! pulls its peers' every pull interval. No node's view overwrites
//! another's and nothing is coordinated: each node runs the same
//! [`quorum`] rule over the same votes, so they agree. Nothing on the
//! answer path waits for a peer: pulls feed the publisher, which folds
//! them into the next snapshot.
//!
//! - [`observation`]: the wire format of what a node publishes.
//! - [`pull`]: the pullers, one per peer, and their status.
//! - [`quorum`]: the pure voting rule, with fail static.

pub mod observation;
pub mod pull;
pub mod quorum;
