//! Starting and stopping a node over sockets the caller already bound.
//!
//! Binding is separate from running so the binary binds what the config
//! (or its flags) says and tests bind ephemeral ports, and both then run
//! the very same server. A service manager that passed `NOTIFY_SOCKET`
//! hears `READY=1` only once the sockets are bound and the first snapshot
//! serves, and `STOPPING=1` when shutdown begins.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use std::time::SystemTime;

use crate::admin::AdminState;
use crate::config::Config;
use crate::dns::{DnsServer, DnsSockets, TcpLimits};
use crate::health::drains::DrainsError;
use crate::metrics::Metrics;
use crate::publisher::{Publisher, PublisherHandle, load_drains, open_geoip};
use crate::snapshot::{Snapshot, SnapshotStore};

/// A node's bound sockets.
#[derive(Debug)]
pub struct Listeners {
    pub dns: DnsSockets,
    pub admin: Option<std::net::TcpListener>,
}

/// Why a node could not start.
///
/// Messages include the underlying error, which is therefore not also the
/// `source()`: `main` prints the whole chain, and the cause would appear
/// twice.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot bind DNS address {addr}: {cause}; pick a free port or stop what holds it")]
    BindDns { addr: SocketAddr, cause: io::Error },
    #[error("cannot bind admin address {addr}: {cause}; pick a free port or stop what holds it")]
    BindAdmin { addr: SocketAddr, cause: io::Error },
    #[error("cannot start serving: {0}")]
    Start(io::Error),
    #[error(transparent)]
    State(#[from] DrainsError),
    #[error(transparent)]
    Node(#[from] crate::config::NodeError),
    #[error(transparent)]
    Geo(#[from] crate::routing::geo::GeoError),
    #[error(
        "a DNS UDP thread died (its error is logged above), so the node stopped rather than serve on fewer threads; restart it, and report the error"
    )]
    UdpThreadDied,
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
            let bound = DnsSockets::bind(&[*addr], settings.udp_sockets)
                .map_err(|cause| RunError::BindDns { addr: *addr, cause })?;
            dns.udp.extend(bound.udp);
            dns.tcp.extend(bound.tcp);
        }
        let admin = match settings.admin {
            None => None,
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|cause| RunError::BindAdmin { addr, cause })?;
                listener
                    .set_nonblocking(true)
                    .map_err(|cause| RunError::BindAdmin { addr, cause })?;
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
    if !config.cluster.nodes.is_empty() && config.cluster.this_node.is_none() {
        return Err(RunError::Node(crate::config::NodeError::Unnamed {
            file: config.source.display().to_string(),
            count: config.cluster.nodes.len(),
        }));
    }
    let config = Arc::new(config);
    let settings = config.server.clone();
    let domain = config.domain.name.to_string();
    // A state file we cannot read would silently undrain zones: refuse.
    let drains = load_drains(&config)?;
    if !drains.zones.is_empty() || !drains.endpoints.is_empty() {
        let zones: Vec<&str> = drains.zones.iter().map(String::as_str).collect();
        tracing::info!(
            zones = %zones.join(" "),
            endpoints = drains.endpoints.len(),
            "drains restored from state file"
        );
    }
    for zone in drains.unknown_zones(&config) {
        tracing::warn!(
            zone = %zone,
            "the state file drains a zone the config does not have; the drain does nothing (undrain it through the admin API to drop it)"
        );
    }
    for endpoint in drains.unknown_endpoints(&config) {
        tracing::warn!(
            endpoint = %endpoint,
            "the state file drains an endpoint the config does not have; the drain does nothing (remove it from the file)"
        );
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let geo = open_geoip(&config)?;
    if let Some(db) = &geo {
        tracing::info!(geoip = %db.description(), "GeoIP database loaded");
    }
    let metrics = Arc::new(Metrics::default());
    metrics.set_probe_metrics_by_zone(config.server.probe_metrics_by_zone);
    metrics.config_loaded();
    let store = Arc::new(SnapshotStore::new(Snapshot::initial(
        config.clone(),
        drains.clone(),
        geo,
        metrics.answer_counters(&config),
    )));
    metrics.snapshot_published(store.load().generation);
    let board = Arc::new(crate::health::initial_board(&config, SystemTime::now()));
    let (publisher, publisher_handle) =
        Publisher::new(store.clone(), metrics.clone(), drains, board.clone());
    let events = publisher.events();
    let stop = tokio_util::sync::CancellationToken::new();
    let pulls = Arc::new(crate::cluster::pull::PullBoard::new());
    // Membership is read once: pullers follow the nodes listed at start.
    let pullers = crate::cluster::pull::start(
        &config.cluster,
        pulls.clone(),
        publisher.peer_sender(),
        stop.clone(),
    );
    if let Some(node) = config.cluster.this_name() {
        tracing::info!(
            node,
            peers = config.cluster.nodes.len() - 1,
            pull_interval_ms = config.cluster.pull_interval.as_millis() as u64,
            "cluster member"
        );
    }
    let publisher_task = tokio::spawn(publisher.run(stop.clone()));
    let reload_task = tokio::spawn(reload_on_sighup(publisher_handle.clone(), stop.clone()));

    let dns_addrs = listeners.dns.local_addrs();
    let dns = DnsServer::start(
        listeners.dns,
        store.clone(),
        metrics.clone(),
        TcpLimits {
            idle_timeout: settings.tcp_idle_timeout,
            read_timeout: settings.tcp_read_timeout,
            max_connections: settings.tcp_max_connections,
            max_per_source: settings.tcp_max_connections_per_source,
            max_queries: settings.tcp_max_queries,
        },
    )
    .map_err(RunError::Start)?;

    let admin_task = match listeners.admin {
        None => None,
        Some(listener) => {
            let addr = listener.local_addr().map_err(RunError::Start)?;
            let listener = tokio::net::TcpListener::from_std(listener).map_err(RunError::Start)?;
            let app = crate::admin::router(AdminState {
                store: store.clone(),
                board: board.clone(),
                metrics: metrics.clone(),
                publisher: publisher_handle.clone(),
                pulls: pulls.clone(),
                events: events.clone(),
            });
            let stop = stop.clone();
            tracing::info!(admin = %addr, "admin endpoint listening");
            Some(tokio::spawn(async move {
                let served = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
                if let Err(err) = served {
                    tracing::error!(%err, "admin endpoint failed");
                }
            }))
        }
    };
    let dns_addrs: Vec<String> = dns_addrs.iter().map(ToString::to_string).collect();
    tracing::info!(%domain, dns = %dns_addrs.join(" "), "serving");
    // The sockets are bound and the first snapshot is live: a service
    // manager waiting on us (systemd's Type=notify) may now send traffic.
    notify_service_manager("READY=1");

    let udp_died = tokio::select! {
        _ = shutdown => false,
        _ = dns.failed() => true,
    };
    tracing::info!("shutting down: no new queries; finishing those in flight");
    notify_service_manager("STOPPING=1");
    stop.cancel();
    dns.shutdown().await;
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    let _ = reload_task.await;
    pullers.wait().await;
    // The publisher stops its probes before it returns.
    let _ = publisher_task.await;
    tracing::info!("stopped");
    if udp_died {
        return Err(RunError::UdpThreadDied);
    }
    Ok(())
}

/// Sends `state` to the service manager over the datagram socket named by
/// `NOTIFY_SOCKET` (the sd_notify protocol: a path, or `@name` for Linux's
/// abstract namespace). Nothing without the variable; a failure is logged
/// and otherwise ignored, since serving matters more than telling.
pub fn notify_service_manager(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(err) = send_notification(&socket, state) {
        tracing::warn!(%err, socket = ?socket, state, "cannot notify the service manager");
    }
}

fn send_notification(socket: &std::ffi::OsStr, state: &str) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sender.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sender.send_to(state.as_bytes(), std::path::Path::new(socket))?;
    }
    Ok(())
}

/// SIGHUP re-reads the config, like `POST /v1/reload`.
async fn reload_on_sighup(publisher: PublisherHandle, stop: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload through the admin API");
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = hangup.recv() => {
                tracing::info!(signal = "SIGHUP", "config reload requested");
                // The publisher logs the outcome.
                let _ = publisher.reload().await;
            }
        }
    }
}
