//! The relay's TLS settings, built from the secret: the chain that verifies the relay, the name
//! it is verified as, and the domain's client certificate.

use std::fmt;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::devo::error::DevoError;
use crate::secret::DevoCredentials;

/// TLS settings for the relay, built from the secret for each tick.
#[derive(Clone)]
pub struct DevoTls {
    pub(crate) connector: TlsConnector,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) address: String,
}

impl fmt::Debug for DevoTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevoTls")
            .field("address", &self.address)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn certificates(key: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, DevoError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DevoError::Pem {
            key,
            problem: format!("not PEM certificates ({e})"),
        })?;
    if certs.is_empty() {
        return Err(DevoError::Pem {
            key,
            problem: "no -----BEGIN CERTIFICATE----- block".into(),
        });
    }
    Ok(certs)
}

impl DevoTls {
    /// Verifies the relay against `chain_pem` and `server_name`, and presents the domain's certificate.
    pub fn new(
        credentials: &DevoCredentials,
        address: &str,
        server_name: &str,
    ) -> Result<DevoTls, DevoError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates("devo_chain_pem", &credentials.chain_pem)? {
            roots.add(cert).map_err(|e| DevoError::Pem {
                key: "devo_chain_pem",
                problem: format!("not a usable CA certificate ({e})"),
            })?;
        }
        let chain = certificates("devo_cert_pem", &credentials.cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(credentials.key_pem.as_bytes()).map_err(|_| {
            DevoError::Pem {
                key: "devo_key_pem",
                problem: "no PKCS#8, PKCS#1 or SEC1 private key block".into(),
            }
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| DevoError::Pem {
                key: "devo_cert_pem",
                problem: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| DevoError::Pem {
                key: "devo_key_pem",
                problem: format!("does not match devo_cert_pem or is unsupported ({e})"),
            })?;
        let server_name =
            ServerName::try_from(server_name.to_owned()).map_err(|_| DevoError::Handshake {
                address: address.to_owned(),
                server_name: server_name.to_owned(),
                detail: "not a DNS name or IP address".into(),
                hint: " (set DEVO_SERVER_NAME)",
            })?;
        Ok(DevoTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            address: address.to_owned(),
        })
    }

    /// The relay's `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }
}
