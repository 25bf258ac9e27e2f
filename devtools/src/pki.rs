//! Test certificates: one CA that signs the relay's server certificate and the client certificate.
//!
//! Exists so that the mutual-TLS path can be exercised end to end on a developer machine and in CI
//! without any real Devo credential.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// Common name of the generated client certificate, so tests can recognise it.
pub const CLIENT_COMMON_NAME: &str = "m365-trace-to-devo test client";
/// Common name of the generated CA.
pub const CA_COMMON_NAME: &str = "m365-trace-to-devo test CA";

/// Why generating or loading the test PKI failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or could not sign.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// No server name was given.
    #[error("at least one server name is required")]
    NoServerName,
    /// PEM material could not be parsed.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// rustls refused the material.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The client certificate verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

impl From<PkiError> for io::Error {
    fn from(e: PkiError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Test PKI: one CA that signs both the relay's server certificate and the client certificate.
#[derive(Clone)]
pub struct TestPki {
    /// The CA certificate (PEM), i.e. what the product gets as `devo_chain_pem`.
    pub ca_pem: String,
    /// The relay's server certificate (PEM).
    pub server_cert_pem: String,
    /// The relay's private key (PKCS#8 PEM).
    pub server_key_pem: String,
    /// The client certificate (PEM), i.e. `devo_cert_pem`.
    pub client_cert_pem: String,
    /// The client private key (PKCS#8 PEM), i.e. `devo_key_pem`.
    pub client_key_pem: String,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

const FILES: [&str; 5] = [
    "ca.pem",
    "server.pem",
    "server.key",
    "client.pem",
    "client.key",
];

impl TestPki {
    /// Generates a CA, a server certificate whose SANs are `server_names` (IP addresses when they
    /// parse as IPs, DNS names otherwise) and a client certificate with CN
    /// "m365-trace-to-devo test client", all valid from yesterday for a year.
    pub fn generate(server_names: &[&str]) -> Result<TestPki, PkiError> {
        Self::build(server_names, false)
    }

    /// Same as [`TestPki::generate`], but the client certificate's validity ended yesterday
    /// (for expired-certificate tests).
    pub fn generate_with_expired_client(server_names: &[&str]) -> Result<TestPki, PkiError> {
        Self::build(server_names, true)
    }

    fn build(server_names: &[&str], expired_client: bool) -> Result<TestPki, PkiError> {
        let first = server_names.first().ok_or(PkiError::NoServerName)?;
        let now = OffsetDateTime::now_utc();

        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name = dn(CA_COMMON_NAME);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.not_before = now - Duration::days(2);
        ca_params.not_after = now + Duration::days(730);
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let names: Vec<String> = server_names.iter().map(|s| s.to_string()).collect();
        let mut server_params = CertificateParams::new(names)?;
        server_params.distinguished_name = dn(first);
        server_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        server_params.not_before = now - Duration::days(1);
        server_params.not_after = now + Duration::days(365);
        let server_key = KeyPair::generate()?;
        let server_cert = server_params.signed_by(&server_key, &issuer)?;

        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params.distinguished_name = dn(CLIENT_COMMON_NAME);
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.use_authority_key_identifier_extension = true;
        if expired_client {
            client_params.not_before = now - Duration::days(30);
            client_params.not_after = now - Duration::days(1);
        } else {
            client_params.not_before = now - Duration::days(1);
            client_params.not_after = now + Duration::days(365);
        }
        let client_key = KeyPair::generate()?;
        let client_cert = client_params.signed_by(&client_key, &issuer)?;

        Ok(TestPki {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    /// Writes ca.pem, server.pem, server.key, client.pem and client.key into `dir` (created if
    /// missing), so the CLI listener and a demo can share one PKI.
    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let contents = [
            &self.ca_pem,
            &self.server_cert_pem,
            &self.server_key_pem,
            &self.client_cert_pem,
            &self.client_key_pem,
        ];
        for (name, content) in FILES.iter().zip(contents) {
            std::fs::write(dir.join(name), content)?;
        }
        Ok(())
    }

    /// Reads the five files that [`TestPki::write_to`] writes.
    pub fn read_from(dir: &Path) -> io::Result<TestPki> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(name).display())))
        };
        Ok(TestPki {
            ca_pem: read(FILES[0])?,
            server_cert_pem: read(FILES[1])?,
            server_key_pem: read(FILES[2])?,
            client_cert_pem: read(FILES[3])?,
            client_key_pem: read(FILES[4])?,
        })
    }

