//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes of CBOR.
//!
//! The length is checked against the configured limit before a single byte of the body is
//! allocated, so a hostile peer cannot make us reserve memory by announcing a huge frame.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The default largest frame body, in bytes (1 MiB).
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 20;

/// Bytes in the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Why a frame could not be read or written. After any of these the byte stream is no longer
/// at a frame boundary (or is gone), so the connection must be closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a frame larger than our limit; nothing was allocated for it.
    #[error("frame of {declared} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The length the peer announced.
        declared: u64,
        /// Our configured limit.
        limit: usize,
    },
    /// The stream ended inside a frame.
    #[error("connection closed inside a frame: got {received} of {expected} bytes")]
    Truncated {
        /// Bytes the frame (or its prefix) should have had.
        expected: usize,
        /// Bytes that arrived before the end of the stream.
        received: usize,
    },
    /// The transport failed.
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks a declared length against the limit.
fn check_len(declared: u32, limit: usize) -> Result<usize, FrameError> {
    let len = usize::try_from(declared).map_err(|_| FrameError::TooLarge {
        declared: u64::from(declared),
        limit,
    })?;
    if len > limit {
        return Err(FrameError::TooLarge {
            declared: u64::from(declared),
            limit,
        });
    }
    Ok(len)
}

/// Reads exactly `buf.len()` bytes; returns how many arrived before end of stream.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        let n = reader.read(rest).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Reads one frame body. Returns `Ok(None)` when the stream ends cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    let got = read_full(reader, &mut prefix).await?;
    if got == 0 {
        return Ok(None);
    }
    if got < LENGTH_PREFIX_LEN {
        return Err(FrameError::Truncated {
            expected: LENGTH_PREFIX_LEN,
            received: got,
        });
    }
    let len = check_len(u32::from_be_bytes(prefix), limit)?;
    let mut body = vec![0u8; len];
    let got = read_full(reader, &mut body).await?;
    if got < len {
        return Err(FrameError::Truncated {
            expected: len,
            received: got,
        });
    }
    Ok(Some(body))
}

/// Writes one frame (prefix and body) and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
    limit: usize,
) -> Result<(), FrameError> {
    let prefix = encode_prefix(body.len(), limit)?;
    writer.write_all(&prefix).await?;
    writer.write_all(body).await?;
    writer.flush().await?;
    Ok(())
}

fn encode_prefix(len: usize, limit: usize) -> Result<[u8; LENGTH_PREFIX_LEN], FrameError> {
    let declared = u32::try_from(len).map_err(|_| FrameError::TooLarge {
        declared: len as u64,
        limit,
    })?;
    check_len(declared, limit)?;
    Ok(declared.to_be_bytes())
}

/// Encodes a whole frame into memory (prefix and body), refusing bodies over the limit.
pub fn encode_frame(body: &[u8], limit: usize) -> Result<Vec<u8>, FrameError> {
    let prefix = encode_prefix(body.len(), limit)?;
    let mut out = Vec::with_capacity(LENGTH_PREFIX_LEN + body.len());
    out.extend_from_slice(&prefix);
    out.extend_from_slice(body);
    Ok(out)
}

