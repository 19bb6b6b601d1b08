//! The DNS sockets: binding them, and the loops that feed them to `answer`.
//!
//! UDP: several sockets per address share the port with SO_REUSEPORT, so
//! the kernel spreads datagrams across them, and each socket has its own OS
//! thread running a blocking receive, answer, send loop. No task is spawned
//! per datagram and nothing on that loop awaits: the answer is computed
//! synchronously from one snapshot load.
//!
//! TCP: tokio tasks, one per connection, with a cap on connections, an idle
//! timeout between queries and a read timeout inside one, so a slow or
//! silent client holds one slot for a bounded time and no more. Several
//! queries may be sent on one connection.
//!
//! Shutdown: a cancellation token stops the UDP loops and the TCP accept
//! loops; open TCP connections finish the query they are answering and
//! close. A UDP thread blocks in its receive with no timeout (a timer per
//! wait costs CPU under load, and wakes idle threads for nothing); shutting
//! its socket down for reading wakes it, and it sees the token.
//!
//! A UDP thread that dies (a panic in answering) must not leave its socket
//! open: the kernel would keep handing it a share of the port's datagrams
//! with nobody reading them. Each thread owns its socket (the server keeps
//! only weak handles, to wake it at shutdown), so the socket closes with
//! the thread; the death is logged as an error and [`DnsServer::failed`]
//! completes, and `run` stops the node with an error.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::answer::Transport;
use super::answerer::{Answerer, Gatekeeper};
use super::batch;
use super::fast::ThreadCaches;
use super::rrl::RateLimiter;
use crate::metrics::{Metrics, ReplyTally};
use crate::snapshot::SnapshotStore;

/// Read buffer per TCP connection, and the replies gathered before a write.
const TCP_BUFFER: usize = 16 << 10;
/// Socket buffers large enough to ride out a burst while a thread is busy.
const SOCKET_BUFFER: usize = 4 << 20;
/// How long a UDP thread waits for a datagram before it wakes to drop a
/// snapshot replaced meanwhile (see `serve_udp`).
const UDP_IDLE_WAKE: Duration = Duration::from_secs(1);

/// The DNS sockets of one node, bound before the server starts so the
/// caller (the binary or a test) decides addresses and sees ports.
#[derive(Debug)]
pub struct DnsSockets {
    pub udp: Vec<UdpSocket>,
    pub tcp: Vec<TcpListener>,
}

impl DnsSockets {
    /// Binds UDP and TCP on each address, `udp_per_addr` UDP sockets each
    /// (0: one per core). Port 0 picks one free port shared by UDP and TCP.
    pub fn bind(addrs: &[SocketAddr], udp_per_addr: usize) -> io::Result<DnsSockets> {
        let per_addr = if udp_per_addr == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            udp_per_addr
        };
        let mut sockets = DnsSockets {
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for addr in addrs {
            let (udp, tcp) = bind_pair(*addr, per_addr)?;
            sockets.udp.extend(udp);
            sockets.tcp.push(tcp);
        }
        Ok(sockets)
    }

    /// The addresses served, one per configured address.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
}

fn bind_pair(addr: SocketAddr, per_addr: usize) -> io::Result<(Vec<UdpSocket>, TcpListener)> {
    // With port 0 the UDP port the kernel picks may be taken for TCP; try
    // a few times rather than fail.
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let first = udp_socket(addr)?;
        let port_addr = first.local_addr()?;
        match tcp_listener(port_addr) {
            Ok(tcp) => {
                let mut udp = vec![first];
                for _ in 1..per_addr {
                    udp.push(udp_socket(port_addr)?);
                }
                return Ok((udp, tcp));
            }
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no port available")))
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    // Best effort: the kernel caps these at net.core.*mem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    batch::report_destinations(&socket)?;
    batch::never_fragment(&socket)?;
    // Its thread wakes this often when idle, to let go of a replaced
    // snapshot (it holds the last one it answered from).
    socket.set_read_timeout(Some(UDP_IDLE_WAKE))?;
    Ok(socket)
}

fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Limits that apply to TCP clients.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    /// How long a client may take to send the rest of a query, or to take
    /// a reply: a slow client holds its slot this long at most.
    pub read_timeout: Duration,
    pub max_connections: usize,
    /// Of those, how many one client (address, or IPv6 /64) may hold.
    pub max_per_source: usize,
    /// Queries answered on one connection before it is closed.
    pub max_queries: usize,
}

/// The running DNS server; dropped or stopped, it stops serving.
pub struct DnsServer {
    udp_threads: Vec<JoinHandle<()>>,
    /// Weak handles on the UDP sockets, to wake their threads at shutdown.
    /// Weak, because each thread owns its socket: when a thread dies, the
    /// socket closes and leaves the SO_REUSEPORT group.
    udp_sockets: Vec<Weak<UdpSocket>>,
    /// Cancelled when a UDP thread ends other than by shutdown.
    udp_died: CancellationToken,
    /// Read by the UDP threads after every receive: a plain flag, where the
    /// token's check takes a lock.
    udp_stop: Arc<AtomicBool>,
    tcp_tasks: TaskTracker,
    stop: CancellationToken,
}