    /// rustls server configuration of the relay stand-in: TLS 1.2/1.3 with the aws-lc-rs provider,
    /// the server certificate, and a mandatory client certificate chaining to the CA.
    pub fn relay_server_config(&self) -> Result<rustls::ServerConfig, PkiError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = Arc::new(self.root_store()?);
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                parse_certs(&self.server_cert_pem)?,
                parse_key(&self.server_key_pem)?,
            )?;
        Ok(config)
    }

    /// rustls client configuration that trusts the CA and, when `with_client_cert` is true,
    /// presents the client certificate: what a well-behaved sender uses (handy in tests).
    pub fn client_config(&self, with_client_cert: bool) -> Result<rustls::ClientConfig, PkiError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.root_store()?);
        Ok(if with_client_cert {
            builder.with_client_auth_cert(
                parse_certs(&self.client_cert_pem)?,
                parse_key(&self.client_key_pem)?,
            )?
        } else {
            builder.with_no_client_auth()
        })
    }

    /// Root store holding only the test CA.
    pub fn root_store(&self) -> Result<rustls::RootCertStore, PkiError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in parse_certs(&self.ca_pem)? {
            roots.add(cert)?;
        }
        Ok(roots)
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "m365-trace-to-devo tests");
    dn
}

/// Parses every certificate in a PEM string.
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(PkiError::Pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// Parses the first private key in a PEM string.
pub fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem(e.to_string()))
}

/// An application's certificate credential for the Microsoft identity platform (client
/// credentials with a signed JWT client assertion instead of a secret): a self-signed RSA 2048
/// certificate and its key, as an administrator would upload to the app registration.
#[derive(Clone)]
pub struct AppCredential {
    /// The certificate (PEM), i.e. the secret's `client_certificate_pem`.
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM), i.e. the secret's `client_private_key_pem`.
    pub key_pem: String,
}

impl std::fmt::Debug for AppCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredential").finish_non_exhaustive()
    }
}

impl AppCredential {
    /// Generates a self-signed RSA 2048 certificate with CN `common_name`, valid for a year.
    pub fn generate(common_name: &str) -> Result<AppCredential, PkiError> {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(common_name);
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(365);
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
        let cert = params.self_signed(&key)?;
        Ok(AppCredential {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Base64url SHA-256 thumbprint of the certificate (the JWT header's `x5t#S256`).
    pub fn x5t_s256(&self) -> Result<String, PkiError> {
        let der = parse_certs(&self.cert_pem)?.remove(0);
        Ok(thumbprint(&aws_lc_rs::digest::SHA256, &der))
    }

    /// A client assertion as the product should build it: RS256 JWT with `x5t#S256`, `aud` =
    /// the token endpoint, `iss` = `sub` = the client id, a `jti`, valid from now for 10 minutes.
    /// Exists so tests of the Graph stand-in (and of the product) have a known-good reference.
    pub fn client_assertion(&self, audience: &str, client_id: &str) -> Result<String, PkiError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = chrono::Utc::now().timestamp();
        let header =
            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t#S256": self.x5t_s256()?});
        let claims = serde_json::json!({
            "aud": audience, "iss": client_id, "sub": client_id,
            "jti": crate::util::uuid(), "nbf": now, "iat": now, "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let key_der = parse_key(&self.key_pem)?;
        let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(key_der.secret_der())
            .map_err(|e| PkiError::Pem(format!("RSA key: {e}")))?;
        let mut signature = vec![0u8; key.public_modulus_len()];
        key.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| PkiError::Pem("RSA signing failed".into()))?;
        Ok(format!("{signing_input}.{}", b64.encode(signature)))
    }
}

/// Base64url (no padding) digest of a DER certificate: JWT `x5t` (SHA-1) / `x5t#S256` (SHA-256).
pub fn thumbprint(alg: &'static aws_lc_rs::digest::Algorithm, der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(alg, der))
}
