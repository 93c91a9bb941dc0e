//! A rendering's gzip, made once and sent with a different ending each time.
//!
//! A store's whole inventory is ~180 KB of JSON and ~15 KB gzipped. Compressing it for every
//! browser that asks (tower-http's compression layer) cost about 1 ms of a core a request,
//! five times the rest of the answer, although the rendering itself is reused while the
//! store is unchanged: only its ending (the `freshness` beside the data) differs between
//! answers. So the rendering, less that ending, is deflated once and ends on a sync flush
//! (byte-aligned, not final); each answer adds its own few bytes as a final *stored* block
//! and the gzip trailer: the CRC-32 of the whole body (the head's, carried on over the
//! ending) and its length. One ordinary gzip member (RFC 1951 §3.2.4, RFC 1952), which
//! every decoder reads.

use std::io::Write;

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use flate2::Compression;
use flate2::write::DeflateEncoder;

/// magic, deflate, no flags, no modification time, no extra flags, unknown OS (RFC 1952).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// The gzip header and the deflated `head` of a body, ready for any ending.
#[derive(Debug, Clone)]
pub struct GzipHead {
    bytes: Bytes,
    crc: crc32fast::Hasher,
    length: u64,
}

impl GzipHead {
    pub fn new(head: &[u8]) -> Self {
        let mut encoder = DeflateEncoder::new(
            Vec::with_capacity(HEADER.len() + head.len() / 8),
            Compression::default(),
        );
        encoder.get_mut().extend_from_slice(&HEADER);
        // Writing into memory cannot fail; `flush` is deflate's sync flush.
        encoder.write_all(head).expect("deflating into memory");
        encoder.flush().expect("deflating into memory");
        // Taken before the encoder is dropped: dropping it writes a final block, now into
        // an empty vector.
        let bytes = std::mem::take(encoder.get_mut());
        let mut crc = crc32fast::Hasher::new();
        crc.update(head);
        Self {
            bytes: bytes.into(),
            crc,
            length: head.len() as u64,
        }
    }

    /// The whole body, gzipped: this head, then `tail` in stored blocks (the last final),
    /// then the trailer. Two chunks: the head is shared, not copied.
    pub fn with_tail(&self, tail: &[u8]) -> [Bytes; 2] {
        let blocks = tail.len() / usize::from(u16::MAX) + 1;
        let mut end = Vec::with_capacity(tail.len() + 5 * blocks + 8);
        let mut chunks = tail.chunks(usize::from(u16::MAX)).peekable();
        if chunks.peek().is_none() {
            end.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        }
        while let Some(chunk) = chunks.next() {
            // BFINAL on the last, BTYPE 00 (stored); the flush left the stream byte-aligned.
            end.push(u8::from(chunks.peek().is_none()));
            let length = chunk.len() as u16;
            end.extend_from_slice(&length.to_le_bytes());
            end.extend_from_slice(&(!length).to_le_bytes());
            end.extend_from_slice(chunk);
        }
        let mut crc = self.crc.clone();
        crc.update(tail);
        end.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE: the length modulo 2³².
        end.extend_from_slice(&((self.length + tail.len() as u64) as u32).to_le_bytes());
        [self.bytes.clone(), end.into()]
    }
}

/// Whether the request accepts gzip: `gzip` (or `x-gzip`) listed without `q=0`, or else `*`
/// without it (RFC 9110 §12.5.3).
pub fn accepted(request: &HeaderMap) -> bool {
    let mut wildcard = false;
    for coding in request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
    {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|parameter| {
            let parameter = parameter.trim();
            (parameter.starts_with("q=") || parameter.starts_with("Q="))
                && parameter[2..].trim().parse::<f32>() == Ok(0.0)
        });
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            return !refused;
        }
        if name == "*" {
            wildcard = !refused;
        }
    }
    wildcard
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use axum::http::HeaderValue;
    use flate2::read::GzDecoder;

    use super::*;

    fn gunzip(chunks: &[Bytes]) -> Vec<u8> {
        let gzipped: Vec<u8> = chunks.concat();
        let mut body = Vec::new();
        GzDecoder::new(&gzipped[..])
            .read_to_end(&mut body)
            .expect("a valid gzip member, its CRC and length checked");
        body
    }

    #[test]
    fn any_ending_spliced_on_reads_back_as_the_whole_body() {
        let head: Vec<u8> = (0..200_000u32)
            .flat_map(|n| format!("{{\"product_id\":{n}}},").into_bytes())
            .take(180_000)
            .collect();
        let gzip = GzipHead::new(&head);
        assert!(gzip.bytes.len() < head.len() / 4, "compressed");
        let long: Vec<u8> = (0..150_000u32).map(|n| (n % 251) as u8).collect();
        for tail in [&b""[..], b"}", b",\"freshness\":{\"0\":12}}", &long] {
            let body = gunzip(&gzip.with_tail(tail));
            assert_eq!(body.len(), head.len() + tail.len());
            assert!(body.starts_with(&head) && body.ends_with(tail));
        }
        assert_eq!(gunzip(&GzipHead::new(b"").with_tail(b"[]")), b"[]");
    }

    #[test]
    fn gzip_is_accepted_unless_refused() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            accepted(&headers)
        };
        assert!(accepts("gzip, deflate, br, zstd"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts("x-gzip"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("*, gzip; q=0.0"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts("identity"));
        assert!(!accepted(&HeaderMap::new()));
    }
}
