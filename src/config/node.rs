//! The domain's cluster as the config gives it: its nodes, how they share
//! what they see, and which of them this process is (the one choice that
//! is not in the file, `Config::for_node`, so one file serves every node).

use std::net::SocketAddr;
use std::time::Duration;

/// The domain's nodes, and how they share what they see.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// Every node, this one included; empty for a node alone.
    pub nodes: Vec<ClusterNode>,
    /// Bearer token for requests between nodes (required with peers).
    pub token: Option<String>,
    /// How often each peer's observations are pulled.
    pub pull_interval: Duration,
    /// How long one pull may take.
    pub pull_timeout: Duration,
    /// Observations older than this do not vote.
    pub stale_after: Duration,
    /// Down votes that take an address down; `None`: a majority of the
    /// nodes with fresh observations.
    pub quorum: Option<usize>,
    /// Which of `nodes` this process is: set by
    /// [`Config::for_node`](super::Config::for_node) from `--node` or
    /// `MERIDIAN_NODE`, never from the file, so one file serves every node.
    pub this_node: Option<usize>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            nodes: Vec::new(),
            token: None,
            pull_interval: Duration::from_millis(250),
            pull_timeout: Duration::from_millis(500),
            stale_after: Duration::from_secs(2),
            quorum: None,
            this_node: None,
        }
    }
}

impl ClusterSettings {
    /// Nodes in the cluster, at least this one.
    pub fn size(&self) -> usize {
        self.nodes.len().max(1)
    }

    /// The other nodes.
    pub fn peers(&self) -> impl Iterator<Item = (usize, &ClusterNode)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != self.this_node)
    }

    /// This node's name, if it is one of a cluster.
    pub fn this_name(&self) -> Option<&str> {
        self.this_node.map(|i| self.nodes[i].name.as_str())
    }
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterNode {
    pub name: String,
    /// Index into `zones`: where the node runs.
    pub zone: usize,
    /// Its admin endpoint (`http://addr:port` in the file).
    pub admin: SocketAddr,
}

/// Why a config cannot serve as a given node.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NodeError {
    #[error("node `{name}` is not in [[cluster.nodes]] of {file}; nodes are: {known}")]
    Unknown {
        name: String,
        file: String,
        known: String,
    },
    #[error(
        "{file} defines {count} cluster nodes; say which one this is with --node NAME or MERIDIAN_NODE"
    )]
    Unnamed { file: String, count: usize },
}
