//! One probe of one endpoint address: connect, ask, judge, time it.
//!
//! This is the only place Meridian talks to the load balancers it answers
//! for. A probe returns a [`ProbeResult`] and nothing else: it keeps no
//! state between calls, logs nothing and decides no flips; the rise/fall
//! state machine and the scheduler above it do that.
//!
//! Why by hand rather than with an HTTP client library: a health probe must
//! measure one fresh attempt, and general clients are built to hide exactly
//! what we want to see (they retry, follow redirects, pool and reuse
//! connections, resume TLS sessions, honour proxy variables). Speaking
//! HTTP/1.1 directly over a [`TcpStream`] (wrapped in `tokio-rustls` for
//! HTTPS) is a few hundred lines and leaves nothing hidden.
//!
//! Invariants:
//! - **One attempt, one connection.** No retries, no redirects followed
//!   (a 3xx is just a status, judged against `expect_status`), no connection
//!   reuse (every request says `Connection: close`), no proxy, and no TLS
//!   session resumption, so every HTTPS probe times a full handshake.
//! - **One deadline.** Everything (connect, TLS handshake, request, response
//!   headers and, when needed, body) shares a single deadline of
//!   `check.timeout` from the start of the probe. A target that accepts and
//!   never answers costs exactly one timeout and is reported as
//!   [`ProbeError::Timeout`] naming the phase it was stuck in.
//! - **Timings are measured from the start of the probe**, on the monotonic
//!   clock: `connect` when the TCP handshake completed, `first_byte` when the
//!   first byte of the HTTP response arrived (so it includes connect, TLS and
//!   the server's think time). They are kept on failure as far as the probe
//!   got, so a 500 still reports how fast the server said so.
//! - **Bounded reading.** Only the status line and headers are read (at most
//!   [`MAX_HEAD`] bytes), plus at most [`MAX_BODY`] bytes of body and only
//!   when `body_contains` is set.
//! - **Only the given address is contacted.** `check.host` is used for the
//!   `Host` header and TLS SNI; it is never resolved.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use crate::config::{Check, CheckKind};

/// The most bytes of status line and headers read before giving up on a
/// response as malformed.
pub const MAX_HEAD: usize = 64 * 1024;

/// The most bytes of body searched for `body_contains`.
pub const MAX_BODY: usize = 64 * 1024;

/// The `User-Agent` every HTTP(S) probe sends.
pub const USER_AGENT: &str = "meridian-health";

/// What to probe: one address of one endpoint, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeTarget {
    pub addr: IpAddr,
    pub check: Check,
}

/// What one probe saw.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// Healthy, or why not.
    pub outcome: Result<(), ProbeError>,
    /// Time from the start of the probe until the TCP connection was
    /// established; `None` if it never was.
    pub connect: Option<Duration>,
    /// Time from the start of the probe until the first byte of the HTTP
    /// response arrived; `None` for TCP checks or if nothing arrived.
    pub first_byte: Option<Duration>,
}

impl ProbeResult {
    pub fn is_success(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The RTT to smooth: `first_byte` if present, else `connect`.
    pub fn rtt(&self) -> Option<Duration> {
        self.first_byte.or(self.connect)
    }
}

/// Why a probe failed. Messages are lowercase and say what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The address answered the TCP connect with a reset: nothing listens.
    #[error("connection refused")]
    Refused,
    /// The deadline passed. `phase` is where the probe was: `"connect"`,
    /// `"tls"`, `"request"`, `"response"` (status line and headers) or
    /// `"body"`.
    #[error("timed out during {phase}")]
    Timeout { phase: &'static str },
    /// The TCP connect failed for another reason (unreachable, ...).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The TLS handshake failed, including certificate verification.
    #[error("tls handshake failed: {0}")]
    Tls(String),
    /// Reading or writing failed after the connection was up (reset, ...).
    #[error("connection failed during {phase}: {message}")]
    Io {
        phase: &'static str,
        message: String,
    },
    /// The response is not HTTP/1.x as we understand it: malformed status
    /// line, closed before the headers ended, headers too long, truncated
    /// or malformed body framing.
    #[error("bad response: {0}")]
    BadResponse(String),
    /// A well-formed response whose status is outside `expect_status`.
    #[error("unexpected status {0}")]
    Status(u16),
    /// The first [`MAX_BODY`] bytes of the body lack `body_contains`.
    #[error("the response body does not contain the expected text")]
    BodyMismatch,
    /// The check's host or path cannot be put in a request as they are
    /// (control characters or spaces, or a host that is no TLS server name).
    #[error("the check cannot be sent: {0}")]
    InvalidCheck(String),
}

impl ProbeError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, ProbeError::Timeout { .. })
    }
}

