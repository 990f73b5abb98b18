//! TLS with rustls: certificates are verified against the given CA (or the
//! bundled Mozilla roots) and the server name, unless the caller opts out.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::engine::config::{Config, TlsConfig};
use crate::error::{Error, ErrorCode, Result};

/// A ready-to-use TLS client configuration.
#[derive(Clone)]
pub struct Connector(TlsConnector);

fn tls_err(msg: impl Into<String>) -> Error {
  Error::new(ErrorCode::Tls, msg)
}

fn pem_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
  let certs = rustls_pemfile::certs(&mut pem.as_bytes())
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(|e| tls_err(format!("{what} is not valid PEM ({e})")))?;
  if certs.is_empty() {
    return Err(tls_err(format!("{what} holds no PEM certificate")));
  }
  Ok(certs)
}

/// Builds the connector for `t` (once per client).
pub fn connector(t: &TlsConfig) -> Result<Connector> {
  let provider = Arc::new(rustls::crypto::ring::default_provider());
  let builder = ClientConfig::builder_with_provider(provider.clone())
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_err(e.to_string()))?;
  let builder = if t.reject_unauthorized {
    let mut roots = RootCertStore::empty();
    match &t.ca {
      Some(ca) => {
        for c in pem_certs(ca, "tls.ca")? {
          roots
            .add(c)
            .map_err(|e| tls_err(format!("tls.ca is not a usable CA certificate ({e})")))?;
        }
      }
      None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    builder.with_root_certificates(roots)
  } else {
    builder
      .dangerous()
      .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
  };
  let config = match (&t.cert, &t.key) {
    (Some(cert), Some(key)) => {
      let certs = pem_certs(cert, "tls.cert")?;
      let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.0.as_bytes())
        .map_err(|_| tls_err("tls.key is not a valid PEM private key"))?
        .ok_or_else(|| tls_err("tls.key holds no PEM private key"))?;
      builder
        .with_client_auth_cert(certs, key)
        .map_err(|e| tls_err(format!("tls.cert and tls.key do not fit together ({e})")))?
    }
    _ => builder.with_no_client_auth(),
  };
  Ok(Connector(TlsConnector::from(Arc::new(config))))
}

impl Connector {
  pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    &self,
    cfg: &Config,
    tcp: S,
  ) -> Result<TlsStream<S>> {
    let t = cfg.tls.as_ref().expect("TLS settings");
    let name = t.servername.clone().unwrap_or_else(|| cfg.host.clone());
    let server_name = ServerName::try_from(name.clone())
      .map_err(|_| tls_err(format!("{name:?} is not a valid TLS server name")))?;
    self.0.connect(server_name, tcp).await.map_err(|e| {
      tls_err(format!(
        "TLS handshake with {} failed ({})",
        cfg.address(),
        e.to_string().to_lowercase()
      ))
    })
  }
}

/// `rejectUnauthorized: false`: any certificate is accepted (signatures are
/// still checked). For development only, as in Node's own `tls`.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
  fn verify_server_cert(
    &self,
    _end_entity: &CertificateDer<'_>,
    _intermediates: &[CertificateDer<'_>],
    _server_name: &ServerName<'_>,
    _ocsp: &[u8],
    _now: UnixTime,
  ) -> std::result::Result<ServerCertVerified, rustls::Error> {
    Ok(ServerCertVerified::assertion())
  }

  fn verify_tls12_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls12_signature(
      message,
      cert,
      dss,
      &self.0.signature_verification_algorithms,
    )
  }

  fn verify_tls13_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls13_signature(
      message,
      cert,
      dss,
      &self.0.signature_verification_algorithms,
    )
  }

  fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
    self.0.signature_verification_algorithms.supported_schemes()
  }
}
