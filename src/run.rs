//! Starting and stopping a node over sockets the caller already bound.
//!
//! Binding is separate from running so the binary binds what the config
//! (or its flags) says and tests bind ephemeral ports, and both then run
//! the very same server.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::dns::{DnsServer, DnsSockets, TcpLimits};
use crate::snapshot::SnapshotStore;

/// A node's bound sockets.
#[derive(Debug)]
pub struct Listeners {
    pub dns: DnsSockets,
    pub admin: Option<std::net::TcpListener>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot bind DNS address {addr}: {source}; pick a free port or stop what holds it")]
    BindDns {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot bind admin address {addr}: {source}; pick a free port or stop what holds it")]
    BindAdmin {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot start serving: {0}")]
    Start(#[source] io::Error),
}

impl Listeners {
    /// Binds the config's DNS and admin addresses.
    pub fn bind(config: &Config) -> Result<Listeners, RunError> {
        let settings = &config.server;
        let mut dns = DnsSockets {
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for addr in &settings.dns {
            let bound = DnsSockets::bind(&[*addr], settings.udp_sockets).map_err(|source| {
                RunError::BindDns {
                    addr: *addr,
                    source,
                }
            })?;
            dns.udp.extend(bound.udp);
            dns.tcp.extend(bound.tcp);
        }
        let admin = match settings.admin {
            None => None,
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|source| RunError::BindAdmin { addr, source })?;
                listener
                    .set_nonblocking(true)
                    .map_err(|source| RunError::BindAdmin { addr, source })?;
                Some(listener)
            }
        };
        Ok(Listeners { dns, admin })
    }
}

/// Serves `config` on `listeners` until `shutdown` completes, then stops
/// reading queries, finishes the ones in flight and returns.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let settings = config.server.clone();
    let domain = config.domain.name.to_string();
    let store = Arc::new(SnapshotStore::new(Arc::new(config)));
    let dns_addrs = listeners.dns.local_addrs();
    let dns = DnsServer::start(
        listeners.dns,
        store.clone(),
        TcpLimits {
            idle_timeout: settings.tcp_idle_timeout,
            max_connections: settings.tcp_max_connections,
        },
    )
    .map_err(RunError::Start)?;

    let admin_stop = tokio_util::sync::CancellationToken::new();
    let admin_task = match listeners.admin {
        None => None,
        Some(listener) => {
            let addr = listener.local_addr().ok();
            let listener = tokio::net::TcpListener::from_std(listener).map_err(RunError::Start)?;
            let app = crate::admin::router(store.clone());
            let stop = admin_stop.clone();
            tracing::info!(admin = ?addr, "admin endpoint listening");
            Some(tokio::spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(err) = served {
                    tracing::error!(%err, "admin endpoint failed");
                }
            }))
        }
    };
    tracing::info!(%domain, dns = ?dns_addrs, "serving");

    shutdown.await;
    tracing::info!("shutting down: no new queries; finishing those in flight");
    dns.shutdown().await;
    admin_stop.cancel();
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}