/// Built once and shared by every probe: rustls `ClientConfig`s, one that
/// verifies certificates and one for `insecure` checks that accepts any.
///
/// Both are `Arc`s because rustls configs are immutable and costly to build
/// (the verifying one parses every root certificate); cloning this is cheap.
/// Both use the `ring` provider explicitly rather than a process-wide default,
/// so nothing needs installing at startup and another crate enabling a second
/// rustls provider cannot make construction panic.
#[derive(Debug, Clone)]
pub struct TlsConfigs {
    verifying: Arc<ClientConfig>,
    insecure: Arc<ClientConfig>,
}

impl TlsConfigs {
    /// Verifies against the Mozilla root set shipped in `webpki-roots`.
    pub fn new() -> Self {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::with_roots(roots)
    }

    /// Verifies against the given roots instead (a private CA, tests).
    pub fn with_roots(roots: RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifying = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let insecure = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth();
        TlsConfigs {
            verifying: Arc::new(probe_client_config(verifying)),
            insecure: Arc::new(probe_client_config(insecure)),
        }
    }

    fn for_check(&self, check: &Check) -> Arc<ClientConfig> {
        if check.insecure {
            self.insecure.clone()
        } else {
            self.verifying.clone()
        }
    }
}

impl Default for TlsConfigs {
    fn default() -> Self {
        Self::new()
    }
}

/// The settings every probe config shares: no session resumption (each probe
/// times a full handshake and no state is carried between probes) and ALPN
/// `http/1.1`, the only protocol we speak.
fn probe_client_config(mut config: ClientConfig) -> ClientConfig {
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Accepts any certificate for any name, for `insecure` checks. It still
/// checks the handshake signatures, so the server must hold the key of the
/// certificate it shows; it just need not be trusted or match the name.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Probes `target` once. Never panics on anything the network does, and
/// returns within `check.timeout` (plus scheduling delay).
pub async fn probe(target: &ProbeTarget, tls: &TlsConfigs) -> ProbeResult {
    let check = &target.check;
    if check.kind == CheckKind::None {
        return ProbeResult {
            outcome: Ok(()),
            connect: Some(Duration::ZERO),
            first_byte: None,
        };
    }
    let start = Instant::now();
    let mut run = Run {
        start,
        deadline: start + check.timeout,
        connect: None,
        first_byte: None,
    };
    let outcome = run.go(target, tls).await;
    ProbeResult {
        outcome,
        connect: run.connect,
        first_byte: run.first_byte,
    }
}

/// One probe in progress: the clock and what it has measured so far.
struct Run {
    start: Instant,
    deadline: Instant,
    connect: Option<Duration>,
    first_byte: Option<Duration>,
}

impl Run {
    async fn go(&mut self, target: &ProbeTarget, tls: &TlsConfigs) -> Result<(), ProbeError> {
        let check = &target.check;
        // Check what we will send before touching the network.
        let request = match check.kind {
            CheckKind::Http | CheckKind::Https => Some(request(target)?),
            CheckKind::Tcp | CheckKind::None => None,
        };
        let server_name = match check.kind {
            CheckKind::Https => Some(server_name(target)?),
            _ => None,
        };

        let addr = SocketAddr::new(target.addr, check.port);
        let tcp = self
            .phase("connect", TcpStream::connect(addr))
            .await?
            .map_err(|e| match e.kind() {
                io::ErrorKind::ConnectionRefused => ProbeError::Refused,
                _ => ProbeError::Connect(e.to_string()),
            })?;
        self.connect = Some(self.start.elapsed());
        // The request goes out in one write; no reason to let Nagle hold
        // back the TLS handshake's last flight.
        let _ = tcp.set_nodelay(true);

        let Some(request) = request else {
            return Ok(()); // TCP: connecting was the whole test.
        };
        match server_name {
            None => self.exchange(tcp, &request, check).await,
            Some(name) => {
                let connector = TlsConnector::from(tls.for_check(check));
                let stream = self
                    .phase("tls", connector.connect(name, tcp))
                    .await?
                    .map_err(|e| ProbeError::Tls(tls_message(e)))?;
                self.exchange(stream, &request, check).await
            }
        }
    }

    /// Runs `fut` until the probe's deadline, naming `phase` if it passes.
    async fn phase<F: Future>(&self, phase: &'static str, fut: F) -> Result<F::Output, ProbeError> {
        timeout_at(self.deadline, fut)
            .await
            .map_err(|_| ProbeError::Timeout { phase })
    }

    /// Sends the request and judges the response.
    async fn exchange<S>(
        &mut self,
        mut stream: S,
        request: &[u8],
        check: &Check,
    ) -> Result<(), ProbeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.phase("request", async {
            stream.write_all(request).await?;
            stream.flush().await
        })
        .await?
        .map_err(|e| io_error("request", e))?;

        let mut buf = Vec::with_capacity(4096);
        let start = self.start;
        let first_byte = &mut self.first_byte;
        let head = timeout_at(
            self.deadline,
            read_head(&mut stream, &mut buf, || {
                first_byte.get_or_insert(start.elapsed());
            }),
        )
        .await
        .map_err(|_| ProbeError::Timeout { phase: "response" })??;

        if !check.expect_status.contains(&head.status) {
            return Err(ProbeError::Status(head.status));
        }
        let Some(needle) = &check.body_contains else {
            return Ok(());
        };
        let found = self
            .phase(
                "body",
                read_body(&mut stream, buf, &head, needle.as_bytes()),
            )
            .await??;
        if found {
            Ok(())
        } else {
            Err(ProbeError::BodyMismatch)
        }
    }
}

