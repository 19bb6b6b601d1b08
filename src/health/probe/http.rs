//! One HTTP/1.1 exchange over a stream the probe already opened: one
//! request, one response, judged against the check.
//!
//! Why hyper's connection-level client (`hyper::client::conn::http1`) and
//! not a client library such as reqwest: a probe must measure one fresh
//! attempt, and the things a general client adds to hide failures (retries,
//! redirects followed, pooled and reused connections, proxies taken from the
//! environment) are exactly what a probe must not have. The connection-level
//! client has none of them: it speaks HTTP/1 over the stream it is given
//! and nothing else, so connecting (and TLS) stay in our hands and are
//! timed there, and the framing (chunked, content length, read until close,
//! interim 1xx responses) is hyper's well-tested parser instead of our own.
//!
//! Invariants:
//! - **One request per connection.** It says `Connection: close`; the
//!   connection and everything hyper holds are dropped when the exchange
//!   ends, whatever the outcome. A 3xx is only a status, judged against
//!   `expect_status`; no redirect is followed.
//! - **No work of its own in the background.** hyper's `Connection` future
//!   does the reading and writing; it is polled here, beside the request
//!   and body futures, not spawned, so when the probe's deadline drops the
//!   exchange nothing of it lives on.
//! - **Bounded reading.** At most [`MAX_HEAD`] bytes of status line and
//!   headers, and body only when `body_contains` is set: at most
//!   [`MAX_BODY`] bytes of it (decoded) are searched, after which no more
//!   is asked for (hyper reads ahead at most one buffer of [`MAX_HEAD`]).
//! - **First byte is the first byte read after the request**, seen by a
//!   wrapper around the stream, so a server that trickles its head is timed
//!   from its first byte, not its last.
//! - **`Host` is `check.host`, else the address** (IPv6 in brackets; never
//!   a port, so it is exactly what the operator configured). Header names
//!   are sent in title case, as the hand-written requests before this were,
//!   for appliances that match them case-sensitively.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{Builder, Connection};
use hyper::header::{ACCEPT, CONNECTION, HOST, HeaderValue, USER_AGENT as USER_AGENT_HEADER};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::{Clock, ProbeError, ProbeTarget};
use crate::config::Check;

/// The most bytes of status line and headers read before giving up on a
/// response as malformed. Also hyper's read buffer limit, so it bounds how
/// far ahead of the body search hyper reads.
pub const MAX_HEAD: usize = 64 * 1024;

/// The most bytes of body searched for `body_contains`.
pub const MAX_BODY: usize = 64 * 1024;

/// The `User-Agent` every HTTP(S) probe sends.
pub const USER_AGENT: &str = "meridian-health";

/// The request a probe sends, with no body.
pub(super) type ProbeRequest = Request<Empty<Bytes>>;

/// The request: `GET path HTTP/1.1` with `Host`, `User-Agent`, `Accept` and
/// `Connection: close`. Built before connecting, so a check that cannot be
/// sent never touches the network.
pub(super) fn request(target: &ProbeTarget) -> Result<ProbeRequest, ProbeError> {
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
            "host {host:?} is empty or has spaces or control characters; write the bare host name"
        )));
    }
    if unsendable(&check.path) {
        return Err(ProbeError::InvalidCheck(format!(
            "path {:?} is empty or has spaces or control characters; percent-encode them",
            check.path
        )));
    }
    let slash = if check.path.starts_with('/') { "" } else { "/" };
    let uri: Uri = format!("{slash}{}", check.path).parse().map_err(|_| {
        ProbeError::InvalidCheck(format!(
            "path {:?} is not a valid request target; percent-encode unusual characters",
            check.path
        ))
    })?;
    let host = HeaderValue::try_from(host.as_str()).map_err(|_| {
        ProbeError::InvalidCheck(format!("host {host:?} cannot be sent in a Host header"))
    })?;
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(HOST, host);
    headers.insert(USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT));
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(request)
}

/// Sends `request` over `stream` and judges the response against `check`,
/// all before `clock`'s deadline. Sets `first_byte` when any response byte
/// arrived, whatever the outcome.
pub(super) async fn exchange<S>(
    stream: S,
    request: ProbeRequest,
    check: &Check,
    clock: Clock,
    first_byte: &mut Option<Duration>,
) -> Result<(), ProbeError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let marks = Arc::new(Marks::new(clock.start));
    let stream = Watched {
        inner: stream,
        marks: marks.clone(),
    };
    let outcome = judge(stream, &marks, request, check, clock).await;
    *first_byte = marks.first_byte.get().copied();
    outcome
}