impl DnsServer {
    /// Starts serving on `sockets`. Must be called inside a tokio runtime.
    pub fn start(
        sockets: DnsSockets,
        store: Arc<SnapshotStore>,
        metrics: Arc<Metrics>,
        limits: TcpLimits,
    ) -> io::Result<DnsServer> {
        let stop = CancellationToken::new();
        let mut udp_threads = Vec::new();
        let mut udp_sockets = Vec::new();
        let udp_stop = Arc::new(AtomicBool::new(false));
        let udp_died = CancellationToken::new();
        for (i, socket) in sockets.udp.into_iter().enumerate() {
            let socket = Arc::new(socket);
            udp_sockets.push(Arc::downgrade(&socket));
            let store = store.clone();
            let metrics = metrics.clone();
            let stop = udp_stop.clone();
            let died = udp_died.clone();
            let name = format!("dns-udp-{i}");
            let thread = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        serve_udp(&socket, &store, &metrics, &stop)
                    }));
                    // Closed before anyone hears of the death, so no
                    // datagram is queued on it afterwards.
                    drop(socket);
                    if let Err(panic) = served {
                        let panic = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(
                            thread = %name,
                            %panic,
                            "a DNS UDP thread died; its socket is closed and the node stops"
                        );
                        died.cancel();
                    }
                })?;
            udp_threads.push(thread);
        }
        let tcp_tasks = TaskTracker::new();
        let sources = Arc::new(SourceCounts::default());
        for listener in sockets.tcp {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let ctx = TcpContext {
                store: store.clone(),
                metrics: metrics.clone(),
                limits,
                sources: sources.clone(),
                stop: stop.clone(),
                tracker: tcp_tasks.clone(),
            };
            tcp_tasks.spawn(accept_tcp(listener, ctx));
        }
        Ok(DnsServer {
            udp_threads,
            udp_sockets,
            udp_died,
            udp_stop,
            tcp_tasks,
            stop,
        })
    }

    /// Completes when a UDP thread has died (and its socket is closed):
    /// the node is serving with fewer threads than it was given and should
    /// stop. Pending for as long as every thread runs.
    pub async fn failed(&self) {
        self.udp_died.cancelled().await;
    }

    /// Stops reading new queries, lets open TCP queries finish, and waits
    /// for every loop to end.
    pub async fn shutdown(mut self) {
        self.stop_reading();
        self.tcp_tasks.close();
        self.tcp_tasks.wait().await;
        let threads = std::mem::take(&mut self.udp_threads);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

impl DnsServer {
    fn stop_reading(&self) {
        self.stop.cancel();
        self.udp_stop.store(true, Ordering::Release);
        // A socket whose thread died is already closed.
        for socket in self.udp_sockets.iter().filter_map(Weak::upgrade) {
            // Unconnected UDP reports ENOTCONN here, yet Linux still marks
            // the socket shut and wakes its reader, which is all we need.
            let _ = socket2::SockRef::from(&*socket).shutdown(std::net::Shutdown::Read);
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop_reading();
    }
}

fn serve_udp(socket: &UdpSocket, store: &SnapshotStore, metrics: &Metrics, stop: &AtomicBool) {
    let mut limiter = RateLimiter::new();
    let mut caches = ThreadCaches::new();
    let mut batch = batch::Batch::new();
    let mut tally = metrics.dns.thread_tally();
    let mut snapshots = store.cache();
    while !stop.load(Ordering::Acquire) {
        let received = batch.receive(socket);
        if stop.load(Ordering::Acquire) {
            // Woken by the shutdown, or a last batch arriving with it.
            break;
        }
        let received = match received {
            Ok(n) => n,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                // Idle: let go of a snapshot replaced since the last batch.
                snapshots.load();
                continue;
            }
            Err(err) => {
                tracing::warn!(%err, "udp receive failed");
                continue;
            }
        };
        // One snapshot for the whole batch: a swap lands between batches.
        let snapshot = snapshots.load();
        // Queries queued behind each other while the memo is meeting new
        // networks (a quarter of a batch's worth since the last batch): a
        // flood's queries find their memo sets far out of cache, and
        // fetched all at once they arrive together. Otherwise the sets in
        // use are in cache and the guesses would cost for nothing.
        if received > 1 && caches.memo.take_network_misses() * 4 >= received {
            for request in batch.requests(received) {
                caches.prefetch_for(request);
            }
            metrics.dns.prefetched_batch();
        }
        let mut answerer = Answerer {
            caches: &mut caches,
            gatekeeper: Gatekeeper {
                snapshot,
                metrics,
                // The clock is read only when rate limiting is on.
                limiter: snapshot
                    .config
                    .server
                    .rrl
                    .is_some()
                    .then(|| (&mut limiter, Instant::now())),
                tally: &mut tally,
                gather: received > 1,
            },
        };
        let truncated = batch.reply_each(socket, received, |request, source, out| {
            #[cfg(test)]
            tests::poison(request);
            answerer.answer(request, Transport::Udp, source, out)
        });
        if truncated > 0 {
            metrics.dns.truncated_for_link(truncated);
        }
        // A batch of one added its answer counts at once (`gather`).
        if received > 1 {
            tally.flush(&metrics.dns, &snapshot.answer_counters);
        }
    }
}

/// What every TCP connection task shares.
#[derive(Clone)]
struct TcpContext {
    store: Arc<SnapshotStore>,
    metrics: Arc<Metrics>,
    limits: TcpLimits,
    sources: Arc<SourceCounts>,
    stop: CancellationToken,
    tracker: TaskTracker,
}

async fn accept_tcp(listener: tokio::net::TcpListener, ctx: TcpContext) {
    let stop = ctx.stop.clone();
    let slots = Arc::new(Semaphore::new(ctx.limits.max_connections));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    tracing::warn!(%err, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(source_slot) = ctx.sources.admit(peer.ip(), ctx.limits.max_per_source) else {
            // Closed at once: this client already holds its share.
            ctx.metrics.dns.tcp_refused();
            continue;
        };
        let conn = ctx.clone();
        ctx.tracker.spawn(async move {
            if let Err(err) = serve_tcp(stream, &conn).await {
                tracing::debug!(%err, %peer, "tcp connection ended");
            }
            drop((permit, source_slot));
        });
    }
}

/// Open TCP connections per client. Touched once per connection, never
/// per query, so a lock is fine here.
#[derive(Debug, Default)]
struct SourceCounts(Mutex<HashMap<IpAddr, usize>>);

impl SourceCounts {
    /// A slot for a new connection from `peer`, unless it holds `limit`.
    fn admit(self: &Arc<Self>, peer: IpAddr, limit: usize) -> Option<SourceSlot> {
        let source = source_key(peer);
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let open = counts.entry(source).or_default();
        if *open >= limit {
            return None;
        }
        *open += 1;
        Some(SourceSlot {
            counts: self.clone(),
            source,
        })
    }
}

/// One connection's place in its client's count, given back on drop.
struct SourceSlot {
    counts: Arc<SourceCounts>,
    source: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = counts.get_mut(&self.source) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

/// Whom a connection counts against: an IPv4 address, or an IPv6 /64
/// (one host usually has a whole /64 to pick addresses from).
fn source_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !(u128::MAX >> 64)).into()),
        },
        v4 => v4,
    }
}

