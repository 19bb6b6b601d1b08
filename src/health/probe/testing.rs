//! Test servers and checks shared by the probe tests: real sockets on
//! ephemeral loopback ports, answering with bytes the test chooses (so a
//! test can send what no well-behaved server would).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::{ProbeResult, ProbeTarget, TlsConfigs, probe};
use crate::config::{Check, CheckKind};

pub const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

pub fn check(kind: CheckKind, port: u16) -> Check {
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

pub fn target(check: Check) -> ProbeTarget {
    ProbeTarget { addr: LOCAL, check }
}

pub async fn run(check: Check) -> ProbeResult {
    probe(&target(check), &TlsConfigs::new()).await
}

/// What a test server does with each connection once it has read the
/// request head.
#[derive(Clone)]
pub enum Reply {
    /// Waits, then writes these bytes and closes.
    After(Duration, Vec<u8>),
    /// Writes nothing and keeps the connection open.
    Hang,
    /// Writes these bytes, then keeps the connection open: a response
    /// that has not ended.
    Stall(Vec<u8>),
    /// Writes these bytes and drops the connection without closing it
    /// properly: over TLS, no `close_notify`.
    Cut(Vec<u8>),
}

pub fn respond(bytes: impl AsRef<[u8]>) -> Reply {
    Reply::After(Duration::ZERO, bytes.as_ref().to_vec())
}

pub fn ok_with_body(body: &str) -> Reply {
    respond(format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    ))
}

/// A plain-HTTP server on an ephemeral port of `addr`. The request heads
/// it reads are sent on the returned channel.
pub async fn http_server(addr: IpAddr, reply: Reply) -> (u16, mpsc::UnboundedReceiver<String>) {
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

/// Reads one request head (the probe sends no body), then replies.
async fn serve<S>(mut stream: S, reply: Reply, requests: mpsc::UnboundedSender<String>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = requests.send(String::from_utf8_lossy(&head).into_owned());
    match reply {
        Reply::After(delay, bytes) => {
            tokio::time::sleep(delay).await;
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Reply::Stall(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Reply::Cut(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
        }
    }
}

/// A port nothing listens on, held by a socket that is bound but not
/// listening (a connection to it is refused), so no other test can take
/// the port while the probe runs. Keep the socket until then.
pub fn closed_port() -> (u16, socket2::Socket) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from((LOCAL, 0)).into())
        .unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (port, socket)
}

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

/// An HTTPS server on an ephemeral loopback port serving `chain` and
/// answering `reply`; returns the SNI seen per handshake.
pub async fn https_server(
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

/// A self-signed certificate for `localhost` and `127.0.0.1`.
pub fn self_signed() -> (CertificateDer<'static>, rcgen::KeyPair) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(names).unwrap();
    (cert.der().clone(), signing_key)
}
