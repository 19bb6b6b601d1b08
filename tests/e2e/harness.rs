//! Starts real Meridian nodes on ephemeral loopback ports and talks to them
//! over real UDP and TCP sockets.
//!
//! Each [`Node`] runs the library's `run` on its own thread with its own
//! runtime, exactly as the binary does, so tests can use plain blocking
//! sockets and tools like `dig`. Dropping a node shuts it down.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use meridian::config::Config;
use meridian::dns::DnsSockets;
use meridian::{Listeners, run};

/// The shipped example with `www` answering every endpoint (policy
/// `all`): DNS behaviour tests look at whole record sets, not routing.
/// Three zones with the places and countries the GeoIP tests' generated
/// databases use: us-east (US), eu-west (IE), ap-south (IN).
pub const GEO_ZONES: &str = r#"[[zones]]
name = "us-east"
latitude = 38.9
longitude = -77.4
continent = "NA"
country = "US"

[[zones]]
name = "eu-west"
latitude = 53.3
longitude = -6.3
continent = "EU"
country = "IE"

[[zones]]
name = "ap-south"
latitude = 19.1
longitude = 72.9
continent = "AS"
country = "IN"
"#;

pub fn all_policy_example() -> String {
    let text = example_config_text();
    assert!(
        text.contains("policy = \"nearest\""),
        "the example's policy changed"
    );
    text.replace("policy = \"nearest\"", "policy = \"all\"")
}

/// The example shipped in `zones/`, so tests check what operators run.
/// Its relative GeoIP path is made absolute, so the text can be started
/// from any directory.
pub fn example_config_text() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join("zones/example.toml"))
        .expect("zones/example.toml is readable")
        .replace("\"../geo/", &format!("\"{}/geo/", root.display()))
}

thread_local! {
    /// Set while a test runs against the general answer path only.
    static GENERAL_PATH_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `test` with every node it starts on this thread answering on the
/// general path (`fast_path = false`), so one test body checks both paths.
pub fn on_general_path(test: fn()) {
    GENERAL_PATH_ONLY.with(|only| only.set(true));
    test();
}

/// Whether nodes started on this thread use the fast path.
pub fn fast_path_on() -> bool {
    !GENERAL_PATH_ONLY.with(|only| only.get())
}

/// Repeats the named tests of the calling module with the fast path off,
/// as `general_path::<name>`: the wire suite holds for both answer paths.
#[macro_export]
macro_rules! also_on_general_path {
    ($($test:ident),* $(,)?) => {
        mod general_path {
            $(
                #[test]
                fn $test() {
                    $crate::harness::on_general_path(super::$test);
                }
            )*
        }
    };
}

pub struct Node {
    pub dns: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The node's private directory, removed when it stops.
    dir: Option<std::path::PathBuf>,
}

impl Node {
    /// Starts a node serving `config_text` on 127.0.0.1 with ephemeral
    /// DNS (UDP+TCP) and admin ports. The config is read as if it lived in
    /// a fresh temporary directory, so relative files it names (the state
    /// file) are private to this node and never land in the source tree.
    pub fn start(config_text: &str) -> Node {
        let dir = private_dir();
        let config = Config::parse(config_text, &dir.join("test.toml"))
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let mut node = Node::start_config(config);
        node.dir = Some(dir);
        node
    }

    /// The shipped example as operators run it: read from `zones/` so its
    /// relative paths (the GeoIP database in `geo/`) resolve, with the
    /// state file moved to a private directory.
    pub fn start_example() -> Node {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.toml");
        let mut config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let dir = private_dir();
        config.server.state_file = Some(dir.join("state.json"));
        let mut node = Node::start_config(config);
        node.dir = Some(dir);
        node
    }

    /// Starts a node from a config file, so it can be reloaded from it.
    pub fn start_file(path: &Path) -> Node {
        let config = Config::load(path).unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        Node::start_config(config)
    }

    pub fn start_config(config: Config) -> Node {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let dns = DnsSockets::bind(&[any], 2).expect("bind DNS sockets");
        let admin = std::net::TcpListener::bind(any).expect("bind admin");
        admin.set_nonblocking(true).unwrap();
        Node::start_on(
            config,
            Listeners {
                dns,
                admin: Some(admin),
            },
        )
    }

    /// The value of an unlabelled metric from `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let text = reqwest::blocking::get(format!("http://{}/metrics", self.admin))
            .and_then(|r| r.text())
            .expect("metrics are served");
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found in:\n{text}"))
    }

    /// Sends raw bytes over UDP and returns the raw reply, or `None` if
    /// nothing came back within `wait`.
    pub fn udp_raw(&self, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(wait)).unwrap();
        socket.send_to(bytes, self.dns).unwrap();
        let mut buf = vec![0u8; 65535];
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    /// Sends a query over UDP and parses the reply; panics on no reply.
    pub fn udp(&self, query: &Message) -> Message {
        let reply = self
            .udp_raw(&query.to_vec().unwrap(), Duration::from_secs(5))
            .expect("a UDP reply within 5 s");
        let reply = Message::from_vec(&reply).expect("reply parses");
        assert_eq!(reply.id, query.id, "reply ID matches the query's");
        reply
    }

    /// Sends raw bytes as one query over a new TCP connection and returns
    /// the raw reply.
    pub fn tcp_raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = self.tcp_connect();
        tcp_send(&mut stream, bytes);
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).expect("reply length");
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).expect("reply body");
        reply
    }

    /// Opens a TCP connection to the node's DNS port.
    pub fn tcp_connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.dns).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    }

    /// One query over a new TCP connection.
    pub fn tcp(&self, query: &Message) -> Message {
        let mut stream = self.tcp_connect();
        tcp_exchange(&mut stream, query)
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("node thread exits cleanly");
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A new, empty directory for one node's files.
pub fn private_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("meridian-e2e-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a private test directory");
    dir
}