fn io_error(phase: &'static str, e: io::Error) -> ProbeError {
    ProbeError::Io {
        phase,
        message: e.to_string(),
    }
}

/// The rustls error inside an I/O error from the handshake, if there is one.
fn tls_message(e: io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls.to_string(),
        None => e.to_string(),
    }
}

/// The request bytes: `GET path HTTP/1.1` with `Host` (check.host, else the
/// address, IPv6 in brackets; never a port, so it is exactly what the
/// operator configured),
/// `User-Agent` and `Connection: close`.
fn request(target: &ProbeTarget) -> Result<Vec<u8>, ProbeError> {
    let check = &target.check;
    let host = match &check.host {
        Some(h) => h.clone(),
        None => match target.addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        },
    };
    let unsendable = |s: &str| s.is_empty() || s.bytes().any(|b| b.is_ascii_control() || b == b' ');
    if unsendable(&host) {
        return Err(ProbeError::InvalidCheck(format!(
            "host {host:?} is empty or has spaces or control characters"
        )));
    }
    if unsendable(&check.path) {
        return Err(ProbeError::InvalidCheck(format!(
            "path {:?} is empty or has spaces or control characters",
            check.path
        )));
    }
    let slash = if check.path.starts_with('/') { "" } else { "/" };
    Ok(format!(
        "GET {slash}{path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n",
        path = check.path,
    )
    .into_bytes())
}

/// The TLS server name: `check.host` when set (a DNS name is sent as SNI; an
/// IP literal is not), else the address, which sends no SNI and verifies the
/// certificate against its IP SANs.
fn server_name(target: &ProbeTarget) -> Result<ServerName<'static>, ProbeError> {
    match &target.check.host {
        None => Ok(ServerName::IpAddress(target.addr.into())),
        Some(host) => ServerName::try_from(host.clone()).map_err(|_| {
            ProbeError::InvalidCheck(format!("host {host:?} is not a valid TLS server name"))
        }),
    }
}

/// The parts of a response head the probe uses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    status: u16,
    framing: Framing,
}

/// How the body's end is found (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body: 204, 304.
    Empty,
    Chunked,
    Length(u64),
    /// Until the server closes the connection.
    Close,
}

/// Reads the final response head, skipping interim 1xx responses. On return
/// `buf` holds whatever body bytes arrived with the head. `on_first_byte`
/// is called when any byte arrives.
async fn read_head<S, F>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    mut on_first_byte: F,
) -> Result<Head, ProbeError>
where
    S: AsyncRead + Unpin,
    F: FnMut(),
{
    loop {
        if let Some(end) = head_end(buf) {
            let head = parse_head(&buf[..end])?;
            buf.drain(..end);
            if (100..200).contains(&head.status) && head.status != 101 {
                continue; // 100 Continue, 103 Early Hints: the real answer follows.
            }
            return Ok(head);
        }
        if buf.len() >= MAX_HEAD {
            return Err(ProbeError::BadResponse(format!(
                "the headers are longer than {MAX_HEAD} bytes"
            )));
        }
        let n = read_some(stream, buf)
            .await
            .map_err(|e| io_error("response", e))?;
        if n == 0 {
            return Err(ProbeError::BadResponse(if buf.is_empty() {
                "the connection closed without a response".to_string()
            } else {
                "the connection closed before the headers ended".to_string()
            }));
        }
        on_first_byte();
    }
}

