//! Real handshakes over loopback TCP: a server thread and a client, each a rustls connection
//! driven by blocking I/O, exchanging one message each way so that a rejection by either side
//! shows up on both.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConnection, Error as TlsError, ServerConnection, Stream};

use super::*;
use crate::{cert_identity, Ca, CertIdentity, Issued};

const DAY: Duration = Duration::from_secs(86_400);
/// Bounds every blocking read, so a handshake bug fails the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What each side saw: the server, the identity in the client's certificate (if any); the
/// client, the negotiated ALPN protocol.
struct Outcome {
    server: std::result::Result<Option<CertIdentity>, TlsError>,
    client: std::result::Result<Option<Vec<u8>>, TlsError>,
}

fn handshake(server: ServerConfig, client: ClientConfig, server_name: &'static str) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let server_thread = thread::spawn(move || serve_once(listener, server).map_err(tls_error));
    let client = connect(addr, client, server_name).map_err(tls_error);
    let server = server_thread.join().expect("server thread does not panic");
    Outcome { server, client }
}

fn serve_once(listener: TcpListener, config: ServerConfig) -> io::Result<Option<CertIdentity>> {
    let (mut sock, _) = listener.accept()?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut conn = ServerConnection::new(Arc::new(config)).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    let identity = match conn.peer_certificates() {
        Some(chain) => Some(cert_identity(&chain[0]).map_err(io::Error::other)?),
        None => None,
    };
    let mut tls = Stream::new(&mut conn, &mut sock);
    let mut ping = [0u8; 4];
    tls.read_exact(&mut ping)?;
    assert_eq!(&ping, b"ping");
    tls.write_all(b"pong")?;
    tls.flush()?;
    conn.send_close_notify();
    conn.complete_io(&mut sock)?;
    Ok(identity)
}

fn connect(addr: SocketAddr, config: ClientConfig, server_name: &'static str) -> io::Result<Option<Vec<u8>>> {
    let mut sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from(server_name).expect("valid server name");
    let mut conn = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
    let mut tls = Stream::new(&mut conn, &mut sock);
    tls.write_all(b"ping")?;
    tls.flush()?;
    let mut pong = [0u8; 4];
    tls.read_exact(&mut pong)?;
    assert_eq!(&pong, b"pong");
    Ok(conn.alpn_protocol().map(<[u8]>::to_vec))
}

/// The rustls error behind an I/O error, or the I/O error itself as a general one (a peer
/// that closed the connection after its alert).
fn tls_error(e: io::Error) -> TlsError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<TlsError>()) {
        Some(tls) => tls.clone(),
        None => TlsError::General(e.to_string()),
    }
}

/// A CA, the API server's certificate for 127.0.0.1 and a client certificate for alice.
struct Pki {
    ca: Ca,
    server: Issued,
    alice: Issued,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let ca = Ca::generate(name, DAY).expect("generate CA");
        let server = ca.issue_server("flotilla-apiserver", &[], &["127.0.0.1".to_string()], DAY).expect("issue server");
        let alice = ca.issue_client("alice", &["system:masters".into(), "dev".into()], DAY).expect("issue client");
        Pki { ca, server, alice }
    }

    fn server_optional(&self) -> ServerConfig {
        server_config(&self.server.cert_pem, &self.server.key_pem, Some(self.ca.cert_pem())).expect("server config")
    }

    fn server_mutual(&self) -> ServerConfig {
        server_config_mutual(&self.server.cert_pem, &self.server.key_pem, self.ca.cert_pem()).expect("server config")
    }

    fn client(&self, cert: Option<&Issued>) -> ClientConfig {
        let cert = cert.map(|c| (c.cert_pem.as_str(), c.key_pem.as_str()));
        client_config(self.ca.cert_pem(), cert).expect("client config")
    }
}

#[test]
fn client_certificate_is_verified_and_names_the_user() {
    let pki = Pki::new("ca");
    let outcome = handshake(pki.server_optional(), pki.client(Some(&pki.alice)), "127.0.0.1");
    let alice = CertIdentity { user: "alice".into(), groups: vec!["system:masters".into(), "dev".into()] };
    assert_eq!(outcome.server, Ok(Some(alice.clone())));
    assert_eq!(outcome.client, Ok(Some(b"http/1.1".to_vec())));

    let outcome = handshake(pki.server_mutual(), pki.client(Some(&pki.alice)), "127.0.0.1");
    assert_eq!(outcome.server, Ok(Some(alice)));
    assert!(outcome.client.is_ok(), "{:?}", outcome.client);
}

#[test]
fn client_without_certificate_passes_only_when_optional() {
    let pki = Pki::new("ca");
    let outcome = handshake(pki.server_optional(), pki.client(None), "127.0.0.1");
    assert_eq!(outcome.server, Ok(None));
    assert!(outcome.client.is_ok(), "{:?}", outcome.client);

    let outcome = handshake(pki.server_mutual(), pki.client(None), "127.0.0.1");
    assert_eq!(outcome.server, Err(TlsError::NoCertificatesPresented));
    assert!(outcome.client.is_err(), "the client learns of the rejection");
}

