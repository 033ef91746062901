//! The connection with optional COMPRESS=DEFLATE (RFC 4978): raw deflate in both
//! directions, each write ending with a sync flush so the client sees complete
//! responses at once.

use std::io;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use pochta_net::Conn;
use tokio::io::AsyncReadExt;

/// Raw bytes read per system call.
const READ_CHUNK: usize = 8 * 1024;

struct Deflate {
    compress: Compress,
    decompress: Decompress,
    /// Compressed bytes read but not yet inflated.
    pending: Vec<u8>,
}

/// A client connection, compressed or not.
pub struct Transport {
    /// The underlying connection (clear or TLS).
    pub conn: Conn,
    deflate: Option<Deflate>,
    raw: Vec<u8>,
}

impl Transport {
    /// Wraps a connection (uncompressed).
    pub fn new(conn: Conn) -> Transport {
        Transport {
            conn,
            deflate: None,
            raw: vec![0u8; READ_CHUNK],
        }
    }

    /// Switches both directions to deflate (after `OK DEFLATE active` was sent).
    pub fn start_deflate(&mut self) {
        self.deflate = Some(Deflate {
            compress: Compress::new(Compression::fast(), false),
            decompress: Decompress::new(false),
            pending: Vec::new(),
        });
    }

    /// True once compression is on.
    pub fn compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Reads some bytes (decompressed); 0 at end of stream.
    pub async fn read(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        loop {
            if let Some(d) = self.deflate.as_mut()
                && !d.pending.is_empty()
            {
                let n = inflate(d, out)?;
                if n > 0 {
                    return Ok(n);
                }
            }
            let n = self.conn.read(&mut self.raw).await?;
            if n == 0 {
                return Ok(0);
            }
            match self.deflate.as_mut() {
                None => {
                    out.extend_from_slice(&self.raw[..n]);
                    return Ok(n);
                }
                Some(d) => d.pending.extend_from_slice(&self.raw[..n]),
            }
        }
    }

    /// Writes and flushes `data`, compressing it if compression is on.
    pub async fn send(&mut self, data: &[u8], timeout: Duration) -> io::Result<()> {
        match self.deflate.as_mut() {
            None => self.conn.send(data, timeout).await,
            Some(d) => {
                let packed = deflate(d, data)?;
                self.conn.send(&packed, timeout).await
            }
        }
    }
}

fn inflate(d: &mut Deflate, out: &mut Vec<u8>) -> io::Result<usize> {
    let start = out.len();
    let mut pos = 0;
    loop {
        out.reserve(16 * 1024);
        let (before_in, before_out) = (d.decompress.total_in(), d.decompress.total_out());
        let status = d
            .decompress
            .decompress_vec(&d.pending[pos..], out, FlushDecompress::Sync)
            .map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad deflate data: {e}"))
            })?;
        let used = (d.decompress.total_in() - before_in) as usize;
        let made = (d.decompress.total_out() - before_out) as usize;
        pos += used;
        let no_progress = used == 0 && made == 0;
        let drained = pos >= d.pending.len() && out.len() < out.capacity();
        if no_progress || drained || matches!(status, Status::StreamEnd) {
            break;
        }
    }
    d.pending.drain(..pos);
    Ok(out.len() - start)
}

fn deflate(d: &mut Deflate, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let mut offset = 0;
    loop {
        out.reserve(data.len() / 2 + 1024);
        let before = d.compress.total_in();
        d.compress
            .compress_vec(&data[offset..], &mut out, FlushCompress::Sync)
            .map_err(|e| io::Error::other(format!("deflate failed: {e}")))?;
        offset += (d.compress.total_in() - before) as usize;
        // Done when all input is in and the flush left spare room.
        if offset >= data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflate_then_inflate_round_trips_in_pieces() {
        let mut a = Deflate {
            compress: Compress::new(Compression::fast(), false),
            decompress: Decompress::new(false),
            pending: Vec::new(),
        };
        let mut b = Deflate {
            compress: Compress::new(Compression::fast(), false),
            decompress: Decompress::new(false),
            pending: Vec::new(),
        };
        let mut received = Vec::new();
        let msgs: Vec<Vec<u8>> = (0..50)
            .map(|i| {
                format!("* {i} FETCH (FLAGS (\\Seen))\r\n")
                    .repeat(i % 7 + 1)
                    .into_bytes()
            })
            .collect();
        for m in &msgs {
            let packed = deflate(&mut a, m).unwrap();
            // Deliver in two pieces to exercise partial input.
            let (x, y) = packed.split_at(packed.len() / 2);
            b.pending.extend_from_slice(x);
            inflate(&mut b, &mut received).unwrap();
            b.pending.extend_from_slice(y);
            inflate(&mut b, &mut received).unwrap();
        }
        assert_eq!(received, msgs.concat());
    }
}
