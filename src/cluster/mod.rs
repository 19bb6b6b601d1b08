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

use std::collections::HashMap;

use crate::health::AddressKey;
use crate::health::state::Observed;
use quorum::Decision;

/// What the nodes agreed, frozen into a snapshot for the admin API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    /// Too few nodes had fresh observations: states are the last agreed.
    pub is_fail_static: bool,
    /// Nodes whose observations were fresh, this one included.
    pub fresh_nodes: usize,
    pub addresses: HashMap<AddressKey, AddressVotes>,
}

/// One address: this node's view, each peer's, and the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressVotes {
    pub own: Observed,
    pub decision: Decision,
    /// Per peer (index in `cluster.nodes`): its view, `None` when stale.
    pub votes: Vec<(usize, Option<Observed>)>,
}