thread_local! {
    /// Routing decisions and kept replies for the TCP connections a
    /// runtime thread serves.
    static TCP_CACHES: RefCell<ThreadCaches> = RefCell::new(ThreadCaches::new());
    /// Their reply counts, in cells registered with the server whose
    /// connections the thread polls, as a UDP thread's are: `/metrics`
    /// reads them where they are. (An unregistered tally moved every cell,
    /// hundreds, into the shared ones after each query: about a quarter of
    /// a TCP answer's CPU.)
    static TCP_TALLY: RefCell<ReplyTally> = RefCell::new(ReplyTally::default());
}

/// Answers one TCP query into `reply`; false: close the connection.
fn answer_tcp(query: &[u8], peer: IpAddr, ctx: &TcpContext, reply: &mut Vec<u8>) -> bool {
    let snapshot = ctx.store.load();
    TCP_TALLY.with_borrow_mut(|tally| {
        if !tally.is_registered_with(&ctx.metrics.dns) {
            // The thread's first TCP query for this server (a process may
            // run more than one, as the tests do): the replaced tally, if
            // registered, folds its counts into its own server's.
            *tally = ctx.metrics.dns.thread_tally();
        }
        let answered = TCP_CACHES.with_borrow_mut(|caches| {
            Answerer {
                caches,
                gatekeeper: Gatekeeper {
                    snapshot: &snapshot,
                    metrics: &ctx.metrics,
                    limiter: None,
                    tally,
                    gather: false,
                },
            }
            .answer(query, Transport::Tcp, &peer, reply)
        });
        tally.flush(&ctx.metrics.dns, &snapshot.answer_counters);
        answered
    })
}

/// Writes the framed replies gathered so far.
async fn flush(
    writer: &mut (impl tokio::io::AsyncWrite + Unpin),
    pending: &mut Vec<u8>,
    limits: &TcpLimits,
) -> io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    tokio::time::timeout(limits.read_timeout, writer.write_all(pending))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "reply not taken in time"))??;
    pending.clear();
    Ok(())
}

