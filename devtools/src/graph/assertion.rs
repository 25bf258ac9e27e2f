//! Certificate client assertions, checked like Entra ID does as far as tests need it: the
//! assertion type, the JWT's shape, the registered certificate (`x5t` or `x5t#S256`), the
//! RS256/PS256 signature, then `aud`, `iss`/`sub`, the validity window and `jti`.
//!
//! Exists so the product's certificate credential is tested against the same checks, and the
//! AADSTS codes, that the real token endpoint applies.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Utc;
use serde_json::Value;

use super::respond::{Resp, aadsts};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A certificate registered on the application (certificate credential).
pub(super) struct AppCert {
    der: Vec<u8>,
    x5t: String,
    x5t_s256: String,
}

impl AppCert {
    /// Parses the first certificate of `cert_pem`.
    pub fn from_pem(cert_pem: &str) -> Result<AppCert, crate::pki::PkiError> {
        let mut certs = crate::pki::parse_certs(cert_pem)?;
        let der = certs.remove(0).to_vec();
        Ok(AppCert {
            x5t: crate::pki::thumbprint(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der),
            x5t_s256: crate::pki::thumbprint(&aws_lc_rs::digest::SHA256, &der),
            der,
        })
    }
}

/// A decoded JWT: header, claims, the signed part and the signature.
struct Jwt {
    header: Value,
    claims: Value,
    signed: String,
    signature: Vec<u8>,
}

fn malformed(why: &str) -> Box<Resp> {
    Box::new(aadsts(
        400,
        "invalid_request",
        50027,
        &format!("JWT token is invalid or malformed: {why}."),
    ))
}

fn invalid_client(code: u32, description: &str) -> Box<Resp> {
    Box::new(aadsts(401, "invalid_client", code, description))
}

/// Validates the form's `client_assertion` for `client_id` against the tenant's registered
/// certificates; `audience` is this tenant's token endpoint URL.
pub(super) fn check_assertion(
    certs: &[AppCert],
    form: &HashMap<String, String>,
    audience: &str,
    client_id: &str,
) -> Result<(), Box<Resp>> {
    let jwt = decode(form)?;
    let cert = find_cert(certs, &jwt.header)?;
    verify_signature(cert, &jwt)?;
    check_claims(&jwt.claims, audience, client_id)
}

/// Checks the assertion type and splits and decodes the JWT.
fn decode(form: &HashMap<String, String>) -> Result<Jwt, Box<Resp>> {
    let assertion_type = form
        .get("client_assertion_type")
        .map(String::as_str)
        .unwrap_or("");
    if assertion_type != JWT_BEARER {
        return Err(Box::new(aadsts(
            400,
            "invalid_request",
            50027,
            &format!(
                "Invalid client_assertion_type '{assertion_type}': it must be '{JWT_BEARER}'."
            ),
        )));
    }
    let assertion = form
        .get("client_assertion")
        .ok_or_else(|| malformed("client_assertion is missing"))?;
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err(malformed("a JWT has three dot-separated parts"));
    }
    let decode_json =
        |part: &str| -> Option<Value> { serde_json::from_slice(&B64.decode(part).ok()?).ok() };
    Ok(Jwt {
        header: decode_json(parts[0])
            .ok_or_else(|| malformed("the header is not base64url JSON"))?,
        claims: decode_json(parts[1])
            .ok_or_else(|| malformed("the payload is not base64url JSON"))?,
        signed: format!("{}.{}", parts[0], parts[1]),
        signature: B64
            .decode(parts[2])
            .map_err(|_| malformed("the signature is not base64url"))?,
    })
}

/// The registered certificate the header's `x5t#S256` or `x5t` names.
fn find_cert<'a>(certs: &'a [AppCert], header: &Value) -> Result<&'a AppCert, Box<Resp>> {
    let s256 = header["x5t#S256"].as_str();
    let sha1 = header["x5t"].as_str();
    certs
        .iter()
        .find(|c| Some(c.x5t_s256.as_str()) == s256 || Some(c.x5t.as_str()) == sha1)
        .ok_or_else(|| {
            invalid_client(
                700027,
                &format!(
                    "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}']",
                    s256.or(sha1).unwrap_or("none (no x5t or x5t#S256 header)")
                ),
            )
        })
}

fn verify_signature(cert: &AppCert, jwt: &Jwt) -> Result<(), Box<Resp>> {
    let alg: &dyn rustls_pki_types::SignatureVerificationAlgorithm = match jwt.header["alg"]
        .as_str()
    {
        Some("RS256") => webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
        Some("PS256") => webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        other => {
            return Err(invalid_client(
                700027,
                &format!(
                    "Client assertion contains an unsupported signing algorithm {other:?} (use RS256 or PS256)."
                ),
            ));
        }
    };
    let der = rustls_pki_types::CertificateDer::from(cert.der.as_slice());
    let verified = webpki::EndEntityCert::try_from(&der).ok().map(|ee| {
        ee.verify_signature(alg, jwt.signed.as_bytes(), &jwt.signature)
            .is_ok()
    });
    if verified != Some(true) {
        return Err(invalid_client(
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    Ok(())
}

fn check_claims(claims: &Value, audience: &str, client_id: &str) -> Result<(), Box<Resp>> {
    if claims["aud"].as_str() != Some(audience) {
        return Err(invalid_client(
            700023,
            &format!(
                "Client assertion audience claim does not match Realm issuer: 'aud' must be '{audience}'."
            ),
        ));
    }
    if claims["iss"].as_str() != Some(client_id) || claims["sub"].as_str() != Some(client_id) {
        return Err(invalid_client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter: 'iss' and 'sub' must be the client id.",
        ));
    }
    let now = Utc::now().timestamp();
    let exp = claims["exp"].as_i64();
    let nbf = claims["nbf"].as_i64().unwrap_or(now);
    if exp.is_none_or(|e| e <= now) || nbf > now + 300 {
        return Err(Box::new(aadsts(
            400,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        )));
    }
    if claims["jti"].as_str().is_none_or(str::is_empty) {
        return Err(malformed("the 'jti' claim is required"));
    }
    Ok(())
}
