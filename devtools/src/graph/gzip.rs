//! Compressed answers: a page (of records or of delivery details) is sent gzip-encoded when
//! the request's `Accept-Encoding` allows it and the server serves gzip (the default, as Graph
//! does).
//!
//! Exists so the product's `Accept-Encoding: gzip` is exercised, and the bytes it saves can be
//! measured, against the same server that serves the data.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use hyper::header::{CONTENT_ENCODING, HeaderValue};

use super::respond::Resp;

/// Whether an `Accept-Encoding` value accepts gzip: a `gzip` (or `*`) coding whose `q` is not 0.
pub(super) fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|value| {
        value.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

/// The answer `make` builds of `body`: gzip-compressed, and marked so, when `gzip` (the
/// request accepts it and the server serves it).
pub(super) fn respond(gzip: bool, body: Vec<u8>, make: impl FnOnce(Vec<u8>) -> Resp) -> Resp {
    let mut resp = make(if gzip { compress(&body) } else { body });
    if gzip {
        resp.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

/// `body` gzip-compressed at the default level (what a web server's on-the-fly compression
/// typically uses).
pub(super) fn compress(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 8), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn accept_encoding_is_read_as_http_says() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("br, GZIP;q=0.5, deflate")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn a_compressed_body_decodes_to_the_same_bytes() {
        let body = br#"{"value":[{"id":"a"},{"id":"a"},{"id":"a"}]}"#.repeat(100);
        let packed = compress(&body);
        assert!(
            packed.len() * 10 < body.len(),
            "{} of {}",
            packed.len(),
            body.len()
        );
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(packed.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
    }
}
