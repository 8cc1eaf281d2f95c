//! Record framing: encoding into the write buffer, and verified decoding from
//! a stream or a slice.

use std::io::{self, Read};

use crate::constants::{RECORD_BODY_SIZE_MAX, RECORD_HEADER_SIZE, RECORD_MAGIC};

/// Bytes of the header covered by the CRC (magic, body length, seq).
const HEADER_CRC_COVERED: usize = 16;

/// Lossless on every supported target; centralised so no `as` is needed.
pub(crate) fn to_u64(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}

/// Decoded, structurally valid header. The CRC still has to be checked
/// against the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub body_len: usize,
    pub seq: u64,
    pub crc: u32,
}

impl Header {
    pub(crate) fn decode(bytes: &[u8; RECORD_HEADER_SIZE]) -> Result<Header, String> {
        let magic = read_u32(bytes, 0);
        if magic != RECORD_MAGIC {
            return Err(format!("bad record magic {magic:#010x}"));
        }
        let body_len = read_u32(bytes, 4);
        if body_len > RECORD_BODY_SIZE_MAX {
            return Err(format!(
                "record body length {body_len} exceeds the limit of {RECORD_BODY_SIZE_MAX}"
            ));
        }
        let reserved = read_u32(bytes, 20);
        if reserved != 0 {
            return Err(format!("reserved header field is {reserved:#x}, not zero"));
        }
        Ok(Header {
            body_len: usize::try_from(body_len).map_err(|e| e.to_string())?,
            seq: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            crc: read_u32(bytes, 16),
        })
    }

    pub(crate) fn check_body(
        &self,
        header: &[u8; RECORD_HEADER_SIZE],
        body: &[u8],
    ) -> Result<(), String> {
        let computed = checksum(header, body);
        if computed == self.crc {
            Ok(())
        } else {
            Err(format!(
                "checksum mismatch for seq {}: stored {:#010x}, computed {computed:#010x}",
                self.seq, self.crc
            ))
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn checksum(header: &[u8; RECORD_HEADER_SIZE], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[..HEADER_CRC_COVERED]), body)
}

/// Appends one framed record to `buf`. The caller has checked the body size.
pub(crate) fn encode(buf: &mut Vec<u8>, seq: u64, body: &[u8]) {
    let body_len = u32::try_from(body.len()).expect("body length checked by caller");
    assert!(body_len <= RECORD_BODY_SIZE_MAX);
    let mut header = [0u8; RECORD_HEADER_SIZE];
    header[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&body_len.to_le_bytes());
    header[8..16].copy_from_slice(&seq.to_le_bytes());
    let crc = checksum(&header, body);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    buf.reserve(RECORD_HEADER_SIZE + body.len());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(body);
}

/// Total framed length of the record starting at `at` in a buffer this crate
/// encoded itself.
pub(crate) fn framed_len_at(buf: &[u8], at: usize) -> usize {
    let body_len = read_u32(buf, at + 4);
    RECORD_HEADER_SIZE + usize::try_from(body_len).expect("u32 fits in usize")
}

/// Decodes and fully verifies the record at the start of `buf`, returning its
/// seq and body.
pub(crate) fn decode_slice(buf: &[u8]) -> Result<(u64, &[u8]), String> {
    let header: &[u8; RECORD_HEADER_SIZE] = buf
        .get(..RECORD_HEADER_SIZE)
        .ok_or_else(|| format!("torn header: {} of {RECORD_HEADER_SIZE} bytes", buf.len()))?
        .try_into()
        .expect("slice of header size");
    let h = Header::decode(header)?;
    let body = buf.get(RECORD_HEADER_SIZE..RECORD_HEADER_SIZE + h.body_len).ok_or_else(|| {
        format!("torn body: {} of {} bytes", buf.len() - RECORD_HEADER_SIZE, h.body_len)
    })?;
    h.check_body(header, body)?;
    Ok((h.seq, body))
}

/// Finds the first position in `buf` where a fully valid record starts. Used
/// to tell a torn tail (nothing valid follows) from mid-log corruption.
pub(crate) fn find_valid_record(buf: &[u8]) -> Option<usize> {
    let magic = RECORD_MAGIC.to_le_bytes();
    buf.windows(magic.len())
        .enumerate()
        .filter(|(_, w)| *w == magic)
        .map(|(at, _)| at)
        .find(|&at| decode_slice(&buf[at..]).is_ok())
}

/// Outcome of reading the next record from a stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A verified record; its body is in [`RecordReader::body`].
    Record { seq: u64 },
    /// Clean end of data exactly at a record boundary.
    End,
    /// The record at [`RecordReader::offset`] is torn or corrupt.
    Bad(String),
}

