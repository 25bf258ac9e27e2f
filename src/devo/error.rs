//! Why lines could not be delivered to Devo, with what to fix. Never carries key material.

use thiserror::Error;

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
        detail: String,
        /// What to fix.
        hint: &'static str,
    },
    /// The relay ended the stream (or wrote to it) before our close: what was written since the
    /// stream was last seen open may not have been read.
    #[error(
        "the Devo relay {address} ended the stream before we closed it ({seen}); the {lines} lines written since it was last seen open are not counted as delivered and are sent again"
    )]
    EndedEarly {
        /// `DEVO_ADDRESS`.
        address: String,
        /// What the relay did: an end of stream, a reset, or bytes.
        seen: String,
        /// Lines not confirmed.
        lines: u64,
    },
    /// The relay did not end the stream in time after we closed ours.
    #[error(
        "the Devo relay {address} did not close the stream within {seconds} s after the last line; its {lines} lines are not counted as delivered and are sent again (at most {lines} may arrive twice)"
    )]
    CloseTimeout {
        /// `DEVO_ADDRESS`.
        address: String,
        seconds: u64,
        /// Lines the stream carried: not confirmed.
        lines: u64,
    },
}

impl DevoError {
    /// Whether the lines of the stream are lost with it (to be sent again on a new one).
    pub fn broke_stream(&self) -> bool {
        matches!(
            self,
            DevoError::Stream { .. }
                | DevoError::CloseTimeout { .. }
                | DevoError::EndedEarly { .. }
        )
    }

    /// Whether another connection may succeed: refused or broken connections and slow closes
    /// are; a TLS refusal (certificate, chain, name) or a bad secret is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            DevoError::Connect { .. }
            | DevoError::CloseTimeout { .. }
            | DevoError::EndedEarly { .. } => true,
            DevoError::Stream { detail, .. } => !detail.to_ascii_lowercase().contains("alert"),
            DevoError::Pem { .. } | DevoError::Handshake { .. } => false,
        }
    }
}

pub(crate) fn hint(detail: &str) -> &'static str {
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