/// A sans-IO frame splitter: feed it bytes as they arrive, take whole frames out.
///
/// Used by tests, the fuzzer and the hostile-parent harness, which all need to see frame
/// boundaries without owning a socket.
#[derive(Debug)]
pub struct FrameDecoder {
    limit: usize,
    buffer: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder that refuses frames over `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            buffer: Vec::new(),
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Takes the next whole frame body, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(prefix) = self.buffer.get(..LENGTH_PREFIX_LEN) else {
            return Ok(None);
        };
        let mut declared = [0u8; LENGTH_PREFIX_LEN];
        declared.copy_from_slice(prefix);
        let len = check_len(u32::from_be_bytes(declared), self.limit)?;
        let end = LENGTH_PREFIX_LEN + len;
        if self.buffer.len() < end {
            return Ok(None);
        }
        let body = self.buffer.get(LENGTH_PREFIX_LEN..end).map(<[u8]>::to_vec);
        self.buffer.drain(..end);
        Ok(body)
    }

    /// Call at end of stream: an error if a partial frame is left over.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let expected = match self.buffer.get(..LENGTH_PREFIX_LEN) {
            Some(prefix) => {
                let mut declared = [0u8; LENGTH_PREFIX_LEN];
                declared.copy_from_slice(prefix);
                LENGTH_PREFIX_LEN + u32::from_be_bytes(declared) as usize
            }
            None => LENGTH_PREFIX_LEN,
        };
        Err(FrameError::Truncated {
            expected,
            received: self.buffer.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello", 16).await.unwrap();
        assert_eq!(wire, b"\0\0\0\x05hello");
        let mut reader = wire.as_slice();
        assert_eq!(
            read_frame(&mut reader, 16).await.unwrap().unwrap(),
            b"hello"
        );
        assert!(read_frame(&mut reader, 16).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn empty_frame_is_a_frame() {
        let wire = encode_frame(b"", 16).unwrap();
        let mut reader = wire.as_slice();
        assert_eq!(read_frame(&mut reader, 16).await.unwrap().unwrap(), b"");
    }

    #[tokio::test]
    async fn too_large_is_refused_before_reading_the_body() {
        // Announces 4 GiB - 1 but carries nothing: a reader that allocated first would abort.
        let wire = [0xff, 0xff, 0xff, 0xff];
        let mut reader = wire.as_slice();
        match read_frame(&mut reader, DEFAULT_MAX_FRAME_LEN).await {
            Err(FrameError::TooLarge { declared, limit }) => {
                assert_eq!(declared, u64::from(u32::MAX));
                assert_eq!(limit, DEFAULT_MAX_FRAME_LEN);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn one_past_the_limit_is_refused_and_the_limit_itself_is_accepted() {
        let at_limit = encode_frame(&[7u8; 8], 8).unwrap();
        assert_eq!(
            read_frame(&mut at_limit.as_slice(), 8)
                .await
                .unwrap()
                .unwrap(),
            [7u8; 8]
        );
        let over = encode_frame(&[7u8; 9], 9).unwrap();
        assert!(matches!(
            read_frame(&mut over.as_slice(), 8).await,
            Err(FrameError::TooLarge {
                declared: 9,
                limit: 8
            })
        ));
        assert!(matches!(
            encode_frame(&[0u8; 9], 8),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn truncated_prefix_and_body() {
        let mut reader: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut reader, 16).await,
            Err(FrameError::Truncated {
                expected: 4,
                received: 2
            })
        ));
        let mut reader: &[u8] = &[0, 0, 0, 5, b'a', b'b'];
        assert!(matches!(
            read_frame(&mut reader, 16).await,
            Err(FrameError::Truncated {
                expected: 5,
                received: 2
            })
        ));
    }

    #[test]
    fn decoder_splits_frames_across_arbitrary_chunks() {
        let mut wire = encode_frame(b"one", 16).unwrap();
        wire.extend(encode_frame(b"two!", 16).unwrap());
        for cut in 0..wire.len() {
            let mut decoder = FrameDecoder::new(16);
            let mut frames = Vec::new();
            decoder.extend(&wire[..cut]);
            while let Some(f) = decoder.next_frame().unwrap() {
                frames.push(f);
            }
            decoder.extend(&wire[cut..]);
            while let Some(f) = decoder.next_frame().unwrap() {
                frames.push(f);
            }
            assert_eq!(frames, vec![b"one".to_vec(), b"two!".to_vec()]);
            decoder.finish().unwrap();
        }
    }

    #[test]
    fn decoder_reports_leftovers_and_oversize() {
        let mut decoder = FrameDecoder::new(4);
        decoder.extend(&[0, 0, 0, 3, 1]);
        assert!(decoder.next_frame().unwrap().is_none());
        assert!(matches!(
            decoder.finish(),
            Err(FrameError::Truncated {
                expected: 7,
                received: 5
            })
        ));
        let mut decoder = FrameDecoder::new(4);
        decoder.extend(&[0, 0, 0, 5]);
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::TooLarge {
                declared: 5,
                limit: 4
            })
        ));
    }
}