/// Appends what one read returns to `buf`; 0 means the peer closed. A TLS
/// peer that closes without `close_notify` counts as closed: for a health
/// probe a truncation attack is no concern, and many servers do it.
async fn read_some<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(e),
    }
}

/// The length of the head (through its empty line) if `buf` holds all of
/// it. Lines may end in CRLF or, leniently, a bare LF.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match &buf[nl + 1..] {
            [b'\n', ..] => return Some(nl + 2),
            [b'\r', b'\n', ..] => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// Parses a head: `HTTP/1.x SP 3DIGIT [SP reason]` and the headers that
/// frame the body. Unknown or odd header lines are ignored: the probe only
/// needs the status and the framing.
fn parse_head(head: &[u8]) -> Result<Head, ProbeError> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status_line(status_line).ok_or_else(|| {
        ProbeError::BadResponse(format!(
            "malformed status line {:?}",
            String::from_utf8_lossy(&status_line[..status_line.len().min(80)])
        ))
    })?;

    let mut chunked = false;
    let mut length: Option<u64> = None;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = String::from_utf8_lossy(&line[colon + 1..]);
        let value = value.trim();
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The last coding decides; only `chunked` can be framed.
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = value
                .parse::<u64>()
                .map_err(|_| ProbeError::BadResponse(format!("bad content-length {value:?}")))?;
            if length.is_some_and(|m| m != n) {
                return Err(ProbeError::BadResponse(
                    "conflicting content-length headers".into(),
                ));
            }
            length = Some(n);
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Head { status, framing })
}

/// The status code of an `HTTP/1.x` status line, if it is one.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let [minor, b' ', d1, d2, d3, tail @ ..] = rest else {
        return None;
    };
    if !minor.is_ascii_digit()
        || !(b'1'..=b'9').contains(d1)
        || !d2.is_ascii_digit()
        || !d3.is_ascii_digit()
    {
        return None;
    }
    if !(tail.is_empty() || tail[0] == b' ') {
        return None;
    }
    Some(u16::from(d1 - b'0') * 100 + u16::from(d2 - b'0') * 10 + u16::from(d3 - b'0'))
}

/// Searches up to [`MAX_BODY`] bytes of decoded body for `needle`, reading
/// only as far as needed. `buf` holds body bytes that came with the head.
async fn read_body<S>(
    stream: &mut S,
    mut buf: Vec<u8>,
    head: &Head,
    needle: &[u8],
) -> Result<bool, ProbeError>
where
    S: AsyncRead + Unpin,
{
    let mut search = Search::new(needle);
    if search.found {
        return Ok(true);
    }
    let closed =
        || ProbeError::BadResponse("the connection closed in the middle of the body".into());
    match head.framing {
        Framing::Empty | Framing::Length(0) => Ok(false),
        Framing::Length(len) => {
            let mut left = len;
            loop {
                let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                search.push(&buf[..take]);
                left -= take as u64;
                if search.found || search.full() || left == 0 {
                    return Ok(search.found);
                }
                buf.clear();
                if read_some(stream, &mut buf)
                    .await
                    .map_err(|e| io_error("body", e))?
                    == 0
                {
                    return Err(closed());
                }
            }
        }
        Framing::Close => loop {
            search.push(&buf);
            if search.found || search.full() {
                return Ok(search.found);
            }
            buf.clear();
            if read_some(stream, &mut buf)
                .await
                .map_err(|e| io_error("body", e))?
                == 0
            {
                return Ok(false);
            }
        },
        Framing::Chunked => {
            let mut chunks = Chunked { stream, buf };
            loop {
                let size_line = chunks.line().await?;
                let size = parse_chunk_size(&size_line).ok_or_else(|| {
                    ProbeError::BadResponse(format!(
                        "bad chunk size line {:?}",
                        String::from_utf8_lossy(&size_line)
                    ))
                })?;
                if size == 0 {
                    return Ok(false);
                }
                let mut left = size;
                while left > 0 {
                    if chunks.buf.is_empty() && chunks.fill().await? == 0 {
                        return Err(closed());
                    }
                    let take = chunks
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    search.push(&chunks.buf[..take]);
                    chunks.buf.drain(..take);
                    left -= take as u64;
                    if search.found || search.full() {
                        return Ok(search.found);
                    }
                }
                if !chunks.line().await?.is_empty() {
                    return Err(ProbeError::BadResponse(
                        "chunk data longer than its size".into(),
                    ));
                }
            }
        }
    }
}

