//! Record framing: encoding into the write buffer, and verified decoding from
//! a stream or a slice.

use std::io::{self, Read};

use crate::constants::{
    JOURNAL_FORMAT, RECORD_BODY_SIZE_MAX, RECORD_HEADER_SIZE, RECORD_MAGIC, SEGMENT_HEADER_SIZE,
    SEGMENT_MAGIC,
};

/// Lossless on every supported target; centralised so no `as` is needed.
pub(crate) fn to_u64(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}

/// A segment's header: which records it starts with and the salt of their checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub first_seq: u64,
    /// Mixed into every record's checksum. Bytes that a client chose (a transfer's user data)
    /// can imitate a whole record frame, but not one whose checksum holds under a salt it
    /// never saw, so a frame found while telling a torn tail from corruption is one this
    /// segment's writer framed.
    pub salt: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_SIZE] {
        let mut bytes = [0u8; SEGMENT_HEADER_SIZE];
        bytes[0..4].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        bytes[4..8].copy_from_slice(&JOURNAL_FORMAT.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..28]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        let bytes: &[u8; SEGMENT_HEADER_SIZE] = bytes
            .get(..SEGMENT_HEADER_SIZE)
            .ok_or_else(|| {
                format!("torn segment header: {} of {SEGMENT_HEADER_SIZE} bytes", bytes.len())
            })?
            .try_into()
            .expect("slice of header size");
        let magic = read_u32(bytes, 0);
        if magic == u32::from_le_bytes(*b"HFJ1") {
            return Err("segment of journal format 1 (no segment header), which this version \
                        does not read"
                .into());
        }
        if magic != SEGMENT_MAGIC {
            return Err(format!("bad segment magic {magic:#010x}"));
        }
        let stored = read_u32(bytes, 28);
        let computed = crc32c::crc32c(&bytes[..28]);
        if stored != computed {
            return Err(format!(
                "segment header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ));
        }
        let format = read_u32(bytes, 4);
        if format != JOURNAL_FORMAT {
            return Err(format!(
                "segment of journal format {format}; this version reads format {JOURNAL_FORMAT}"
            ));
        }
        let reserved = read_u32(bytes, 24);
        if reserved != 0 {
            return Err(format!("reserved segment header field is {reserved:#x}, not zero"));
        }
        Ok(SegmentHeader { first_seq: read_u64(bytes, 8), salt: read_u64(bytes, 16) })
    }
}

/// Decoded, structurally valid header. The CRC still has to be checked
/// against the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub body_len: usize,
    pub seq: u64,
    pub crc: u32,
    /// Records of the same group commit before this one (0 for its first record).
    pub group_index: u32,
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
        Ok(Header {
            body_len: usize::try_from(body_len).map_err(|e| e.to_string())?,
            seq: read_u64(bytes, 8),
            crc: read_u32(bytes, 16),
            group_index: read_u32(bytes, 20),
        })
    }

    /// The sequence number of the first record of this record's group commit.
    pub(crate) fn group_first_seq(&self) -> Option<u64> {
        self.seq.checked_sub(u64::from(self.group_index))
    }

    pub(crate) fn check_body(
        &self,
        salt: u64,
        header: &[u8; RECORD_HEADER_SIZE],
        body: &[u8],
    ) -> Result<(), String> {
        let computed = checksum(salt, header, body);
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

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// CRC32C over the salt, the header but its CRC field, then the body.
fn checksum(salt: u64, header: &[u8; RECORD_HEADER_SIZE], body: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&salt.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &header[..16]);
    let crc = crc32c::crc32c_append(crc, &header[20..24]);
    crc32c::crc32c_append(crc, body)
}

