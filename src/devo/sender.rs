//! The TLS stream to the Devo relay: client certificate, verified relay, and a close that
//! proves the relay read everything (Devo sends no acknowledgements).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::secret::DevoCredentials;

/// Why lines could not be delivered to Devo. Never carries key material.
#[derive(Debug, Error)]
pub enum DevoError {
    /// A PEM value of the secret cannot be used.
    #[error("{key} in the secret cannot be used: {problem}")]
    Pem {
        /// The secret's key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// No TCP connection.
    #[error(
        "cannot connect to the Devo relay {address}: {detail} (check DEVO_ADDRESS and that outbound TCP to it is allowed)"
    )]
    Connect {
        /// `DEVO_ADDRESS`.
        address: String,
        /// The cause.
        detail: String,
    },
    /// The TLS handshake failed.
    #[error(
        "TLS handshake with the Devo relay {address} (verified as {server_name}) failed: {detail}{hint}"
    )]
    Handshake {
        /// `DEVO_ADDRESS`.
        address: String,
        /// `DEVO_SERVER_NAME`.
        server_name: String,
        /// rustls' reason.
        detail: String,
        /// What to fix.
        hint: &'static str,
    },
    /// The stream broke while sending or closing.
    #[error(
        "the Devo relay {address} connection broke after {lines} lines were written: {detail}{hint}"
    )]
    Stream {
        /// `DEVO_ADDRESS`.
        address: String,
        /// Lines handed to the stream so far.
        lines: u64,
        /// The cause.
        detail: String,
        /// What to fix.
        hint: &'static str,
    },
    /// The relay did not end the stream in time after we closed ours.
    #[error(
        "the Devo relay {address} did not close the stream within {seconds} s after the last line; the lines are not counted as delivered"
    )]
    CloseTimeout {
        /// `DEVO_ADDRESS`.
        address: String,
        /// The wait.
        seconds: u64,
    },
}

impl DevoError {
    /// Whether another connection may succeed: refused or broken connections and slow closes
    /// are; a TLS refusal (certificate, chain, name) or a bad secret is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            DevoError::Connect { .. } | DevoError::CloseTimeout { .. } => true,
            DevoError::Stream { detail, .. } => !detail.to_ascii_lowercase().contains("alert"),
            DevoError::Pem { .. } | DevoError::Handshake { .. } => false,
        }
    }
}

fn hint(detail: &str) -> &'static str {
    let d = detail.to_ascii_lowercase();
    if d.contains("unknownissuer") || d.contains("unknown issuer") || d.contains("badsignature") {
        " (the relay's certificate is not signed by devo_chain_pem: put Devo's chain.crt there)"
    } else if d.contains("notvalidforname") || d.contains("not valid for name") {
        " (the relay's certificate does not name DEVO_SERVER_NAME: set it to the name in the certificate)"
    } else if d.contains("certificateexpired")
        || d.contains("certificate expired")
        || d.contains("expired")
    {
        " (a certificate has expired: download a new X.509 certificate from Devo and update devo_cert_pem / devo_key_pem)"
    } else if d.contains("badcertificate")
        || d.contains("unknownca")
        || d.contains("certificaterequired")
        || d.contains("decrypterror")
    {
        " (the relay refused the client certificate: devo_cert_pem / devo_key_pem must be the domain's X.509 credentials)"
    } else {
        ""
    }
}

/// TLS settings for the relay, built from the secret for each tick.
#[derive(Clone)]
pub struct DevoTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    address: String,
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

/// An open stream of lines to the relay.
pub struct DevoSender {
    stream: BufWriter<TlsStream<TcpStream>>,
    address: String,
    lines: u64,
    bytes: u64,
}

impl fmt::Debug for DevoSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevoSender")
            .field("address", &self.address)
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

/// What one closed stream delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Lines.
    pub lines: u64,
    /// Bytes.
    pub bytes: u64,
}

impl DevoSender {
    /// Connects and completes the handshake within `timeout`.
    pub async fn connect(tls: &DevoTls, timeout: Duration) -> Result<DevoSender, DevoError> {
        let address = tls.address.clone();
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(&address))
            .await
            .map_err(|_| DevoError::Connect {
                address: address.clone(),
                detail: format!("timed out after {} s", timeout.as_secs()),
            })?
            .map_err(|e| DevoError::Connect {
                address: address.clone(),
                detail: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        let handshake = |detail: String| DevoError::Handshake {
            address: address.clone(),
            server_name: tls.server_name.to_str().into_owned(),
            hint: hint(&detail),
            detail,
        };
        let stream =
            tokio::time::timeout(timeout, tls.connector.connect(tls.server_name.clone(), tcp))
                .await
                .map_err(|_| handshake(format!("timed out after {} s", timeout.as_secs())))?
                .map_err(|e| {
                    // A TLS refusal carries a rustls error; anything else is the connection failing.
                    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                        handshake(e.to_string())
                    } else {
                        DevoError::Connect {
                            address: address.clone(),
                            detail: format!("the connection failed during the TLS handshake: {e}"),
                        }
                    }
                })?;
        Ok(DevoSender {
            stream: BufWriter::with_capacity(64 * 1024, stream),
            address,
            lines: 0,
            bytes: 0,
        })
    }

    fn broken(&self, detail: String) -> DevoError {
        DevoError::Stream {
            address: self.address.clone(),
            lines: self.lines,
            hint: hint(&detail),
            detail,
        }
    }

    /// Writes `lines` framed lines held in `buf`.
    pub async fn send(
        &mut self,
        buf: &[u8],
        lines: u64,
        timeout: Duration,
    ) -> Result<(), DevoError> {
        match tokio::time::timeout(timeout, self.stream.write_all(buf)).await {
            Ok(Ok(())) => {
                self.lines += lines;
                self.bytes += buf.len() as u64;
                Ok(())
            }
            Ok(Err(e)) => Err(self.broken(e.to_string())),
            Err(_) => Err(self.broken(format!("writing stalled for {} s", timeout.as_secs()))),
        }
    }

    /// Flushes, closes the write side, and waits for the relay's end of stream: only then are
    /// the lines delivered.
    pub async fn finish(mut self, timeout: Duration) -> Result<Delivered, DevoError> {
        let close = async {
            self.stream.flush().await?;
            self.stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            loop {
                match self.stream.get_mut().read(&mut sink).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => continue,
                    // The relay closed the TCP stream without a TLS close_notify: it has read all.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        };
        match tokio::time::timeout(timeout, close).await {
            Ok(Ok(())) => Ok(Delivered {
                lines: self.lines,
                bytes: self.bytes,
            }),
            Ok(Err(e)) => Err(self.broken(e.to_string())),
            Err(_) => Err(DevoError::CloseTimeout {
                address: self.address.clone(),
                seconds: timeout.as_secs(),
            }),
        }
    }
}