/// A chunked body being decoded: the stream and the bytes read but not used.
struct Chunked<'a, S> {
    stream: &'a mut S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Chunked<'_, S> {
    async fn fill(&mut self) -> Result<usize, ProbeError> {
        read_some(self.stream, &mut self.buf)
            .await
            .map_err(|e| io_error("body", e))
    }

    /// The next line without its line ending.
    async fn line(&mut self) -> Result<Vec<u8>, ProbeError> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > 4096 {
                return Err(ProbeError::BadResponse("chunk size line too long".into()));
            }
            if self.fill().await? == 0 {
                return Err(ProbeError::BadResponse(
                    "the connection closed in the middle of the body".into(),
                ));
            }
        }
    }
}

/// The size of a chunk from its size line (`1a;ext=v`).
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let hex = std::str::from_utf8(&line[..end]).ok()?.trim();
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// A substring search over body bytes as they arrive, within [`MAX_BODY`].
struct Search<'a> {
    needle: &'a [u8],
    seen: Vec<u8>,
    found: bool,
}

impl<'a> Search<'a> {
    fn new(needle: &'a [u8]) -> Self {
        Search {
            needle,
            seen: Vec::new(),
            found: needle.is_empty(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.found || self.full() {
            return;
        }
        let take = bytes.len().min(MAX_BODY - self.seen.len());
        // Only windows that end in the new bytes can be new matches.
        let from = self.seen.len().saturating_sub(self.needle.len() - 1);
        self.seen.extend_from_slice(&bytes[..take]);
        self.found = self.seen[from..]
            .windows(self.needle.len())
            .any(|w| w == self.needle);
    }

    fn full(&self) -> bool {
        self.seen.len() >= MAX_BODY
    }
}

impl fmt::Display for ProbeResult {
    /// `ok (rtt 1.2ms)` or the error, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(()) => write!(f, "ok")?,
            Err(e) => write!(f, "{e}")?,
        }
        if let Some(rtt) = self.rtt() {
            write!(f, " (rtt {rtt:.1?})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    use rustls::ServerConfig;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tokio_rustls::TlsAcceptor;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn check(kind: CheckKind, port: u16) -> Check {
        Check {
            kind,
            port,
            path: "/health".to_string(),
            host: None,
            expect_status: 200..=399,
            body_contains: None,
            insecure: false,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 2,
        }
    }

    fn target(check: Check) -> ProbeTarget {
        ProbeTarget { addr: LOCAL, check }
    }

    async fn run(check: Check) -> ProbeResult {
        probe(&target(check), &TlsConfigs::new()).await
    }

    /// What a test server does with each connection once it has read the
    /// request head.
    #[derive(Clone)]
    enum Reply {
        /// Waits, then writes these bytes and closes.
        After(Duration, Vec<u8>),
        /// Writes nothing and keeps the connection open.
        Hang,
    }

    fn respond(bytes: impl AsRef<[u8]>) -> Reply {
        Reply::After(Duration::ZERO, bytes.as_ref().to_vec())
    }

    fn ok_with_body(body: &str) -> Reply {
        respond(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
            body.len()
        ))
    }

    /// A plain-HTTP server on an ephemeral loopback port. The request heads
    /// it reads are sent on the returned channel.
    async fn http_server(addr: IpAddr, reply: Reply) -> (u16, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind((addr, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(serve(stream, reply.clone(), tx.clone()));
            }
        });
        (port, rx)
    }