/// Appends one framed record to `buf`. The caller has checked the body size.
pub(crate) fn encode(buf: &mut Vec<u8>, salt: u64, seq: u64, group_index: u32, body: &[u8]) {
    let body_len = u32::try_from(body.len()).expect("body length checked by caller");
    assert!(body_len <= RECORD_BODY_SIZE_MAX);
    let mut header = [0u8; RECORD_HEADER_SIZE];
    header[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&body_len.to_le_bytes());
    header[8..16].copy_from_slice(&seq.to_le_bytes());
    header[20..24].copy_from_slice(&group_index.to_le_bytes());
    let crc = checksum(salt, &header, body);
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
/// header and body.
pub(crate) fn decode_slice(buf: &[u8], salt: u64) -> Result<(Header, &[u8]), String> {
    let header: &[u8; RECORD_HEADER_SIZE] = buf
        .get(..RECORD_HEADER_SIZE)
        .ok_or_else(|| format!("torn header: {} of {RECORD_HEADER_SIZE} bytes", buf.len()))?
        .try_into()
        .expect("slice of header size");
    let h = Header::decode(header)?;
    let body = buf.get(RECORD_HEADER_SIZE..RECORD_HEADER_SIZE + h.body_len).ok_or_else(|| {
        format!("torn body: {} of {} bytes", buf.len() - RECORD_HEADER_SIZE, h.body_len)
    })?;
    h.check_body(salt, header, body)?;
    Ok((h, body))
}

/// Every fully valid record frame in `buf` (found at any offset, then skipped
/// whole), with its offset. Used to tell a torn tail from mid-log corruption.
pub(crate) fn valid_records(buf: &[u8], salt: u64) -> Vec<(usize, Header)> {
    let magic = RECORD_MAGIC.to_le_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at + magic.len() <= buf.len() {
        if buf[at..at + magic.len()] == magic {
            if let Ok((header, _)) = decode_slice(&buf[at..], salt) {
                found.push((at, header));
                at += RECORD_HEADER_SIZE + header.body_len;
                continue;
            }
        }
        at += 1;
    }
    found
}

/// Outcome of reading the next record from a stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A verified record; its body is in [`RecordReader::body`].
    Record(Header),
    /// Clean end of data exactly at a record boundary.
    End,
    /// The record at [`RecordReader::offset`] is torn or corrupt.
    Bad(String),
}

/// Streams verified records out of a reader, reusing one body buffer.
pub(crate) struct RecordReader<R> {
    inner: R,
    salt: u64,
    /// Offset of the next record (or, after `Bad`, of the bad one).
    pub offset: u64,
    pub body: Vec<u8>,
}

impl<R: Read> RecordReader<R> {
    /// Reads the records of a segment whose header said `salt`; `offset` is where `inner`
    /// starts in the file.
    pub(crate) fn new(inner: R, salt: u64, offset: u64) -> Self {
        RecordReader { inner, salt, offset, body: Vec::new() }
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
        if let Err(reason) = h.check_body(self.salt, &header, &self.body) {
            return Ok(Next::Bad(reason));
        }
        self.offset += to_u64(RECORD_HEADER_SIZE + h.body_len);
        Ok(Next::Record(h))
    }
}

