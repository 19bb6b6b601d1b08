//! Pulling peers' observations: one task per peer, one short HTTP request
//! per pull interval, nothing else.
//!
//! A pull that fails or takes longer than its timeout is recorded and
//! forgotten; the peer's last observations simply age until they no longer
//! vote. Answers never wait for a pull: what arrives goes to the publisher,
//! which folds it into the next snapshot. The request is one HTTP/1.1
//! exchange over hyper's connection-level client on a fresh connection,
//! authenticated with the cluster token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONNECTION, HOST};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::observation::NodeObservations;
use crate::config::ClusterSettings;

/// The path a node serves its observations on.
pub const OBSERVATIONS_PATH: &str = "/v1/cluster/observations";

/// The most bytes of observations accepted from a peer.
const MAX_BODY: usize = 16 << 20;

/// What arrived from one peer.
#[derive(Debug)]
pub struct PeerReport {
    /// Index into `cluster.nodes`.
    pub node: usize,
    pub observations: NodeObservations,
    pub received_at: Instant,
}

/// The latest pull from one peer, for `/v1/cluster` and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullStatus {
    #[serde(skip)]
    pub last_attempt: Option<SystemTime>,
    #[serde(skip)]
    pub last_success: Option<SystemTime>,
    /// Why the last pull failed; `None` after a success.
    pub error: Option<String>,
    pub config_digest: Option<String>,
    pub generation: Option<u64>,
    pub pulls_ok: u64,
    pub pulls_failed: u64,
}

/// Every peer's latest pull, by node index. A `DashMap` because each
/// puller writes its own entry several times a second while the admin API
/// reads them all now and then.
pub type PullBoard = DashMap<usize, PullStatus>;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP exchange with {addr} failed: {reason}")]
    Http { addr: SocketAddr, reason: String },
    #[error("{addr} answered {status}: {body}")]
    Status {
        addr: SocketAddr,
        status: u16,
        body: String,
    },
    #[error("{addr} sent observations that do not parse: {reason}")]
    Parse { addr: SocketAddr, reason: String },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

/// Starts a puller for every peer of `cluster`; they stop with `stop`.
pub fn start(
    cluster: &ClusterSettings,
    board: Arc<PullBoard>,
    reports: mpsc::Sender<PeerReport>,
    stop: CancellationToken,
) -> TaskTracker {
    let tracker = TaskTracker::new();
    let token = cluster.token.clone().unwrap_or_default();
    for (node, peer) in cluster.peers() {
        board.insert(node, PullStatus::default());
        let puller = Puller {
            node,
            addr: peer.admin,
            token: token.clone(),
            interval: cluster.pull_interval,
            timeout: cluster.pull_timeout,
            board: board.clone(),
            reports: reports.clone(),
        };
        tracker.spawn(puller.run(stop.clone()));
    }
    tracker.close();
    tracker
}

struct Puller {
    node: usize,
    addr: SocketAddr,
    token: String,
    interval: Duration,
    timeout: Duration,
    board: Arc<PullBoard>,
    reports: mpsc::Sender<PeerReport>,
}

impl Puller {
    async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_ok = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let attempt = SystemTime::now();
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = tokio::time::timeout(self.timeout, fetch(self.addr, &self.token)) => {
                    r.unwrap_or(Err(PullError::Timeout { addr: self.addr, timeout: self.timeout }))
                }
            };
            let ok = result.is_ok();
            if was_ok != Some(ok) {
                // Transitions only: a peer down for an hour logs twice.
                match &result {
                    Ok(_) => tracing::info!(peer = %self.addr, "pulling from peer"),
                    Err(err) => {
                        tracing::warn!(peer = %self.addr, %err, "peer unreachable; its observations will age out of the vote")
                    }
                }
                was_ok = Some(ok);
            }
            let mut status = self
                .board
                .get(&self.node)
                .map(|s| s.clone())
                .unwrap_or_default();
            status.last_attempt = Some(attempt);
            match result {
                Ok(observations) => {
                    status.last_success = Some(SystemTime::now());
                    status.error = None;
                    status.config_digest = Some(observations.config_digest.clone());
                    status.generation = Some(observations.generation);
                    status.pulls_ok += 1;
                    self.board.insert(self.node, status);
                    let report = PeerReport {
                        node: self.node,
                        observations,
                        received_at: Instant::now(),
                    };
                    if self.reports.send(report).await.is_err() {
                        return; // the publisher stopped: shutting down
                    }
                }
                Err(err) => {
                    status.error = Some(err.to_string());
                    status.pulls_failed += 1;
                    self.board.insert(self.node, status);
                }
            }
        }
    }
}

/// One GET of a peer's observations on a fresh connection.
async fn fetch(addr: SocketAddr, token: &str) -> Result<NodeObservations, PullError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| PullError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    let http = |e: hyper::Error| PullError::Http {
        addr,
        reason: e.to_string(),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let request = hyper::Request::get(OBSERVATIONS_PATH)
        .header(HOST, addr.to_string())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| PullError::Http {
            addr,
            reason: e.to_string(),
        })?;
    // The connection future is polled beside the exchange, not spawned, so
    // a timeout drops both.
    let exchange = async {
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| PullError::Http {
                addr,
                reason: e.to_string(),
            })?
            .to_bytes();
        if status != 200 {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(PullError::Status {
                addr,
                status,
                body: text,
            });
        }
        serde_json::from_slice(&body).map_err(|e| PullError::Parse {
            addr,
            reason: e.to_string(),
        })
    };
    tokio::pin!(connection);
    tokio::pin!(exchange);
    tokio::select! {
        result = &mut exchange => result,
        done = &mut connection => match done {
            Err(e) => Err(http(e)),
            // Closed after the response: the exchange finishes on its own.
            Ok(()) => exchange.await,
        },
    }
}
