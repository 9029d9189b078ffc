//! Gzip for cached answers, compressed once per entity instead of once per request.
//!
//! A cached answer's body is `{"data":<stored bytes>,"extensions":{…}}`: the data is the same bytes
//! on every hit, the extensions (cost, budget) differ each time. tower-http's `CompressionLayer`
//! compresses whole bodies, so every hit would be compressed again, which costs more than the hit
//! itself. Here the start of the body is deflated once and ended with a sync flush (it stops on a
//! byte boundary), remembered by the entity's ETag (a digest of the data, so an entry can never be
//! stale), and each response appends its own extensions as a final stored deflate block, with the
//! gzip trailer's CRC-32 carried on from the remembered state. The result is one ordinary gzip
//! member, which every gzip decoder reads.
//!
//! Responses that carry this `Content-Encoding` pass the compression layer untouched.

use std::io::Write;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::DeflateEncoder;

/// The gzip member header: deflate, no name or time, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Most bytes of one stored deflate block.
const STORED_BLOCK_MAX: usize = u16::MAX as usize;
/// The bytes of compressed starts remembered, across all entities.
const REMEMBERED_BYTES: u64 = 32 * 1024 * 1024;

/// The compressed start of one entity's body.
struct CompressedStart {
    /// The gzip header and the deflated start, ending on a byte boundary (not final).
    bytes: Bytes,
    /// The CRC-32 state after the uncompressed start.
    crc: crc32fast::Hasher,
    /// The length of the uncompressed start.
    length: u64,
}

static STARTS: LazyLock<moka::sync::Cache<String, Arc<CompressedStart>>> = LazyLock::new(|| {
    moka::sync::Cache::builder()
        .max_capacity(REMEMBERED_BYTES)
        .weigher(|etag: &String, start: &Arc<CompressedStart>| {
            u32::try_from(etag.len() + start.bytes.len() + 64).unwrap_or(u32::MAX)
        })
        .time_to_idle(Duration::from_secs(300))
        .build()
});

/// Whether the client takes gzip, and prefers no other encoding the server offers over it.
pub fn gzip_preferred(request_headers: &HeaderMap) -> bool {
    let mut gzip = 0.0_f32;
    let mut others = 0.0_f32;
    for value in request_headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let quality = parts
                .find_map(|parameter| {
                    let (name, value) = parameter.split_once('=')?;
                    (name.trim().eq_ignore_ascii_case("q"))
                        .then(|| value.trim().parse::<f32>().ok())
                        .flatten()
                })
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = gzip.max(quality);
            } else if coding.eq_ignore_ascii_case("br")
                || (cfg!(feature = "zstd") && coding.eq_ignore_ascii_case("zstd"))
            {
                others = others.max(quality);
            }
        }
    }
    gzip > 0.0 && gzip >= others
}

/// The gzip body of `start` (the entity identified by `etag`, the same bytes every time) followed
/// by `rest`, as chunks; `start`'s compressed form is remembered.
pub fn gzip(etag: &str, start: &[Bytes], rest: &[u8]) -> Vec<Bytes> {
    let compressed = STARTS.get_with_by_ref(etag, || Arc::new(compress_start(start)));
    let mut crc = compressed.crc.clone();
    crc.update(rest);
    let length = compressed.length + rest.len() as u64;
    let mut end = Vec::with_capacity(rest.len() + 5 * (rest.len() / STORED_BLOCK_MAX + 1) + 8);
    stored_blocks(rest, &mut end);
    end.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE: the length modulo 2^32.
    end.extend_from_slice(&(length as u32).to_le_bytes());
    vec![compressed.bytes.clone(), Bytes::from(end)]
}

/// Deflates `start` at the fast level, ending with a sync flush.
fn compress_start(start: &[Bytes]) -> CompressedStart {
    let length: usize = start.iter().map(Bytes::len).sum();
    let mut out = Vec::with_capacity(length / 4 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    let mut encoder = DeflateEncoder::new(out, Compression::fast());
    let mut crc = crc32fast::Hasher::new();
    for chunk in start {
        crc.update(chunk);
        // Writing to a Vec cannot fail.
        let _ = encoder.write_all(chunk);
    }
    // A sync flush: the stream so far, ending on a byte boundary, with no final block.
    let _ = encoder.flush();
    let bytes = std::mem::take(encoder.get_mut());
    CompressedStart {
        bytes: Bytes::from(bytes),
        crc,
        length: length as u64,
    }
}

/// `data` as stored deflate blocks, the last one final.
fn stored_blocks(data: &[u8], out: &mut Vec<u8>) {
    let mut blocks = data.chunks(STORED_BLOCK_MAX).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        return;
    }
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none();
        let length = block.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&(!length).to_le_bytes());
        out.extend_from_slice(block);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use axum::http::HeaderValue;

    use super::*;

    fn gunzip(chunks: &[Bytes]) -> Vec<u8> {
        let body: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.to_vec()).collect();
        let mut decoder = flate2::read::GzDecoder::new(body.as_slice());
        let mut text = Vec::new();
        decoder.read_to_end(&mut text).expect("valid gzip");
        // One member: nothing follows it.
        assert!(decoder.into_inner().is_empty(), "a single gzip member");
        text
    }

    #[test]
    fn a_remembered_start_and_a_fresh_end_make_one_valid_member() {
        let data =
            Bytes::from("{\"articles\":[".to_owned() + &"{\"title\":\"x\"},".repeat(500) + "]}");
        let start = [Bytes::from_static(b"{\"data\":"), data.clone()];
        for end in [&b",\"extensions\":{\"cost\":1}}"[..], b"", &[b'a'; 70_000]] {
            let chunks = gzip("\"test-entity\"", &start, end);
            let expected: Vec<u8> = [&b"{\"data\":"[..], &data, end].concat();
            assert_eq!(gunzip(&chunks), expected);
        }
    }

    #[test]
    fn gzip_is_chosen_only_when_nothing_better_is_preferred() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).expect("a header value"),
            );
            gzip_preferred(&headers)
        };
        assert!(accepts("gzip"));
        assert!(accepts("gzip, deflate, br, zstd"));
        assert!(accepts("br;q=0.5, gzip"));
        assert!(!accepts("br, gzip;q=0.8"));
        // zstd is offered only by a build with the `zstd` feature.
        assert_eq!(accepts("zstd, gzip;q=0.8"), !cfg!(feature = "zstd"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("identity"));
        assert!(!gzip_preferred(&HeaderMap::new()));
    }
}