/// Sends one framed query on an open TCP connection and reads the reply.
pub fn tcp_exchange(stream: &mut TcpStream, query: &Message) -> Message {
    let bytes = query.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("reply length");
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).expect("reply body");
    let reply = Message::from_vec(&reply).expect("reply parses");
    assert_eq!(reply.id, query.id);
    reply
}

/// Set in the environment of the copy of the test binary that runs one
/// test inside a private network namespace.
const IN_NETNS: &str = "MERIDIAN_E2E_IN_NETNS";
/// Printed by that copy once the namespace is set up.
const NETNS_READY: &str = "meridian-e2e: netns ready";

/// For a test that needs a network of its own (a non-loopback address,
/// another MTU): runs test `name` (its path in this binary) again inside a
/// private network namespace (`unshare --user --map-root-user --net`, no
/// privileges needed where user namespaces are allowed; no traffic leaves
/// it). In that copy, runs `ip` with each of `setup` and gives true: the
/// caller then runs the test's body. Outside, gives false once the copy
/// passed, and panics with its output if it did not. Where no namespace
/// can be made, that is said on stderr and the test checks nothing, except
/// under CI, where it fails.
pub fn in_private_netns(name: &str, setup: &[&[&str]]) -> bool {
    if std::env::var_os(IN_NETNS).is_some() {
        for args in setup {
            let status = std::process::Command::new("ip")
                .args(*args)
                .status()
                .expect("run ip");
            assert!(status.success(), "ip {args:?}");
        }
        println!("{NETNS_READY}");
        return true;
    }
    let ci = std::env::var_os("CI").is_some();
    let exe = std::env::current_exe().unwrap();
    let run = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--net"])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1")
        .output();
    let out = match run {
        Ok(out) => out,
        Err(e) if !ci => {
            eprintln!("SKIPPED: {name}: cannot run unshare ({e})");
            return false;
        }
        Err(e) => panic!("cannot run unshare ({e}); CI needs util-linux"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stdout.contains(NETNS_READY) {
        // The namespace itself could not be made: an environment limit.
        assert!(
            !ci,
            "no private network namespace under CI:\n{stdout}\n{stderr}"
        );
        eprintln!("SKIPPED: {name}: no private network namespace here\n{stderr}");
        return false;
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inside the namespace:\n{stdout}\n{stderr}"
    );
    false
}

/// Finds `tool` on PATH for a test that drives it (dig, kdig, promtool).
///
/// Missing under `CI=true`: the test fails (`.ci/run` installs `package`).
/// Missing elsewhere: `None`, and the caller returns at once. libtest
/// cannot mark a test ignored once it runs, so such a test is reported
/// as `ok` having checked nothing; to make that visible, a line
/// `SKIPPED: <test> (<tool> not installed)` goes straight to the
/// process's stderr (past libtest's capture), and a count of the skipped
/// tests is printed again when the test binary exits.
pub fn require_tool(tool: &str, package: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|path| path.is_file())
    });
    if found.is_some() {
        return found;
    }
    if std::env::var("CI").is_ok_and(|ci| !ci.is_empty() && ci != "false") {
        panic!("`{tool}` is not on PATH and CI is set: install {package}");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let line = format!("SKIPPED: {test} ({tool} not installed; apt-get install {package})");
    // Written to the real stderr, not through eprintln!, which libtest
    // captures and shows only for failing tests.
    let _ = writeln!(std::io::stderr(), "{line}");
    SKIPPED.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    static SUMMARY: std::sync::Once = std::sync::Once::new();
    SUMMARY.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn` with no arguments; it
        // runs once, at process exit, after libtest has printed its result.
        unsafe {
            libc::atexit(print_skipped);
        }
    });
    None
}

/// The tests that ran nothing because a tool was missing.
static SKIPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

extern "C" fn print_skipped() {
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    skipped.sort();
    let mut out = std::io::stderr();
    let _ = writeln!(
        out,
        "\n{} end-to-end test(s) SKIPPED (counted as passed above; \
         CI=true makes a missing tool a failure):",
        skipped.len()
    );
    for line in skipped.iter() {
        let _ = writeln!(out, "  {line}");
    }
}

/// How a TCP connection the server is expected to close ended, as the
/// client sees it. A read timeout is `StillOpen`, never a close: a server
/// that keeps the connection must fail the test, not pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The server closed it: the read returned 0 bytes.
    Eof,
    /// The server reset it (it closed with data unread, or it was gone).
    Reset,
    /// Bytes arrived: the server is still talking on it.
    Data(usize),
    /// Nothing within the wait: the connection is still open.
    StillOpen,
}

/// One read on `stream`, waiting at most `within`, sorted into an [`Ending`].
pub fn read_ending(stream: &mut TcpStream, within: Duration) -> Ending {
    use std::io::ErrorKind;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => Ending::Eof,
        Ok(n) => Ending::Data(n),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Ending::StillOpen
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            ) =>
        {
            Ending::Reset
        }
        Err(e) => panic!("unexpected error reading a TCP connection: {e}"),
    }
}

/// Asserts the server closed `stream` (EOF or reset) within `within`, with
/// nothing more said on it.
pub fn assert_closed_by_server(stream: &mut TcpStream, within: Duration, what: &str) {
    let ending = read_ending(stream, within);
    assert!(
        matches!(ending, Ending::Eof | Ending::Reset),
        "{what}: expected the server to close the connection within {within:?}, got {ending:?}"
    );
}

/// Reads and discards whatever the server still sends until it closes
/// `stream`, for at most `within` in all; the ending is `StillOpen` if it
/// never closed.
pub fn drain_until_closed(stream: &mut TcpStream, within: Duration) -> Ending {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ending::StillOpen;
        }
        match read_ending(stream, left) {
            Ending::Data(_) => continue,
            ending => return ending,
        }
    }
}

/// The ARCOUNT of a raw message: the parser moves the OPT out of the
/// additional section, so only the header says whether one was sent.
pub fn arcount(wire: &[u8]) -> u16 {
    u16::from_be_bytes([wire[10], wire[11]])
}

/// A query for `name`/`qtype` with RD set, like a stub would send, no EDNS.
pub fn query(name: &str, qtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message
}

/// The same with an EDNS OPT advertising `payload` bytes.
pub fn query_edns(name: &str, qtype: RecordType, payload: u16) -> Message {
    let mut message = query(name, qtype);
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    message.set_edns(edns);
    message
}

/// The shipped example with `extra` TOML appended, for tests that need a
/// few more records (delegations, CNAME chains, large sets) than it has.
pub fn example_with(extra: &str) -> String {
    format!("{}\n{extra}\n", all_policy_example())
}

/// Writes one length-framed message on an open TCP connection.
pub fn tcp_send(stream: &mut TcpStream, bytes: &[u8]) {
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).unwrap();
}

/// Reads one length-framed reply from an open TCP connection and parses it.
pub fn tcp_recv(stream: &mut TcpStream) -> Message {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("reply length");
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).expect("reply body");
    Message::from_vec(&reply).expect("reply parses")
}

/// The example plus two TXT sets for truncation tests. `big`: 20 TXT
/// records of ~100 bytes (~2.3 kB of answer, more than the
/// 1232-byte EDNS limit); `medium`: 6 of them (~700 bytes, more than 512 but
/// within 1232).
pub fn large_txt_config() -> String {
    let strings = |n: usize| -> String {
        (0..n)
            .map(|i| format!("\"record {i:02} {}\"", "x".repeat(90)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    example_with(&format!(
        "[[records]]\nname = \"big\"\ntype = \"TXT\"\ndata = [{}]\n\n\
         [[records]]\nname = \"medium\"\ntype = \"TXT\"\ndata = [{}]\n",
        strings(20),
        strings(6)
    ))
}

impl Node {
    /// Starts a node on sockets the test bound itself: `Listeners::bind`
    /// of the config (so `udp_sockets` applies as in the binary), or an
    /// admin address other than 127.0.0.1. `config.server.dns` and `admin`
    /// are set to what was bound.
    pub fn start_on(mut config: Config, listeners: Listeners) -> Node {
        if GENERAL_PATH_ONLY.with(|only| only.get()) {
            config.server.fast_path = false;
        }
        let dns_addr = listeners.dns.local_addrs()[0];
        let admin_addr = listeners
            .admin
            .as_ref()
            .map(|a| a.local_addr().unwrap())
            .expect("an admin listener");
        config.server.dns = listeners.dns.local_addrs();
        config.server.admin = Some(admin_addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime
                .block_on(run(config, listeners, async {
                    let _ = stopped.await;
                }))
                .expect("node runs");
        });
        Node {
            dns: dns_addr,
            admin: admin_addr,
            stop: Some(stop),
            thread: Some(thread),
            dir: None,
        }
    }

    /// The whole `/metrics` text.
    pub fn metrics_text(&self) -> String {
        let response = reqwest::blocking::get(format!("http://{}/metrics", self.admin))
            .expect("metrics are served");
        assert_eq!(response.status().as_u16(), 200);
        response.text().expect("metrics text")
    }

    /// The value of one exactly written series (name and labels), e.g.
    /// `meridian_dns_rate_limited_total{action="dropped"}`; `None` if absent.
    pub fn series(&self, series: &str) -> Option<f64> {
        self.metrics_text()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

/// Polls `cond` every 25 ms until it holds; panics naming `what` after
/// `within` (a generous bound: behaviour, not speed, is under test).
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what}: not within {within:?}");
}

/// The addresses of the A records in a section, sorted.
pub fn a_addrs(records: &[Record]) -> Vec<String> {
    let mut addrs: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    addrs.sort();
    addrs
}

/// A TCP port that health checks of `kind = "tcp"` find open or closed: a
/// listener on a loopback address that accepts and drops connections.
/// Unlike `Backend`, the port is chosen by the test, so several addresses
/// of one endpoint (which share the check's port) can listen on it.
pub struct OpenPort {
    pub addr: SocketAddr,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OpenPort {
    /// Listens on `addr` (a loopback address; port 0 picks one).
    pub fn open(addr: SocketAddr) -> std::io::Result<OpenPort> {
        assert!(addr.ip().is_loopback(), "tests probe loopback only");
        let listener = std::net::TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                drop(stream);
            }
        });
        Ok(OpenPort {
            addr,
            running,
            thread: Some(thread),
        })
    }

    /// Listeners on the same free port at each of `ips`.
    pub fn open_all(ips: &[&str]) -> Vec<OpenPort> {
        for _ in 0..50 {
            let first = OpenPort::open(format!("{}:0", ips[0]).parse().unwrap()).unwrap();
            let port = first.addr.port();
            let rest: Result<Vec<OpenPort>, _> = ips[1..]
                .iter()
                .map(|ip| OpenPort::open(format!("{ip}:{port}").parse().unwrap()))
                .collect();
            if let Ok(rest) = rest {
                let mut all = vec![first];
                all.extend(rest);
                return all;
            }
        }
        panic!("no port free on all of {ips:?} in 50 tries");
    }

    /// Closes the port: connections are refused from now on.
    pub fn close(&mut self) {
        self.running
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }

    /// Opens the same address and port again. While it was closed, the
    /// kernel may have handed the port to another test's socket as an
    /// ephemeral source port (a probe's connection, say); those are
    /// short-lived, so the bind is retried for a while before giving up.
    pub fn reopen(&mut self) {
        assert!(self.thread.is_none(), "reopen after close");
        let start = Instant::now();
        loop {
            match OpenPort::open(self.addr) {
                Ok(port) => {
                    *self = port;
                    return;
                }
                Err(_) if start.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => panic!("rebind {}: {err}", self.addr),
            }
        }
    }
}

impl Drop for OpenPort {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.close();
        }
    }
}
