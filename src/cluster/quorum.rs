//! How the nodes' views of one address become the state answers use.
//!
//! Every node probes every address and publishes what it sees; every node
//! pulls the others' views and runs this same rule over the same votes, so
//! they agree without a consensus protocol: no node's view overwrites
//! another's. The rule, for one address:
//!
//! - **Voters** are this node and every peer whose observations are fresh
//!   and that has an opinion (`up` or `down`; an address a node has not
//!   probed yet abstains). A peer that is unreachable or stale does not
//!   vote.
//! - The address is **down** when at least `quorum` voters see it down
//!   (default: a majority of the voters), else up. One node whose own path
//!   to a zone is cut is outvoted rather than failing the zone over.
//! - **Fail static**: with fewer fresh nodes than a majority of the
//!   cluster (this node included), no decision is made: the last agreed
//!   state stays, and the decision says so. A lone node of a one-node
//!   cluster is its own majority, so it behaves as if unclustered.

use serde::Serialize;

use crate::health::state::Observed;

/// The settings of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Nodes in the cluster, this one included.
    pub cluster_size: usize,
    /// Down votes needed; `None`: a majority of the voters.
    pub quorum: Option<usize>,
}

impl Rule {
    /// Fresh nodes needed for any decision: a majority of the cluster.
    pub fn min_fresh(&self) -> usize {
        self.cluster_size / 2 + 1
    }
}

/// What the rule decided for one address, and from what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub state: Observed,
    /// Nodes whose view was fresh (this one included).
    pub fresh: usize,
    /// Of those, the ones with an opinion.
    pub voters: usize,
    pub down_votes: usize,
    /// Down votes that would have made it down.
    pub needed: usize,
    /// Too few fresh nodes: `state` is the last agreed one, kept.
    pub is_fail_static: bool,
}

/// Decides one address. `own` is this node's view; `peers` holds one entry
/// per other node: `None` when its observations are stale or missing,
/// else its view of the address. `last` is the state agreed before.
pub fn decide(
    rule: Rule,
    own: Observed,
    peers: impl IntoIterator<Item = Option<Observed>>,
    last: Observed,
) -> Decision {
    let mut fresh = 1;
    let mut voters = usize::from(own != Observed::Unknown);
    let mut down_votes = usize::from(own == Observed::Down);
    for view in peers.into_iter().flatten() {
        fresh += 1;
        voters += usize::from(view != Observed::Unknown);
        down_votes += usize::from(view == Observed::Down);
    }
    let needed = rule.quorum.unwrap_or(voters / 2 + 1).max(1);
    let is_fail_static = fresh < rule.min_fresh();
    let state = if is_fail_static {
        last
    } else if voters == 0 {
        Observed::Unknown
    } else if down_votes >= needed {
        Observed::Down
    } else {
        Observed::Up
    };
    Decision {
        state,
        fresh,
        voters,
        down_votes,
        needed,
        is_fail_static,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Observed::{Down, Unknown, Up};

    const THREE: Rule = Rule {
        cluster_size: 3,
        quorum: None,
    };

    #[test]
    fn a_lone_node_decides_alone() {
        let alone = Rule {
            cluster_size: 1,
            quorum: None,
        };
        for own in [Up, Down, Unknown] {
            let d = decide(alone, own, [], Up);
            assert_eq!(d.state, own);
            assert!(!d.is_fail_static);
        }
    }

    #[test]
    fn one_cut_node_is_outvoted() {
        let d = decide(THREE, Down, [Some(Up), Some(Up)], Up);
        assert_eq!(d.state, Up);
        assert_eq!((d.voters, d.down_votes, d.needed), (3, 1, 2));
        // The same from a node that sees it up.
        assert_eq!(decide(THREE, Up, [Some(Down), Some(Up)], Up).state, Up);
    }

    #[test]
    fn a_majority_seeing_down_takes_it_down_everywhere() {
        assert_eq!(decide(THREE, Down, [Some(Down), Some(Up)], Up).state, Down);
        assert_eq!(decide(THREE, Up, [Some(Down), Some(Down)], Up).state, Down);
        assert_eq!(
            decide(THREE, Down, [Some(Down), Some(Down)], Up).state,
            Down
        );
    }

    #[test]
    fn stale_peers_do_not_vote_and_a_tie_stays_up() {
        // C is stale: A and B vote; one down of two is not a majority.
        let d = decide(THREE, Down, [Some(Up), None], Up);
        assert_eq!((d.fresh, d.voters, d.needed), (2, 2, 2));
        assert_eq!(d.state, Up);
        assert_eq!(decide(THREE, Down, [Some(Down), None], Up).state, Down);
    }

    #[test]
    fn too_few_fresh_nodes_fail_static() {
        let d = decide(THREE, Down, [None, None], Up);
        assert!(d.is_fail_static);
        assert_eq!(d.state, Up, "the last agreed state is kept");
        let d = decide(THREE, Up, [None, None], Down);
        assert_eq!(d.state, Down);
    }

    #[test]
    fn nodes_that_have_not_probed_abstain() {
        let d = decide(THREE, Down, [Some(Unknown), Some(Down)], Up);
        assert_eq!((d.fresh, d.voters, d.needed), (3, 2, 2));
        assert_eq!(d.state, Down);
        assert_eq!(
            decide(THREE, Unknown, [Some(Unknown), None], Up).state,
            Unknown
        );
    }

    #[test]
    fn a_configured_quorum_replaces_the_majority() {
        let lenient = Rule {
            cluster_size: 3,
            quorum: Some(3),
        };
        assert_eq!(decide(lenient, Down, [Some(Down), Some(Up)], Up).state, Up);
        assert_eq!(
            decide(lenient, Down, [Some(Down), Some(Down)], Up).state,
            Down
        );
        let eager = Rule {
            cluster_size: 3,
            quorum: Some(1),
        };
        assert_eq!(decide(eager, Up, [Some(Down), Some(Up)], Up).state, Down);
    }
}