/// Like `read_exact`, but reports how much was read instead of failing at EOF.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

    const SALT: u64 = 0x5eed_5a17;

    #[test]
    fn framing_roundtrip() {
        let mut buf = Vec::new();
        let bodies: [&[u8]; 3] = [b"", b"hello", &[7u8; 1000]];
        for (i, body) in bodies.iter().enumerate() {
            encode(&mut buf, SALT, to_u64(i) + 1, u32::try_from(i).unwrap(), body);
        }
        assert_eq!(buf.len(), 3 * RECORD_HEADER_SIZE + 5 + 1000);

        // Slice decoding.
        let mut at = 0;
        for (i, body) in bodies.iter().enumerate() {
            let (header, got) = decode_slice(&buf[at..], SALT).unwrap();
            assert_eq!(header.seq, to_u64(i) + 1);
            assert_eq!(header.group_index, u32::try_from(i).unwrap());
            assert_eq!(header.group_first_seq(), Some(1));
            assert_eq!(got, *body);
            assert_eq!(framed_len_at(&buf, at), RECORD_HEADER_SIZE + body.len());
            at += framed_len_at(&buf, at);
        }

        // Stream decoding.
        let mut reader = RecordReader::new(&buf[..], SALT, 0);
        for (i, body) in bodies.iter().enumerate() {
            match reader.next().unwrap() {
                Next::Record(h) => assert_eq!(h.seq, to_u64(i) + 1),
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(reader.body, *body);
        }
        assert_eq!(reader.next().unwrap(), Next::End);
        assert_eq!(reader.offset, to_u64(buf.len()));
    }

    #[test]
    fn header_layout_is_little_endian() {
        let mut buf = Vec::new();
        encode(&mut buf, SALT, 0x0102_0304_0506_0708, 9, b"abc");
        assert_eq!(&buf[0..4], b"HFJ2");
        assert_eq!(&buf[4..8], &[3, 0, 0, 0]);
        assert_eq!(&buf[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&buf[20..24], &[9, 0, 0, 0]);
        assert_eq!(&buf[24..], b"abc");
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, SALT, 42, 3, b"some body bytes");
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x01;
            assert!(decode_slice(&bad, SALT).is_err(), "flip at {at} not detected");
            let mut reader = RecordReader::new(&bad[..], SALT, 0);
            assert!(matches!(reader.next().unwrap(), Next::Bad(_)));
        }
    }

    #[test]
    fn a_frame_made_without_the_segments_salt_is_not_a_record() {
        // A client can put these bytes in a transfer's user data; without the salt they are
        // noise, never a record of this segment.
        let mut buf = Vec::new();
        encode(&mut buf, SALT + 1, 1_000_000, 0, b"abcd");
        assert!(decode_slice(&buf, SALT).is_err());
        assert!(valid_records(&buf, SALT).is_empty());
        assert_eq!(valid_records(&buf, SALT + 1).len(), 1);
    }

    #[test]
    fn torn_records_are_reported_not_misread() {
        let mut buf = Vec::new();
        encode(&mut buf, SALT, 1, 0, &[9u8; 100]);
        for len in 1..buf.len() {
            let mut reader = RecordReader::new(&buf[..len], SALT, 0);
            assert!(matches!(reader.next().unwrap(), Next::Bad(_)), "len {len}");
            assert_eq!(reader.offset, 0);
        }
    }

    #[test]
    fn oversized_length_rejected_before_allocating() {
        let mut buf = Vec::new();
        encode(&mut buf, SALT, 1, 0, b"x");
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut reader = RecordReader::new(&buf[..], SALT, 0);
        match reader.next().unwrap() {
            Next::Bad(reason) => assert!(reason.contains("exceeds"), "{reason}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn valid_records_skips_garbage_and_whole_frames() {
        let mut buf = b"HFJ2 garbage that looks like a magic".to_vec();
        let start = buf.len();
        // A body that holds a frame of its own (with the right salt) is skipped whole.
        let mut inner = Vec::new();
        encode(&mut inner, SALT, 99, 0, b"x");
        encode(&mut buf, SALT, 5, 1, &inner);
        let found = valid_records(&buf, SALT);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, start);
        assert_eq!(found[0].1.seq, 5);
        assert!(valid_records(&buf[..buf.len() - 1], SALT).iter().all(|(_, h)| h.seq == 99));
    }

    #[test]
    fn segment_header_roundtrip_and_checks() {
        let header = SegmentHeader { first_seq: 77, salt: SALT };
        let bytes = header.encode();
        assert_eq!(&bytes[0..4], b"HFJS");
        assert_eq!(SegmentHeader::decode(&bytes).unwrap(), header);
        for at in 0..bytes.len() {
            let mut bad = bytes;
            bad[at] ^= 0x10;
            assert!(SegmentHeader::decode(&bad).is_err(), "flip at {at} not detected");
        }
        assert!(SegmentHeader::decode(&bytes[..31]).unwrap_err().contains("torn"));
        let mut old = Vec::new();
        old.extend_from_slice(b"HFJ1");
        old.resize(SEGMENT_HEADER_SIZE, 0);
        assert!(SegmentHeader::decode(&old).unwrap_err().contains("format 1"));
    }
}