async fn judge<S>(
    stream: Watched<S>,
    marks: &Marks,
    request: ProbeRequest,
    check: &Check,
    clock: Clock,
) -> Result<(), ProbeError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = Builder::new()
        .title_case_headers(true)
        .max_buf_size(MAX_HEAD)
        .handshake(TokioIo::new(stream))
        .await
        // No I/O happens in an HTTP/1 handshake; this cannot really fail.
        .map_err(|e| ProbeError::BadResponse(describe(&e)))?;
    let mut conn = Some(conn);

    let head = timeout_or(clock, || head_phase(marks), async {
        driven(&mut conn, sender.send_request(request)).await
    })
    .await?
    .map_err(|e| head_error(e, marks))?;

    let status = head.status().as_u16();
    if !check.expect_status.contains(&status) {
        return Err(ProbeError::Status(status));
    }
    let Some(needle) = &check.body_contains else {
        return Ok(());
    };
    let mut body = head.into_body();
    let mut search = Search::new(needle.as_bytes());
    let found = timeout_or(clock, || "body", async {
        while !search.found && !search.full() {
            let frame = driven(&mut conn, async { body.frame().await.transpose() }).await?;
            let Some(frame) = frame else {
                break; // the body ended
            };
            if let Some(data) = frame.data_ref() {
                search.push(data);
            }
        }
        Ok(search.found)
    })
    .await?
    .map_err(|e| body_error(&e))?;
    if found {
        Ok(())
    } else {
        Err(ProbeError::BodyMismatch)
    }
}

/// Runs `work` until the clock's deadline; on timeout, names the phase
/// `phase()` says the exchange was in.
async fn timeout_or<F: Future>(
    clock: Clock,
    phase: impl FnOnce() -> &'static str,
    work: F,
) -> Result<F::Output, ProbeError> {
    tokio::time::timeout_at(clock.deadline, work)
        .await
        .map_err(|_| ProbeError::Timeout { phase: phase() })
}

/// Where an exchange stuck before its response head is: still sending, or
/// waiting for the answer.
fn head_phase(marks: &Marks) -> &'static str {
    if marks.sent.load(Ordering::Relaxed) {
        "response"
    } else {
        "request"
    }
}

type ProbeConnection<S> = Connection<TokioIo<Watched<S>>, Empty<Bytes>>;

/// Runs `work` (which waits on hyper's channels) while polling the
/// connection future that feeds them. Once the connection has finished it
/// is not polled again; `work` then ends on what was already read. An error
/// from the connection itself wins: hyper gives the request or the body
/// only a generic "connection error" when it has no request to give it to.
async fn driven<S, T>(
    conn: &mut Option<ProbeConnection<S>>,
    work: impl Future<Output = Result<T, hyper::Error>>,
) -> Result<T, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut work = std::pin::pin!(work);
    if let Some(connection) = conn.as_mut() {
        tokio::select! {
            biased;
            done = &mut work => return done,
            ended = connection => {
                *conn = None;
                ended?;
            }
        }
    }
    work.await
}

/// A failure before the response head was complete.
fn head_error(e: hyper::Error, marks: &Marks) -> ProbeError {
    if e.is_incomplete_message() {
        // Closed early; whether anything came says which kind of broken.
        return ProbeError::BadResponse(if marks.first_byte.get().is_none() {
            "the connection closed without a response".to_string()
        } else {
            "the connection closed before the headers ended".to_string()
        });
    }
    classify(&e, "response")
}

fn body_error(e: &hyper::Error) -> ProbeError {
    match io_cause(e) {
        Some(io) if io.kind() == io::ErrorKind::UnexpectedEof => ProbeError::BadResponse(format!(
            "the connection closed in the middle of the body ({})",
            describe(e)
        )),
        _ => classify(e, "body"),
    }
}

/// An I/O failure (reset, ...) is the connection's; anything else hyper
/// reports (a malformed status line or header, bad framing) is the response's.
fn classify(e: &hyper::Error, phase: &'static str) -> ProbeError {
    match io_cause(e) {
        Some(io) if io.kind() != io::ErrorKind::UnexpectedEof => ProbeError::Io {
            phase,
            message: describe(e),
        },
        _ => ProbeError::BadResponse(describe(e)),
    }
}

/// The I/O error somewhere in `e`'s chain of causes, if there is one.
fn io_cause(e: &hyper::Error) -> Option<&io::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

