//! HTTP/1.1 message framing both sides of the proxy share: the framing
//! errors, the body decoders (length-delimited, chunked, read until close)
//! and the chunk encoder. The upstream client reads response bodies with
//! them (`upstream`), the server reads request bodies (`downstream`).
//!
//! Pure code over byte buffers, unit-tested without sockets. The chunked
//! grammar is strict: a bad size line, chunk data not followed by CRLF, or
//! oversized trailers are errors, and an error always ends the connection
//! (the next message could not be found reliably).

use std::io::Write;

use bytes::{Buf, Bytes, BytesMut};

/// The longest chunk-size line (with extensions) accepted.
pub const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most trailer bytes skipped before the connection is given up.
pub const MAX_TRAILERS: usize = 64 * 1024;

/// Why bytes from a peer cannot be read as HTTP/1.1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("malformed message head: {0}")]
    Malformed(httparse::Error),
    #[error("message head too large")]
    HeadTooLarge,
    #[error("message has both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("invalid chunk size line")]
    BadChunkSize,
    #[error("chunk data not followed by CRLF")]
    BadChunkEnd,
    #[error("trailer section too large")]
    TrailersTooLarge,
    #[error("the peer closed the connection mid-body")]
    Truncated,
}

/// Appends one chunk of a chunked body.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the size line of a chunk of `len` bytes (the data and its CRLF
/// follow).
pub fn encode_chunk_head(out: &mut Vec<u8>, len: usize) {
    let _ = write!(out, "{len:x}\r\n");
}

/// The last chunk of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: a bodiless request, or a HEAD, 1xx, 204, 304 or
    /// `Content-Length: 0` response.
    Empty,
    Length(u64),
    Chunked,
    /// No length: the body ends when the upstream closes.
    UntilClose,
}

/// One step of body decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// The body is complete; the buffer holds whatever followed it.
    End,
    NeedMore,
}

/// A body decoder: consumes body bytes from the front of a connection's
/// read buffer, handing out zero-copy slices of it. Both sides use it: the
/// upstream client for responses, the server for request bodies.
#[derive(Debug)]
pub enum BodyDecoder {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

impl BodyDecoder {
    pub fn new(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => BodyDecoder::Done,
            BodyFraming::Length(n) => BodyDecoder::Length(n),
            BodyFraming::Chunked => BodyDecoder::Chunked(Chunked::Size),
            BodyFraming::UntilClose => BodyDecoder::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }

    /// Bytes still expected, when the framing says.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            BodyDecoder::Length(n) => Some(*n),
            BodyDecoder::Done => Some(0),
            _ => None,
        }
    }

    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ProtocolError> {
        match self {
            BodyDecoder::Done => Ok(Decoded::End),
            BodyDecoder::Length(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = (*left).min(buf.len() as u64);
                *left -= take;
                let data = buf.split_to(take as usize).freeze();
                if *left == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(Decoded::Data(data))
            }
            BodyDecoder::UntilClose => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                Ok(Decoded::Data(buf.split().freeze()))
            }
            BodyDecoder::Chunked(state) => {
                let step = state.decode(buf)?;
                if step == Decoded::End {
                    *self = BodyDecoder::Done;
                }
                Ok(step)
            }
        }
    }

    /// The peer closed: the end of a read-until-close body, otherwise a
    /// truncated one.
    pub fn eof(&mut self) -> Result<Decoded, ProtocolError> {
        match self {
            BodyDecoder::UntilClose | BodyDecoder::Done => {
                *self = BodyDecoder::Done;
                Ok(Decoded::End)
            }
            _ => Err(ProtocolError::Truncated),
        }
    }
}

/// Where a chunked body decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    Size,
    Data(u64),
    DataEnd,
    /// Skipping trailer fields; the count is the bytes skipped so far.
    Trailers(usize),
    Done,
}

impl Chunked {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ProtocolError> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE, ProtocolError::BadChunkSize)?
                    else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(&line)?;
                    *self = if size == 0 {
                        Chunked::Trailers(0)
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = left.min(buf.len() as u64);
                    *self = if take == left {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left - take)
                    };
                    return Ok(Decoded::Data(buf.split_to(take as usize).freeze()));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ProtocolError::BadChunkEnd);
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers(seen) => {
                    let room = MAX_TRAILERS.saturating_sub(seen);
                    let Some(line) = take_line(buf, room, ProtocolError::TrailersTooLarge)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    *self = if line.is_empty() {
                        Chunked::Done
                    } else {
                        Chunked::Trailers(seen + line.len() + 2)
                    };
                }
                Chunked::Done => return Ok(Decoded::End),
            }
        }
    }
}

