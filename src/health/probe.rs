//! One probe of one endpoint address: connect, ask, judge, time it.
//!
//! This is the only place Meridian talks to the load balancers it answers
//! for. A probe returns a [`ProbeResult`] and nothing else: it keeps no
//! state between calls, logs nothing and decides no flips; the rise/fall
//! state machine and the scheduler above it do that.
//!
//! This file holds what every kind of check shares: the target, the result
//! and its errors, the clock, and the TCP connect (which is the whole of a
//! `tcp` check). The rest is beside it, one concern a file:
//! - `tls`: the rustls client configs, the `insecure` verifier, the server
//!   name (SNI) and the handshake;
//! - `http`: one HTTP/1.1 exchange over the stream opened here, with
//!   hyper's connection-level client (its doc says why that one and not a
//!   client library such as reqwest).
//!
//! Invariants:
//! - **One attempt, one connection.** No retries, no redirects followed
//!   (a 3xx is just a status, judged against `expect_status`), no connection
//!   reuse, no proxy, and no TLS session resumption, so every HTTPS probe
//!   times a full handshake. The probe opens the TCP connection itself, so
//!   only the given address is contacted: `check.host` is used for the
//!   `Host` header and TLS SNI and is never resolved.
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
//! - **Errors carry their causes as text.** A [`ProbeError`] is cloned into
//!   the health board, compared in tests and shown by its `Display` alone
//!   (logs, the admin API), so each message embeds the cause it needs and
//!   no variant has a `source()`: nothing is printed twice.

mod http;
#[cfg(test)]
mod testing;
mod tls;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::config::{Check, CheckKind};

pub use http::{MAX_BODY, MAX_HEAD, USER_AGENT};
pub use tls::TlsConfigs;

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

/// Why a probe failed. Messages are lowercase, say what went wrong and
/// embed their cause; no variant has a `source()` (see the module doc).
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
    /// The response is not HTTP/1.x as hyper understands it: malformed
    /// status line or headers, closed before the headers ended, headers too
    /// long, truncated or malformed body framing.
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

    /// The failure's kind for the `reason` label of
    /// `meridian_probe_failures_total`, one of
    /// [`crate::metrics::PROBE_FAILURE_REASONS`].
    pub fn reason(&self) -> &'static str {
        match self {
            ProbeError::Refused => "refused",
            ProbeError::Timeout { .. } => "timeout",
            ProbeError::Status(_) => "status",
            ProbeError::BodyMismatch => "body",
            ProbeError::Tls(_) => "tls",
            ProbeError::Connect(_)
            | ProbeError::Io { .. }
            | ProbeError::BadResponse(_)
            | ProbeError::InvalidCheck(_) => "other",
        }
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
        clock: Clock {
            start,
            deadline: start + check.timeout,
        },
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

/// When a probe started and when it must be over.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    deadline: Instant,
}

impl Clock {
    /// Runs `fut` until the deadline, naming `phase` if it passes.
    async fn phase<F: Future>(&self, phase: &'static str, fut: F) -> Result<F::Output, ProbeError> {
        timeout_at(self.deadline, fut)
            .await
            .map_err(|_| ProbeError::Timeout { phase })
    }
}

/// One probe in progress: the clock and what it has measured so far.
struct Run {
    clock: Clock,
    connect: Option<Duration>,
    first_byte: Option<Duration>,
}

impl Run {
    async fn go(&mut self, target: &ProbeTarget, tls: &TlsConfigs) -> Result<(), ProbeError> {
        let check = &target.check;
        // Check what we will send before touching the network.
        let request = match check.kind {
            CheckKind::Http | CheckKind::Https => Some(http::request(target)?),
            CheckKind::Tcp | CheckKind::None => None,
        };
        let server_name = match check.kind {
            CheckKind::Https => Some(tls::server_name(target)?),
            _ => None,
        };

        let addr = SocketAddr::new(target.addr, check.port);
        let tcp = self
            .clock
            .phase("connect", TcpStream::connect(addr))
            .await?
            .map_err(|e| match e.kind() {
                io::ErrorKind::ConnectionRefused => ProbeError::Refused,
                _ => ProbeError::Connect(e.to_string()),
            })?;
        self.connect = Some(self.clock.start.elapsed());
        // The request goes out in one write; no reason to let Nagle hold
        // back the TLS handshake's last flight.
        let _ = tcp.set_nodelay(true);

        let Some(request) = request else {
            return Ok(()); // TCP: connecting was the whole test.
        };
        let clock = self.clock;
        match server_name {
            None => http::exchange(tcp, request, check, clock, &mut self.first_byte).await,
            Some(name) => {
                let stream = clock
                    .phase("tls", tls.handshake(check, name, tcp))
                    .await??;
                http::exchange(stream, request, check, clock, &mut self.first_byte).await
            }
        }
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
    use super::testing::*;
    use super::*;

    #[tokio::test]
    async fn closed_port_is_refused() {
        let (port, _held) = closed_port();
        let r = run(check(CheckKind::Http, port)).await;
        assert_eq!(r.outcome, Err(ProbeError::Refused));
        assert_eq!((r.connect, r.first_byte, r.rtt()), (None, None, None));
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