async fn serve_tcp(mut stream: tokio::net::TcpStream, ctx: &TcpContext) -> io::Result<()> {
    let peer = stream.peer_addr()?.ip();
    let (limits, stop) = (ctx.limits, &ctx.stop);
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.split();
    // A client pipelining queries sends many per segment: one read takes
    // them all, and their replies leave in one write once no further
    // query is waiting in the buffer.
    let mut reader = tokio::io::BufReader::with_capacity(TCP_BUFFER, reader);
    let mut pending = Vec::with_capacity(TCP_BUFFER);
    let (mut query, mut reply) = (Vec::new(), Vec::new());
    let mut len_buf = [0u8; 2];
    let mut answered = 0usize;
    loop {
        if reader.buffer().is_empty() {
            flush(&mut writer, &mut pending, &limits).await?;
        }
        // Between queries: wait for the next one, the idle timeout or shutdown.
        let first = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            read = tokio::time::timeout(limits.idle_timeout, reader.read(&mut len_buf[..1])) => match read {
                Err(_) => break,
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => n,
                Ok(Err(err)) => return Err(err),
            },
        };
        debug_assert_eq!(first, 1);
        // Inside a query: the rest must arrive promptly, shutdown or not.
        tokio::time::timeout(limits.read_timeout, async {
            reader.read_exact(&mut len_buf[1..]).await?;
            query.resize(usize::from(u16::from_be_bytes(len_buf)), 0);
            reader.read_exact(&mut query).await
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "query not completed in time"))??;
        if !answer_tcp(&query, peer, ctx, &mut reply) {
            // Nothing sensible to say; a TCP client sending garbage is closed.
            break;
        }
        pending.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        pending.extend_from_slice(&reply);
        if pending.len() >= TCP_BUFFER {
            flush(&mut writer, &mut pending, &limits).await?;
        }
        answered += 1;
        if answered >= limits.max_queries {
            break;
        }
    }
    // Replies already made are delivered before the connection closes.
    flush(&mut writer, &mut pending, &limits).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::snapshot::Snapshot;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    /// A query for a name with this label kills the UDP thread answering
    /// it: the test's stand-in for a bug in the answer path.
    const POISON: &[u8] = b"poison-udp-thread";

    pub(super) fn poison(request: &[u8]) {
        if request.windows(POISON.len()).any(|w| w == POISON) {
            panic!("poisoned query");
        }
    }

    fn query(name: &str) -> Vec<u8> {
        let mut message = Message::query();
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        message.to_vec().unwrap()
    }

    /// Whether a query from a new socket (a new source port, so the kernel
    /// may pick any of the port's sockets) is answered within 2 s.
    fn answered(server: SocketAddr) -> bool {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        client.send_to(&query("a.test."), server).unwrap();
        client.recv(&mut [0u8; 512]).is_ok()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_udp_thread_closes_its_socket_and_is_reported() {
        let text = "[domain]\nname = \"test.\"\n\n[[domain.nameservers]]\nname = \"ns1\"\n\
                    addresses = [\"192.0.2.53\"]\n\n[[records]]\nname = \"a\"\ntype = \"A\"\n\
                    data = \"192.0.2.1\"\n";
        let config = Arc::new(Config::parse(text, std::path::Path::new("t.toml")).unwrap());
        let metrics = Arc::new(Metrics::default());
        let counters = metrics.answer_counters(&config);
        let snapshot = Snapshot::initial(config, Default::default(), None, counters);
        let store = Arc::new(SnapshotStore::new(snapshot));
        let sockets = DnsSockets::bind(&["127.0.0.1:0".parse().unwrap()], 2).unwrap();
        let addr = sockets.local_addrs()[0];
        let limits = TcpLimits {
            idle_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            max_connections: 4,
            max_per_source: 4,
            max_queries: 10,
        };
        let server = DnsServer::start(sockets, store, metrics, limits).unwrap();
        let before = tokio::task::spawn_blocking(move || answered(addr))
            .await
            .unwrap();
        assert!(before, "the server answers");

        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .send_to(&query("poison-udp-thread.test."), addr)
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), server.failed())
            .await
            .expect("a dead UDP thread is reported");

        // The dead thread's socket left the port's group: every query from
        // 40 different source ports lands on the live thread. (Had it stayed
        // open, about half would be queued on it and never answered.)
        let unanswered =
            tokio::task::spawn_blocking(move || (0..40).filter(|_| !answered(addr)).count())
                .await
                .unwrap();
        assert_eq!(unanswered, 0, "queries lost to the dead thread's socket");
        tokio::time::timeout(Duration::from_secs(5), server.shutdown())
            .await
            .expect("the server still shuts down");
    }
}