/// Streams verified records out of a reader, reusing one body buffer.
pub(crate) struct RecordReader<R> {
    inner: R,
    /// Offset of the next record (or, after `Bad`, of the bad one).
    pub offset: u64,
    pub body: Vec<u8>,
}

impl<R: Read> RecordReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        RecordReader { inner, offset: 0, body: Vec::new() }
    }

    pub(crate) fn next(&mut self) -> io::Result<Next> {
        let mut header = [0u8; RECORD_HEADER_SIZE];
        let got = read_full(&mut self.inner, &mut header)?;
        if got == 0 {
            return Ok(Next::End);
        }
        if got < RECORD_HEADER_SIZE {
            return Ok(Next::Bad(format!("torn header: {got} of {RECORD_HEADER_SIZE} bytes")));
        }
        let h = match Header::decode(&header) {
            Ok(h) => h,
            Err(reason) => return Ok(Next::Bad(reason)),
        };
        self.body.clear();
        // The length was bounded by decode, so this cannot over-allocate.
        (&mut self.inner).take(to_u64(h.body_len)).read_to_end(&mut self.body)?;
        if self.body.len() < h.body_len {
            return Ok(Next::Bad(format!(
                "torn body: {} of {} bytes",
                self.body.len(),
                h.body_len
            )));
        }
        if let Err(reason) = h.check_body(&header, &self.body) {
            return Ok(Next::Bad(reason));
        }
        self.offset += to_u64(RECORD_HEADER_SIZE + h.body_len);
        Ok(Next::Record { seq: h.seq })
    }
}

/// Like `read_exact`, but reports how much was read instead of failing at EOF.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_roundtrip() {
        let mut buf = Vec::new();
        let bodies: [&[u8]; 3] = [b"", b"hello", &[7u8; 1000]];
        for (i, body) in bodies.iter().enumerate() {
            encode(&mut buf, to_u64(i) + 1, body);
        }
        assert_eq!(buf.len(), 3 * RECORD_HEADER_SIZE + 5 + 1000);

        // Slice decoding.
        let mut at = 0;
        for (i, body) in bodies.iter().enumerate() {
            let (seq, got) = decode_slice(&buf[at..]).unwrap();
            assert_eq!(seq, to_u64(i) + 1);
            assert_eq!(got, *body);
            assert_eq!(framed_len_at(&buf, at), RECORD_HEADER_SIZE + body.len());
            at += framed_len_at(&buf, at);
        }

        // Stream decoding.
        let mut reader = RecordReader::new(&buf[..]);
        for (i, body) in bodies.iter().enumerate() {
            assert_eq!(reader.next().unwrap(), Next::Record { seq: to_u64(i) + 1 });
            assert_eq!(reader.body, *body);
        }
        assert_eq!(reader.next().unwrap(), Next::End);
        assert_eq!(reader.offset, to_u64(buf.len()));
    }

    #[test]
    fn header_layout_is_little_endian() {
        let mut buf = Vec::new();
        encode(&mut buf, 0x0102_0304_0506_0708, b"abc");
        assert_eq!(&buf[0..4], b"HFJ1");
        assert_eq!(&buf[4..8], &[3, 0, 0, 0]);
        assert_eq!(&buf[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&buf[20..24], &[0, 0, 0, 0]);
        assert_eq!(&buf[24..], b"abc");
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, 42, b"some body bytes");
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x01;
            assert!(decode_slice(&bad).is_err(), "flip at {at} not detected");
            let mut reader = RecordReader::new(&bad[..]);
            assert!(matches!(reader.next().unwrap(), Next::Bad(_)));
        }
    }

    #[test]
    fn torn_records_are_reported_not_misread() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, &[9u8; 100]);
        for len in 1..buf.len() {
            let mut reader = RecordReader::new(&buf[..len]);
            assert!(matches!(reader.next().unwrap(), Next::Bad(_)), "len {len}");
            assert_eq!(reader.offset, 0);
        }
    }

    #[test]
    fn oversized_length_rejected_before_allocating() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, b"x");
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut reader = RecordReader::new(&buf[..]);
        match reader.next().unwrap() {
            Next::Bad(reason) => assert!(reason.contains("exceeds"), "{reason}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn find_valid_record_skips_garbage() {
        let mut buf = b"HFJ1 garbage that looks like a magic".to_vec();
        let start = buf.len();
        encode(&mut buf, 5, b"payload");
        assert_eq!(find_valid_record(&buf), Some(start));
        assert_eq!(find_valid_record(&buf[..buf.len() - 1]), None);
    }
}