    async fn serve<S>(mut stream: S, reply: Reply, requests: mpsc::UnboundedSender<String>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut buf = Vec::new();
        while head_end(&buf).is_none() {
            match read_some(&mut stream, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let _ = requests.send(String::from_utf8_lossy(&buf).into_owned());
        match reply {
            Reply::After(delay, bytes) => {
                tokio::time::sleep(delay).await;
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }

    /// A port on which nothing listens (bound, then released).
    /// A port nothing listens on, held by a socket that is bound but not
    /// listening (a connection to it is reset), so no other test can take
    /// the port while the probe runs. Keep the socket until then.
    fn closed_port() -> (u16, socket2::Socket) {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from((LOCAL, 0)).into())
            .unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        (port, socket)
    }

    #[tokio::test]
    async fn healthy_200() {
        let (port, mut requests) = http_server(LOCAL, ok_with_body("fine")).await;
        let r = run(check(CheckKind::Http, port)).await;
        assert_eq!(r.outcome, Ok(()));
        assert!(r.is_success());
        let (connect, first_byte) = (r.connect.unwrap(), r.first_byte.unwrap());
        assert!(first_byte >= connect);
        assert_eq!(r.rtt(), Some(first_byte));
        let request = requests.recv().await.unwrap();
        assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains("\r\nUser-Agent: meridian-health\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
    }

    #[tokio::test]
    async fn status_500_fails_with_timings() {
        let (port, _) =
            http_server(LOCAL, respond("HTTP/1.1 500 Internal Server Error\r\n\r\n")).await;
        let r = run(check(CheckKind::Http, port)).await;
        assert_eq!(r.outcome, Err(ProbeError::Status(500)));
        assert!(!r.is_success());
        assert!(r.connect.is_some() && r.first_byte.is_some());
    }

    #[tokio::test]
    async fn hung_server_costs_one_timeout() {
        let (port, _) = http_server(LOCAL, Reply::Hang).await;
        let mut c = check(CheckKind::Http, port);
        c.timeout = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let r = run(c).await;
        let took = started.elapsed();
        assert_eq!(r.outcome, Err(ProbeError::Timeout { phase: "response" }));
        assert!(r.outcome.as_ref().unwrap_err().is_timeout());
        assert!(r.connect.is_some());
        assert_eq!(r.first_byte, None);
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_millis(800), "{took:?}");
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let (port, _held) = closed_port();
        let r = run(check(CheckKind::Http, port)).await;
        assert_eq!(r.outcome, Err(ProbeError::Refused));
        assert_eq!((r.connect, r.first_byte, r.rtt()), (None, None, None));
    }

    #[tokio::test]
    async fn slow_server_succeeds_and_first_byte_shows_it() {
        let reply = Reply::After(
            Duration::from_millis(200),
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        );
        let (port, _) = http_server(LOCAL, reply).await;
        let r = run(check(CheckKind::Http, port)).await;
        assert_eq!(r.outcome, Ok(()));
        assert!(r.first_byte.unwrap() >= Duration::from_millis(200), "{r:?}");
        assert!(r.connect.unwrap() < Duration::from_millis(200), "{r:?}");
    }

    #[tokio::test]
    async fn body_substring_match_and_mismatch() {
        let (port, _) = http_server(LOCAL, ok_with_body("status: all systems go")).await;
        let mut c = check(CheckKind::Http, port);
        c.body_contains = Some("systems go".into());
        assert_eq!(run(c.clone()).await.outcome, Ok(()));
        c.body_contains = Some("degraded".into());
        let r = run(c).await;
        assert_eq!(r.outcome, Err(ProbeError::BodyMismatch));
        assert!(r.first_byte.is_some());
    }

    #[tokio::test]
    async fn body_chunked_split_across_chunks() {
        let body = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5;ext=1\r\nhello\r\n5\r\n worl\r\n1\r\nd\r\n0\r\n\r\n";
        let (port, _) = http_server(LOCAL, respond(body)).await;
        let mut c = check(CheckKind::Http, port);
        c.body_contains = Some("lo world".into());
        assert_eq!(run(c.clone()).await.outcome, Ok(()));
        c.body_contains = Some("5;ext".into()); // framing is not body
        assert_eq!(run(c).await.outcome, Err(ProbeError::BodyMismatch));
    }

    #[tokio::test]
    async fn body_until_close_and_past_the_limit() {
        let mut big = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', MAX_BODY));
        big.extend_from_slice(b"needle");
        let (port, _) = http_server(LOCAL, respond(&big)).await;
        let mut c = check(CheckKind::Http, port);
        c.body_contains = Some("xxneedle".into());
        assert_eq!(run(c.clone()).await.outcome, Err(ProbeError::BodyMismatch));
        c.body_contains = Some("xxxx".into());
        assert_eq!(run(c).await.outcome, Ok(()));
    }

    #[tokio::test]
    async fn body_shorter_than_content_length_is_bad() {
        let reply = respond("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
        let (port, _) = http_server(LOCAL, reply).await;
        let mut c = check(CheckKind::Http, port);
        c.body_contains = Some("missing".into());
        assert!(matches!(
            run(c).await.outcome,
            Err(ProbeError::BadResponse(_))
        ));
    }

    #[tokio::test]
    async fn tcp_kind_open_and_closed() {
        let (port, _) = http_server(LOCAL, Reply::Hang).await;
        let r = run(check(CheckKind::Tcp, port)).await;
        assert_eq!(r.outcome, Ok(()));
        assert!(r.connect.is_some());
        assert_eq!(r.first_byte, None);
        assert_eq!(r.rtt(), r.connect);

        let (port, _held) = closed_port();
        let r = run(check(CheckKind::Tcp, port)).await;
        assert_eq!(r.outcome, Err(ProbeError::Refused));
    }

    #[tokio::test]
    async fn none_kind_succeeds_at_once() {
        let r = run(check(CheckKind::None, 0)).await;
        assert_eq!(r.outcome, Ok(()));
        assert_eq!(r.rtt(), Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn redirect_is_only_a_status() {
        let reply =
            respond("HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:1/\r\n\r\n");
        let (port, mut requests) = http_server(LOCAL, reply).await;
        let mut c = check(CheckKind::Http, port);
        assert_eq!(run(c.clone()).await.outcome, Ok(()));
        c.expect_status = 200..=299;
        assert_eq!(run(c).await.outcome, Err(ProbeError::Status(301)));
        // Exactly one request per probe: the redirect was not followed.
        requests.recv().await.unwrap();
        requests.recv().await.unwrap();
        assert!(requests.try_recv().is_err());
    }

    #[tokio::test]
    async fn host_header_is_check_host_or_the_address() {
        let (port, mut requests) = http_server(LOCAL, ok_with_body("")).await;
        let mut c = check(CheckKind::Http, port);
        c.host = Some("www.example.test".into());
        assert_eq!(run(c.clone()).await.outcome, Ok(()));
        let request = requests.recv().await.unwrap();
        assert!(
            request.contains("\r\nHost: www.example.test\r\n"),
            "{request}"
        );

        c.host = None;
        assert_eq!(run(c).await.outcome, Ok(()));
        let request = requests.recv().await.unwrap();
        assert!(request.contains("\r\nHost: 127.0.0.1\r\n"), "{request}");
    }

    #[tokio::test]
    async fn ipv6_host_header_is_bracketed() {
        let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        if TcpListener::bind((v6, 0)).await.is_err() {
            // Under CI (`.ci/run` sets CI=true) a skip would hide the test.
            let ci = std::env::var("CI").unwrap_or_default();
            assert!(
                ci.is_empty() || ci == "false",
                "no ::1 on this machine and CI is set: enable IPv6 on loopback"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: ipv6_host_header_is_bracketed (no ::1 here)"
            );
            return;
        }
        let (port, mut requests) = http_server(v6, ok_with_body("")).await;
        let target = ProbeTarget {
            addr: v6,
            check: check(CheckKind::Http, port),
        };
        assert_eq!(probe(&target, &TlsConfigs::new()).await.outcome, Ok(()));
        let request = requests.recv().await.unwrap();
        assert!(request.contains("\r\nHost: [::1]\r\n"), "{request}");
    }

    #[tokio::test]
    async fn malformed_status_line_is_bad_response() {
        for reply in [
            "SSH-2.0-OpenSSH_9.6\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/2 200\r\n\r\n",
        ] {
            let (port, _) = http_server(LOCAL, respond(reply)).await;
            let r = run(check(CheckKind::Http, port)).await;
            assert!(
                matches!(r.outcome, Err(ProbeError::BadResponse(_))),
                "{reply:?}: {r:?}"
            );
        }
        // Closed with no answer at all.
        let (port, _) = http_server(LOCAL, respond("")).await;
        let r = run(check(CheckKind::Http, port)).await;
        assert!(
            matches!(r.outcome, Err(ProbeError::BadResponse(_))),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn interim_responses_are_skipped() {
        let reply =
            respond("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 503 Busy\r\n\r\n");
        let (port, _) = http_server(LOCAL, reply).await;
        assert_eq!(
            run(check(CheckKind::Http, port)).await.outcome,
            Err(ProbeError::Status(503))
        );
    }

    #[tokio::test]
    async fn header_injection_is_refused_before_connecting() {
        let (port, _held) = closed_port();
        let mut c = check(CheckKind::Http, port);
        c.host = Some("a.test\r\nX-Evil: 1".into());
        assert!(matches!(
            run(c).await.outcome,
            Err(ProbeError::InvalidCheck(_))
        ));
    }

    // ---- HTTPS ----

    /// Records the SNI of every ClientHello and serves one certificate.
    #[derive(Debug)]
    struct RecordSni {
        key: Arc<CertifiedKey>,
        seen: Arc<Mutex<Vec<Option<String>>>>,
    }

    impl ResolvesServerCert for RecordSni {
        fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            self.seen
                .lock()
                .unwrap()
                .push(hello.server_name().map(str::to_string));
            Some(self.key.clone())
        }
    }

    /// An HTTPS server on an ephemeral loopback port serving `cert` (with
    /// its chain) and answering `reply`; returns the SNI seen per handshake.
    async fn https_server(
        chain: Vec<CertificateDer<'static>>,
        key: &rcgen::KeyPair,
        reply: Reply,
    ) -> (u16, Arc<Mutex<Vec<Option<String>>>>) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = provider.key_provider.load_private_key(key).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let resolver = RecordSni {
            key: Arc::new(CertifiedKey::new(chain, signing)),
            seen: seen.clone(),
        };
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (acceptor, reply) = (acceptor.clone(), reply.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve(tls, reply, mpsc::unbounded_channel().0).await;
                    }
                });
            }
        });
        (port, seen)
    }

    fn self_signed() -> (CertificateDer<'static>, rcgen::KeyPair) {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(names).unwrap();
        (cert.der().clone(), signing_key)
    }

    #[tokio::test]
    async fn https_self_signed_needs_insecure() {
        let (cert, key) = self_signed();
        let (port, _) = https_server(vec![cert], &key, ok_with_body("tls ok")).await;
        let mut c = check(CheckKind::Https, port);
        c.host = Some("localhost".into());
        let r = run(c.clone()).await;
        match &r.outcome {
            Err(ProbeError::Tls(m)) => assert!(m.contains("certificate"), "{m}"),
            other => panic!("expected a tls error, got {other:?}"),
        }
        assert!(r.connect.is_some() && r.first_byte.is_none());

        c.insecure = true;
        c.body_contains = Some("tls ok".into());
        let r = run(c).await;
        assert_eq!(r.outcome, Ok(()));
        assert!(r.first_byte.unwrap() >= r.connect.unwrap());
    }

    #[tokio::test]
    async fn https_sni_is_check_host_or_absent() {
        let (cert, key) = self_signed();
        let (port, seen) = https_server(vec![cert], &key, ok_with_body("")).await;
        let mut c = check(CheckKind::Https, port);
        c.insecure = true;
        c.host = Some("www.example.test".into());
        assert_eq!(run(c.clone()).await.outcome, Ok(()));
        c.host = None;
        assert_eq!(run(c).await.outcome, Ok(()));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, vec![Some("www.example.test".to_string()), None]);
    }