/// `e` and its causes in one line. hyper's `Display` shows only its own
/// layer ("error reading a body from connection") and keeps the reason in
/// `source()`; the probe's message is all a log or the admin API shows, so
/// the reason is written into it here (and [`ProbeError`] has no source).
fn describe(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// What the stream saw, shared between the exchange and the [`Watched`]
/// stream that hyper owns (hence atomics: the probe's future moves between
/// threads).
struct Marks {
    start: Instant,
    /// Time from the start of the probe to the first byte read.
    first_byte: OnceLock<Duration>,
    /// Whether any of the request was written.
    sent: AtomicBool,
}

impl Marks {
    fn new(start: Instant) -> Self {
        Marks {
            start,
            first_byte: OnceLock::new(),
            sent: AtomicBool::new(false),
        }
    }
}

/// The probe's stream as hyper sees it: passes everything through and notes
/// the first byte read and the first byte written.
struct Watched<S> {
    inner: S,
    marks: Arc<Marks>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let start = this.marks.start;
                    this.marks.first_byte.get_or_init(|| start.elapsed());
                }
                Poll::Ready(Ok(()))
            }
            // A TLS peer that closes without `close_notify` has closed: for
            // a health probe a truncation attack is no concern, many servers
            // do it, and hyper still notices a body cut short of its length.
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.marks.sent.store(true, Ordering::Relaxed);
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.marks.sent.store(true, Ordering::Relaxed);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
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

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::super::testing::*;
    use super::super::{ProbeError, TlsConfigs, probe};
    use super::*;
    use crate::config::CheckKind;

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

    #[test]
    fn host_header_is_the_bracketed_address_without_a_port() {
        let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        let request = request(&ProbeTarget {
            addr: v6,
            check: check(CheckKind::Http, 8080),
        })
        .unwrap();
        assert_eq!(request.headers()[HOST], "[::1]");
        assert_eq!(request.uri(), "/health");
        let request = request_for_path("health?full=1");
        assert_eq!(request.uri(), "/health?full=1");
        assert_eq!(request.headers()[HOST], "127.0.0.1");
    }

    fn request_for_path(path: &str) -> ProbeRequest {
        let mut c = check(CheckKind::Http, 80);
        c.path = path.to_string();
        request(&target(c)).unwrap()
    }

    /// Over a real IPv6 socket. Without `[::1]` this is skipped, visibly,
    /// except under CI, where it must run.
    #[tokio::test]
    async fn ipv6_host_header_is_bracketed() {
        let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        if let Err(e) = TcpListener::bind((v6, 0)).await {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but [::1] cannot be bound ({e}); enable IPv6 on loopback"
            );
            eprintln!("skipped: [::1] cannot be bound here ({e})");
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

    /// A body longer than [`MAX_BODY`] that has not ended: the probe must
    /// judge the first [`MAX_BODY`] bytes and stop, not wait for the rest
    /// (which would time out).
    #[tokio::test]
    async fn an_unfinished_oversize_body_is_read_only_to_the_limit() {
        let filler = "x".repeat(1024);
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..(MAX_BODY / 1024 + 8) {
            chunked.extend_from_slice(format!("400\r\n{filler}\r\n").as_bytes());
        }
        let mut sized = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            10 * MAX_BODY
        )
        .into_bytes();
        sized.extend(std::iter::repeat_n(b'x', MAX_BODY + 8 * 1024));
        for reply in [chunked, sized] {
            let (port, _) = http_server(LOCAL, Reply::Stall(reply)).await;
            let mut c = check(CheckKind::Http, port);
            c.body_contains = Some("needle".into());
            assert_eq!(run(c.clone()).await.outcome, Err(ProbeError::BodyMismatch));
            c.body_contains = Some("xxx".into());
            assert_eq!(run(c).await.outcome, Ok(()));
        }
    }

    #[tokio::test]
    async fn headers_longer_than_the_limit_are_bad() {
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        let value = "v".repeat(8 * 1024);
        for i in 0..(MAX_HEAD / value.len() + 2) {
            reply.extend_from_slice(format!("X-Pad-{i}: {value}\r\n").as_bytes());
        }
        // Never ends the head: without a limit the probe would time out.
        let (port, _) = http_server(LOCAL, Reply::Stall(reply)).await;
        let r = run(check(CheckKind::Http, port)).await;
        assert!(
            matches!(&r.outcome, Err(ProbeError::BadResponse(m)) if m.contains("too large")),
            "{r:?}"
        );
    }

    /// hyper keeps the reason in `source()`; the probe's message must say
    /// it, once.
    #[tokio::test]
    async fn a_cut_body_says_why_once() {
        let reply = respond("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
        let (port, _) = http_server(LOCAL, reply).await;
        let mut c = check(CheckKind::Http, port);
        c.body_contains = Some("missing".into());
        let error = run(c).await.outcome.unwrap_err();
        assert!(std::error::Error::source(&error).is_none());
        let message = error.to_string();
        assert!(
            message.contains("closed in the middle of the body"),
            "{message}"
        );
        for cause in [
            "end of file before message length reached",
            "error reading a body",
        ] {
            assert_eq!(message.matches(cause).count(), 1, "{message}");
        }
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
}