/// Removes one CRLF-terminated line from the front of `buf` (without the
/// CRLF); a line longer than `max` is `err`.
fn take_line(
    buf: &mut BytesMut,
    max: usize,
    err: ProtocolError,
) -> Result<Option<BytesMut>, ProtocolError> {
    let window = &buf[..buf.len().min(max + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) if i == 0 || window[i - 1] != b'\r' => Err(err),
        Some(i) => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i - 1);
            Ok(Some(line))
        }
        None if buf.len() >= max + 2 => Err(err),
        None => Ok(None),
    }
}

/// `1a;ext=v` → 26. At most 15 hex digits (no overflow), at least one.
fn chunk_size(line: &[u8]) -> Result<u64, ProtocolError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(ProtocolError::BadChunkSize);
    }
    match line.get(digits) {
        None | Some(b';' | b' ' | b'\t') => {}
        Some(_) => return Err(ProtocolError::BadChunkSize),
    }
    line[..digits].iter().try_fold(0u64, |n, &b| {
        let d = (b as char)
            .to_digit(16)
            .ok_or(ProtocolError::BadChunkSize)?;
        Ok(n * 16 + u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes the whole body in `raw` fed one byte at a time, so every
    /// state boundary is crossed with a partial buffer.
    fn decode_bytewise(framing: BodyFraming, raw: &[u8]) -> Result<(Vec<u8>, bool), ProtocolError> {
        let mut dec = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in raw {
            buf.extend_from_slice(&[b]);
            loop {
                match dec.decode(&mut buf)? {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::End => return Ok((out, true)),
                    Decoded::NeedMore => break,
                }
            }
        }
        Ok((out, dec.is_done()))
    }

    #[test]
    fn chunk_encoding_frames_data_and_skips_empty_frames() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"");
        encode_chunk(&mut out, &[b'x'; 26]);
        out.extend_from_slice(LAST_CHUNK);
        let mut expected = b"1a\r\n".to_vec();
        expected.extend_from_slice(&[b'x'; 26]);
        expected.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn length_body_stops_at_its_length() {
        let mut dec = BodyDecoder::new(BodyFraming::Length(5));
        let mut buf = BytesMut::from(&b"helloHTTP/1.1"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"hello"))
        );
        assert!(dec.is_done());
        assert_eq!(dec.decode(&mut buf).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"HTTP/1.1", "bytes after the body stay unread");
    }

    #[test]
    fn chunked_body_decodes_across_every_split_and_skips_trailers() {
        let raw =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
        let (body, done) = decode_bytewise(BodyFraming::Chunked, raw).unwrap();
        assert!(done);
        assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz");
        let mut dec = BodyDecoder::new(BodyFraming::Chunked);
        let mut buf = BytesMut::from(&b"0\r\n\r\nleftover"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"leftover");
    }

    #[test]
    fn bad_chunk_framing_is_refused() {
        for (raw, err) in [
            (&b"zz\r\n"[..], ProtocolError::BadChunkSize),
            (b"\r\n", ProtocolError::BadChunkSize),
            (b"-1\r\n", ProtocolError::BadChunkSize),
            (b"5\n", ProtocolError::BadChunkSize),
            (b"1234567890abcdef0\r\n", ProtocolError::BadChunkSize),
            (b"3\r\nabcXY", ProtocolError::BadChunkEnd),
        ] {
            assert_eq!(
                decode_bytewise(BodyFraming::Chunked, raw).unwrap_err(),
                err,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let mut endless = b"5".to_vec();
        endless.resize(MAX_CHUNK_LINE + 10, b' ');
        assert_eq!(
            decode_bytewise(BodyFraming::Chunked, &endless).unwrap_err(),
            ProtocolError::BadChunkSize
        );
        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() <= MAX_TRAILERS + 100 {
            trailers.extend_from_slice(b"X-T: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(
            decode_bytewise(BodyFraming::Chunked, &trailers).unwrap_err(),
            ProtocolError::TrailersTooLarge
        );
    }

    #[test]
    fn eof_ends_only_a_read_until_close_body() {
        let (body, done) = decode_bytewise(BodyFraming::UntilClose, b"all of it").unwrap();
        assert_eq!((body.as_slice(), done), (&b"all of it"[..], false));
        assert_eq!(
            BodyDecoder::new(BodyFraming::UntilClose).eof().unwrap(),
            Decoded::End
        );
        let mut dec = BodyDecoder::new(BodyFraming::Length(10));
        assert_eq!(
            dec.decode(&mut BytesMut::from(&b"half"[..])).unwrap(),
            Decoded::Data(Bytes::from_static(b"half"))
        );
        assert_eq!(dec.eof().unwrap_err(), ProtocolError::Truncated);
        let mut dec = BodyDecoder::new(BodyFraming::Chunked);
        assert_eq!(dec.eof().unwrap_err(), ProtocolError::Truncated);
    }
}