#[test]
fn without_client_ca_no_certificate_is_asked_for() {
    let pki = Pki::new("ca");
    let server = server_config(&pki.server.cert_pem, &pki.server.key_pem, None).expect("server config");
    let outcome = handshake(server, pki.client(Some(&pki.alice)), "127.0.0.1");
    assert_eq!(outcome.server, Ok(None), "the client's certificate was never requested");
    assert!(outcome.client.is_ok(), "{:?}", outcome.client);
}

#[test]
fn client_certificate_from_another_ca_fails() {
    let (pki, other) = (Pki::new("ca"), Pki::new("other-ca"));
    // The client trusts the right server CA, but its certificate comes from the other CA.
    let client =
        client_config(pki.ca.cert_pem(), Some((&other.alice.cert_pem, &other.alice.key_pem))).expect("client config");
    for server in [pki.server_optional(), pki.server_mutual()] {
        let outcome = handshake(server, client.clone(), "127.0.0.1");
        assert_eq!(outcome.server, Err(TlsError::InvalidCertificate(CertificateError::UnknownIssuer)));
        assert!(outcome.client.is_err());
    }
}

#[test]
fn any_server_client_accepts_a_foreign_server_and_still_presents_its_certificate() {
    // The server (an agent's endpoint) has a certificate no CA the client knows signed; it
    // requires client certificates from `pki`'s CA, and sees the client's identity.
    let (pki, agent) = (Pki::new("ca"), Pki::new("agent-self-signed"));
    let server =
        server_config_mutual(&agent.server.cert_pem, &agent.server.key_pem, pki.ca.cert_pem()).expect("server config");
    let client = client_config_any_server(&pki.alice.cert_pem, &pki.alice.key_pem).expect("client config");
    let outcome = handshake(server.clone(), client, "127.0.0.1");
    assert_eq!(outcome.server.expect("handshake").map(|id| id.user), Some("alice".to_string()));
    // A client certificate of another CA is still refused by the server.
    let stranger = client_config_any_server(&agent.alice.cert_pem, &agent.alice.key_pem).expect("client config");
    assert!(handshake(server, stranger, "127.0.0.1").server.is_err());
}

#[test]
fn client_trusting_another_ca_rejects_the_server() {
    let (pki, other) = (Pki::new("ca"), Pki::new("other-ca"));
    let outcome = handshake(pki.server_optional(), other.client(None), "127.0.0.1");
    assert_eq!(outcome.client, Err(TlsError::InvalidCertificate(CertificateError::UnknownIssuer)));
    assert!(outcome.server.is_err());
}

#[test]
fn server_certificate_must_name_the_host_dialled() {
    let pki = Pki::new("ca");
    let outcome = handshake(pki.server_optional(), pki.client(None), "127.0.0.1");
    assert!(outcome.client.is_ok(), "IP SAN matches: {:?}", outcome.client);

    let outcome = handshake(pki.server_optional(), pki.client(None), "apiserver.flotilla.example");
    assert!(
        matches!(
            outcome.client,
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{:?}",
        outcome.client
    );
    assert!(outcome.server.is_err());
}

#[test]
fn replicas_use_their_server_certificate_as_client_certificate() {
    let pki = Pki::new("ca");
    let peer = pki.ca.issue_server("replica-2", &[], &["10.0.0.2".into()], DAY).expect("issue");
    let outcome = handshake(pki.server_mutual(), pki.client(Some(&peer)), "127.0.0.1");
    assert_eq!(outcome.server, Ok(Some(CertIdentity { user: "replica-2".into(), groups: vec![] })));
}

#[test]
fn client_certificate_cannot_serve() {
    let pki = Pki::new("ca");
    let server = server_config(&pki.alice.cert_pem, &pki.alice.key_pem, None).expect("server config");
    let outcome = handshake(server, pki.client(None), "127.0.0.1");
    assert!(
        matches!(
            outcome.client,
            Err(TlsError::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            ))
        ),
        "{:?}",
        outcome.client
    );
}

#[test]
fn configs_reject_bad_inputs() {
    let pki = Pki::new("ca");
    let err = server_config(&pki.server.cert_pem, &pki.alice.key_pem, None).expect_err("key of another cert");
    assert!(matches!(err, PkiError::Tls(_)), "{err}");
    let err = client_config("", None).expect_err("no CA");
    assert!(err.to_string().contains("server CA"), "{err}");
    let err = server_config_mutual(&pki.server.cert_pem, "", pki.ca.cert_pem()).expect_err("no key");
    assert!(err.to_string().contains("server private key"), "{err}");
}
