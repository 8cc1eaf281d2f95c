//! Unsigned LEB128 varints: seven bits a byte, the lowest first, the high bit set on every byte
//! but the last. Small numbers take few bytes: below 2^7 one, below 2^14 two, a `u64` at most
//! ten, a `u128` at most nineteen.
//!
//! The history store writes the numbers of its records this way, and the payment machine those
//! of its checkpoint: both on disk, so these bytes must never change.

/// The most bytes a varint takes: a `u128` at its largest, seven bits a byte.
pub const BYTES_MAX: usize = 128usize.div_ceil(7);

/// Writes `value` at the start of `buf` and returns the bytes written.
#[inline]
pub fn encode(mut value: u128, buf: &mut [u8; BYTES_MAX]) -> &[u8] {
    let mut n = 0;
    while value >= 0x80 {
        // The low seven bits: truncation is the point.
        buf[n] = value as u8 | 0x80;
        value >>= 7;
        n += 1;
    }
    buf[n] = value as u8;
    &buf[..=n]
}

/// Appends `value` to `out`.
#[inline]
pub fn put(out: &mut Vec<u8>, value: u128) {
    let mut buf = [0; BYTES_MAX];
    out.extend_from_slice(encode(value, &mut buf));
}

/// Reads a number below 2^`bits` (1 to 128), taking its bytes one by one from `next`, whose
/// error (a byte source that ends, say) is passed on as it is.
///
/// The last group of seven bits that the width reaches must hold no bit above it and be the
/// last byte: otherwise the error is `too_large()` (the number does not fit, or its encoding
/// goes on past every bit it could hold). Encodings longer than they need be within the width
/// (`0x80 0x00` for 0) are read as their number.
#[inline]
pub fn read<E>(
    bits: u32,
    mut next: impl FnMut() -> Result<u8, E>,
    too_large: impl FnOnce() -> E,
) -> Result<u128, E> {
    debug_assert!((1..=128).contains(&bits), "a width of {bits} bits");
    let mut value = 0u128;
    let mut shift = 0;
    loop {
        let byte = next()?;
        let part = u128::from(byte & 0x7f);
        let left = bits - shift;
        if left <= 7 {
            if part >> left != 0 || byte & 0x80 != 0 {
                return Err(too_large());
            }
            return Ok(value | part << shift);
        }
        value |= part << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Error {
        Ends,
        TooLarge,
    }

    /// Reads a number below 2^`bits` from `bytes`, and how many bytes it took.
    fn read_from(bits: u32, bytes: &[u8]) -> Result<(u128, usize), Error> {
        let mut rest = bytes.iter();
        let value = read(bits, || rest.next().copied().ok_or(Error::Ends), || Error::TooLarge)?;
        Ok((value, bytes.len() - rest.len()))
    }

    #[test]
    fn numbers_read_back_from_as_few_bytes_as_they_take() {
        let cases: [(u128, usize); 10] = [
            (0, 1),
            (1, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u128::from(u32::MAX), 5),
            (u128::from(u64::MAX), 10),
            (u128::from(u64::MAX) + 1, 10),
            (u128::MAX, BYTES_MAX),
        ];
        for (value, len) in cases {
            let mut buf = [0; BYTES_MAX];
            let bytes = encode(value, &mut buf).to_vec();
            assert_eq!(bytes.len(), len, "{value}");
            let mut out = vec![0xAA];
            put(&mut out, value);
            assert_eq!(out[1..], bytes[..], "{value}");
            // With a byte after it, which is not read.
            let mut longer = bytes.clone();
            longer.push(0xFF);
            assert_eq!(read_from(128, &longer), Ok((value, len)), "{value}");
            if value <= u128::from(u64::MAX) {
                assert_eq!(read_from(64, &longer), Ok((value, len)), "{value}");
            }
        }
        assert_eq!(encode(128, &mut [0; BYTES_MAX]), [0x80, 0x01]);
        assert_eq!(encode(300, &mut [0; BYTES_MAX]), [0xAC, 0x02]);
    }

    #[test]
    fn numbers_wider_than_asked_are_refused() {
        let mut buf = [0; BYTES_MAX];
        let first_past_u64 = encode(u128::from(u64::MAX) + 1, &mut buf).to_vec();
        assert_eq!(read_from(64, &first_past_u64), Err(Error::TooLarge));
        assert_eq!(read_from(128, &first_past_u64), Ok((u128::from(u64::MAX) + 1, 10)));
        // The tenth byte of a u64 holds one bit.
        let mut max = [0xFF; 10];
        max[9] = 0x01;
        assert_eq!(read_from(64, &max), Ok((u128::from(u64::MAX), 10)));
        max[9] = 0x02;
        assert_eq!(read_from(64, &max), Err(Error::TooLarge));
        // The nineteenth byte of a u128 holds two bits.
        let mut max = [0xFF; BYTES_MAX];
        max[BYTES_MAX - 1] = 0x03;
        assert_eq!(read_from(128, &max), Ok((u128::MAX, BYTES_MAX)));
        max[BYTES_MAX - 1] = 0x04;
        assert_eq!(read_from(128, &max), Err(Error::TooLarge));
        // A width that is not a whole number of groups: a u32's fifth byte holds four bits.
        assert_eq!(read_from(32, &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), Ok((u128::from(u32::MAX), 5)));
        assert_eq!(read_from(32, &[0xFF, 0xFF, 0xFF, 0xFF, 0x10]), Err(Error::TooLarge));
    }

    #[test]
    fn encodings_that_go_on_past_the_width_are_refused() {
        // Zero, but with a byte more than a u64 or a u128 can take: the continuation bit on the
        // last byte the width reaches is refused before the byte after it is read.
        let mut zero = vec![0x80; 9];
        zero.extend([0x80, 0x00]);
        assert_eq!(read_from(64, &zero), Err(Error::TooLarge));
        assert_eq!(read_from(64, &zero[..10]), Err(Error::TooLarge));
        assert_eq!(read_from(128, &zero), Ok((0, 11)));
        let mut zero = vec![0x80; BYTES_MAX];
        zero.push(0x00);
        assert_eq!(read_from(128, &zero), Err(Error::TooLarge));
        // Longer than it need be, but within the width: read.
        assert_eq!(read_from(64, &[0x80, 0x80, 0x00]), Ok((0, 3)));
        assert_eq!(read_from(8, &[0x81, 0x01]), Ok((129, 2)));
        assert_eq!(read_from(8, &[0x81, 0x02]), Err(Error::TooLarge));
        assert_eq!(read_from(7, &[0xFF, 0x00]), Err(Error::TooLarge));
        assert_eq!(read_from(7, &[0x7F]), Ok((127, 1)));
    }

    #[test]
    fn input_that_ends_inside_a_number_is_refused_with_its_own_error() {
        assert_eq!(read_from(64, &[]), Err(Error::Ends));
        assert_eq!(read_from(64, &[0x80]), Err(Error::Ends));
        let mut buf = [0; BYTES_MAX];
        let max = encode(u128::MAX, &mut buf);
        for len in 0..max.len() {
            assert_eq!(read_from(128, &max[..len]), Err(Error::Ends), "{len} bytes");
        }
    }
}
