//! TLS for HTTPS probes: the client configs, the verifier behind
//! `insecure`, the server name, and the handshake.
//!
//! Kept apart from the HTTP exchange because it is a separate decision with
//! its own invariants, and the exchange does not care whether its stream is
//! encrypted:
//! - **Every handshake is a full one.** Session resumption is off, so each
//!   probe times what a new client pays, and no state is carried from one
//!   probe to the next.
//! - **The name is `check.host`, else the address.** A DNS name is sent as
//!   SNI and verified against the certificate; an address sends no SNI and
//!   is verified against the certificate's IP SANs. The name is never
//!   resolved: only the endpoint's own address is contacted.
//! - **`insecure` skips trust, not cryptography.** Any certificate for any
//!   name is accepted, but the handshake signatures are still checked, so
//!   the server must hold the key of the certificate it shows.
//! - **The configs are built once** and shared by every probe: the verifying
//!   one parses every root certificate. Both name the `ring` provider
//!   explicitly rather than a process-wide default, so nothing needs
//!   installing at startup and another crate enabling a second rustls
//!   provider cannot make construction panic.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{ProbeError, ProbeTarget};
use crate::config::Check;

/// Built once and shared by every probe: rustls `ClientConfig`s, one that
/// verifies certificates and one for `insecure` checks that accepts any.
///
/// Both are `Arc`s because rustls configs are immutable and costly to build;
/// cloning this is cheap.
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

    /// Runs the TLS handshake over `tcp` for `check`. No deadline of its own:
    /// the caller runs it under the probe's.
    pub(super) async fn handshake(
        &self,
        check: &Check,
        name: ServerName<'static>,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, ProbeError> {
        TlsConnector::from(self.for_check(check))
            .connect(name, tcp)
            .await
            .map_err(|e| ProbeError::Tls(tls_message(e)))
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

/// The TLS server name: `check.host` when set (a DNS name is sent as SNI; an
/// IP literal is not), else the address, which sends no SNI and verifies the
/// certificate against its IP SANs.
pub(super) fn server_name(target: &ProbeTarget) -> Result<ServerName<'static>, ProbeError> {
    match &target.check.host {
        None => Ok(ServerName::IpAddress(target.addr.into())),
        Some(host) => ServerName::try_from(host.clone()).map_err(|_| {
            ProbeError::InvalidCheck(format!(
                "host {host:?} is not a valid TLS server name; use a DNS name or an IP address"
            ))
        }),
    }
}

/// The rustls error inside an I/O error from the handshake if there is one
/// (tokio-rustls wraps it, and the wrapper's own text adds nothing), else the
/// I/O error itself.
fn tls_message(e: io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls.to_string(),
        None => e.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::super::probe;
    use super::*;
    use crate::config::CheckKind;

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

    /// Many servers close without `close_notify`; a body that runs until
    /// the close is still whole, and one cut short of its length is not.
    #[tokio::test]
    async fn https_close_without_close_notify_ends_the_body() {
        let (cert, key) = self_signed();
        let until_close = Reply::Cut(b"HTTP/1.0 200 OK\r\n\r\nall good".to_vec());
        let (port, _) = https_server(vec![cert.clone()], &key, until_close).await;
        let mut c = check(CheckKind::Https, port);
        c.insecure = true;
        c.body_contains = Some("good".into());
        assert_eq!(run(c.clone()).await.outcome, Ok(()));
        // Read to the close: a mismatch, not a broken response.
        c.body_contains = Some("missing".into());
        assert_eq!(run(c.clone()).await.outcome, Err(ProbeError::BodyMismatch));

        let short = Reply::Cut(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nall good".to_vec());
        let (port, _) = https_server(vec![cert], &key, short).await;
        c.port = port;
        let r = run(c).await;
        assert!(
            matches!(&r.outcome, Err(ProbeError::BadResponse(m)) if m.contains("middle of the body")),
            "{r:?}"
        );
    }
}
