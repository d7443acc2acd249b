//! Reading an invocation body without a hard 413.
//!
//! A 413 is a failure the host retries and then checkpoints past: the batch would be lost. So an
//! invocation over the limit is still read to its end, keeping only its first and last
//! [`KEPT_BYTES`] and a SHA-256 of the whole, and is answered with one `invocation_too_large`
//! dead letter that names where its events still are (partition and sequence numbers, read from
//! the host's `Metadata`, which it writes after `Data`). Memory stays at the limit plus twice
//! [`KEPT_BYTES`], whatever arrives.

use axum::body::{Body, Bytes};
use futures::StreamExt;
use sha2::{Digest, Sha256};

/// Bytes kept from each end of an oversized body: the host's `Metadata` for a full batch
/// (per-event sequence numbers, offsets, times and properties) fits well within this.
pub const KEPT_BYTES: usize = 2 << 20;

/// A body read whole, or the ends of one that was over the limit.
pub enum ReadBody {
    Whole(Bytes),
    TooLarge(Oversized),
}

pub struct Oversized {
    pub total: u64,
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the request body: {0}")]
pub struct BodyError(#[source] axum::Error);

pub async fn read_limited(body: Body, limit: usize) -> Result<ReadBody, BodyError> {
    let mut stream = body.into_data_stream();
    let mut whole: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError)?;
        if whole.len() + chunk.len() <= limit {
            whole.extend_from_slice(&chunk);
            continue;
        }
        // Over the limit: from here on only the ends and the hash are kept.
        let mut ends = Ends::default();
        ends.take(&whole);
        drop(whole);
        ends.take(&chunk);
        while let Some(chunk) = stream.next().await {
            ends.take(&chunk.map_err(BodyError)?);
        }
        return Ok(ReadBody::TooLarge(ends.finish()));
    }
    Ok(ReadBody::Whole(Bytes::from(whole)))
}

/// The first and last [`KEPT_BYTES`] of a stream, its size and its hash.
#[derive(Default)]
struct Ends {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    hasher: Sha256,
    total: u64,
}

impl Ends {
    fn take(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.total += bytes.len() as u64;
        let room = KEPT_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
        let keep = &bytes[bytes.len().saturating_sub(KEPT_BYTES)..];
        let overflow = (self.tail.len() + keep.len()).saturating_sub(KEPT_BYTES);
        self.tail.drain(..overflow.min(self.tail.len()));
        self.tail.extend(keep);
    }

    fn finish(self) -> Oversized {
        Oversized {
            total: self.total,
            head: self.head,
            tail: self.tail.into_iter().collect(),
            sha256: domain::wire::hex(&self.hasher.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(chunks: Vec<Vec<u8>>) -> Body {
        let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_whole_and_larger_ones_keep_only_their_ends() {
        let small = read_limited(body_of(vec![b"ab".to_vec(), b"cd".to_vec()]), 4).await.unwrap();
        assert!(matches!(small, ReadBody::Whole(b) if &b[..] == b"abcd"));

        let chunk: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        let chunks = vec![chunk.clone(); 7]; // 7 MiB through a 1 KiB limit
        let ReadBody::TooLarge(big) = read_limited(body_of(chunks.clone()), 1024).await.unwrap() else {
            panic!("over the limit");
        };
        let all: Vec<u8> = chunks.concat();
        assert_eq!(big.total, all.len() as u64);
        assert_eq!(big.head, all[..KEPT_BYTES]);
        assert_eq!(big.tail, all[all.len() - KEPT_BYTES..]);
        assert_eq!(big.sha256, domain::wire::hex(&Sha256::digest(&all)));

        // Just over the limit: the bytes read before it was crossed are part of both ends.
        let ReadBody::TooLarge(just) =
            read_limited(body_of(vec![vec![1; 600], vec![2; 600]]), 1000).await.unwrap()
        else {
            panic!("over the limit");
        };
        let all = [vec![1u8; 600], vec![2; 600]].concat();
        assert_eq!((just.head.clone(), just.tail.clone(), just.total), (all.clone(), all, 1200));
    }
}