    #[tokio::test]
    async fn https_verifies_against_given_roots_by_name_and_address() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let tls = TlsConfigs::with_roots(roots);

        let (port, seen) =
            https_server(vec![leaf.der().clone()], &leaf_key, ok_with_body("")).await;
        let mut c = check(CheckKind::Https, port);
        c.host = Some("localhost".into());
        assert_eq!(probe(&target(c.clone()), &tls).await.outcome, Ok(()));
        c.host = None; // verified against the IP SAN, no SNI
        assert_eq!(probe(&target(c.clone()), &tls).await.outcome, Ok(()));
        c.host = Some("other.test".into()); // name not in the certificate
        let r = probe(&target(c), &tls).await;
        assert!(matches!(r.outcome, Err(ProbeError::Tls(_))), "{r:?}");
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn https_hung_handshake_times_out_in_tls() {
        // Accepts TCP and never speaks TLS.
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(listener.accept().await.unwrap().0);
            }
        });
        let mut c = check(CheckKind::Https, port);
        c.timeout = Duration::from_millis(200);
        let r = run(c).await;
        assert_eq!(r.outcome, Err(ProbeError::Timeout { phase: "tls" }));
        assert!(r.connect.is_some());
    }

    // ---- parsing ----

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 404 Not Found"), Some(404));
        assert_eq!(parse_status_line(b"HTTP/1.1 204"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 200OK"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 099 Low"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1  200 OK"), None);
        assert_eq!(parse_status_line(b"http/1.1 200 OK"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[test]
    fn heads_and_framing() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"), Some(25));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\nA: b\n\nbody"), Some(22));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        let framing = |h: &str| parse_head(h.as_bytes()).map(|h| h.framing);
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\ncontent-length: 12\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            ),
            Ok(Framing::Chunked)
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), Ok(Framing::Close));
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
            Ok(Framing::Empty)
        );
        assert!(framing("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert_eq!(parse_chunk_size(b"1A;name=v"), Some(26));
        assert_eq!(parse_chunk_size(b"zz"), None);
        assert_eq!(parse_chunk_size(b""), None);
    }

    #[test]
    fn search_across_pushes_and_limit() {
        let mut s = Search::new(b"needle");
        s.push(b"hay nee");
        assert!(!s.found);
        s.push(b"dle hay");
        assert!(s.found);
        assert!(Search::new(b"").found);
    }

    #[test]
    fn display_for_logs() {
        let r = ProbeResult {
            outcome: Err(ProbeError::Timeout { phase: "connect" }),
            connect: None,
            first_byte: None,
        };
        assert_eq!(r.to_string(), "timed out during connect");
        assert_eq!(ProbeError::Status(503).to_string(), "unexpected status 503");
    }
}
