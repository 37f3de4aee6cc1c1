//! Arbitrary-precision EXI `Integer` (xs:integer), as needed for
//! `X509SerialNumber` (RFC 5280 serials are up to 20 octets; Hubject roots
//! use 128-bit serials).

use iso15118::exi::{Decoder, Encoder, ExiError, ExiResult};

/// Upper bound on the magnitude we accept, in bytes (RFC 5280 allows 20;
/// we are generous but bounded).
pub const MAX_MAGNITUDE_BYTES: usize = 40;
/// Maximum number of 7-bit groups read for one unsigned integer.
const MAX_GROUPS: usize = (MAX_MAGNITUDE_BYTES * 8).div_ceil(7);

/// A signed integer of arbitrary size (bounded by [`MAX_MAGNITUDE_BYTES`]).
///
/// Stored as sign + magnitude (big-endian, no leading zero bytes; zero is an
/// empty magnitude).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct BigInteger {
    negative: bool,
    magnitude: Vec<u8>,
}

fn trim(mut v: Vec<u8>) -> Vec<u8> {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.drain(..first);
    v
}

/// `v + 1` / `v - 1` on big-endian magnitudes.
fn add_one(v: &[u8]) -> Vec<u8> {
    let mut out = v.to_vec();
    for b in out.iter_mut().rev() {
        let (n, carry) = b.overflowing_add(1);
        *b = n;
        if !carry {
            return out;
        }
    }
    out.insert(0, 1);
    out
}

fn sub_one(v: &[u8]) -> Vec<u8> {
    // caller guarantees v > 0
    let mut out = v.to_vec();
    for b in out.iter_mut().rev() {
        let (n, borrow) = b.overflowing_sub(1);
        *b = n;
        if !borrow {
            break;
        }
    }
    trim(out)
}

impl BigInteger {
    /// Builds from sign and big-endian magnitude.
    pub fn from_sign_magnitude(negative: bool, magnitude: &[u8]) -> Self {
        let magnitude = trim(magnitude.to_vec());
        let negative = negative && !magnitude.is_empty();
        Self {
            negative,
            magnitude,
        }
    }

    /// Non-negative value from big-endian bytes (e.g. a DER serial's content octets).
    pub fn from_be_bytes(bytes: &[u8]) -> Self {
        Self::from_sign_magnitude(false, bytes)
    }

    /// Whether the value is negative.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Big-endian magnitude, no leading zeros (empty for zero).
    pub fn magnitude(&self) -> &[u8] {
        &self.magnitude
    }

    /// Value as `i128` when it fits.
    pub fn to_i128(&self) -> Option<i128> {
        if self.magnitude.len() > 16 {
            return None;
        }
        let mut v: u128 = 0;
        for b in &self.magnitude {
            v = (v << 8) | u128::from(*b);
        }
        if self.negative {
            if v > (i128::MAX as u128) + 1 {
                None
            } else {
                Some((v as i128).wrapping_neg())
            }
        } else {
            i128::try_from(v).ok()
        }
    }

    /// Parses a decimal string (optional leading `-`).
    pub fn parse_decimal(s: &str) -> Option<Self> {
        let s = s.trim();
        let (neg, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        if digits.is_empty() || digits.len() > MAX_MAGNITUDE_BYTES * 3 {
            return None;
        }
        let mut mag: Vec<u8> = Vec::new();
        for c in digits.chars() {
            let d = c.to_digit(10)?;
            // mag = mag * 10 + d
            let mut carry = d;
            for b in mag.iter_mut().rev() {
                let v = u32::from(*b) * 10 + carry;
                *b = (v & 0xff) as u8;
                carry = v >> 8;
            }
            while carry > 0 {
                mag.insert(0, (carry & 0xff) as u8);
                carry >>= 8;
            }
        }
        let v = Self::from_sign_magnitude(neg, &mag);
        if v.magnitude.len() > MAX_MAGNITUDE_BYTES {
            return None;
        }
        Some(v)
    }

    /// Decimal representation.
    pub fn to_decimal(&self) -> String {
        if self.magnitude.is_empty() {
            return "0".into();
        }
        let mut digits = Vec::new();
        let mut cur = self.magnitude.clone();
        while !cur.is_empty() {
            let mut rem = 0u32;
            for b in cur.iter_mut() {
                let v = (rem << 8) | u32::from(*b);
                *b = (v / 10) as u8;
                rem = v % 10;
            }
            digits.push(char::from(b'0' + rem as u8));
            cur = trim(cur);
        }
        if self.negative {
            digits.push('-');
        }
        digits.iter().rev().collect()
    }

    /// Writes as EXI Integer (sign bit + Unsigned Integer).
    pub fn encode(&self, e: &mut Encoder<'_>) -> ExiResult<()> {
        if self.magnitude.len() > MAX_MAGNITUDE_BYTES {
            return Err(ExiError::IntegerOverflow);
        }
        e.boolean(self.negative)?;
        let mag = if self.negative {
            sub_one(&self.magnitude)
        } else {
            self.magnitude.clone()
        };
        write_big_uint(e, &mag)
    }

    /// Reads an EXI Integer.
    pub fn decode(d: &mut Decoder<'_>) -> ExiResult<Self> {
        let negative = d.boolean()?;
        let mag = read_big_uint(d)?;
        let magnitude = if negative { add_one(&mag) } else { mag };
        if magnitude.len() > MAX_MAGNITUDE_BYTES {
            return Err(ExiError::IntegerOverflow);
        }
        Ok(Self {
            negative,
            magnitude,
        })
    }
}

impl From<i64> for BigInteger {
    fn from(v: i64) -> Self {
        Self::from_sign_magnitude(v < 0, &v.unsigned_abs().to_be_bytes())
    }
}

impl core::fmt::Display for BigInteger {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_decimal())
    }
}

/// Splits a big-endian magnitude into little-endian 7-bit groups.
fn to_groups(mag: &[u8]) -> Vec<u8> {
    let mut groups = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in mag.iter().rev() {
        acc |= u32::from(*b) << bits;
        bits += 8;
        while bits >= 7 {
            groups.push((acc & 0x7f) as u8);
            acc >>= 7;
            bits -= 7;
        }
    }
    if bits > 0 {
        groups.push((acc & 0x7f) as u8);
    }
    while groups.len() > 1 && groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        groups.push(0);
    }
    groups
}

fn write_big_uint(e: &mut Encoder<'_>, mag: &[u8]) -> ExiResult<()> {
    let groups = to_groups(mag);
    let last = groups.len() - 1;
    for (i, g) in groups.iter().enumerate() {
        let octet = if i == last {
            u64::from(*g)
        } else {
            u64::from(*g) | 0x80
        };
        e.nbit(octet, 8)?;
    }
    Ok(())
}

fn read_big_uint(d: &mut Decoder<'_>) -> ExiResult<Vec<u8>> {
    let mut groups: Vec<u8> = Vec::new();
    loop {
        if groups.len() >= MAX_GROUPS {
            return Err(ExiError::IntegerOverflow);
        }
        let octet = d.nbit(8)? as u8;
        groups.push(octet & 0x7f);
        if octet & 0x80 == 0 {
            break;
        }
    }
    // little-endian 7-bit groups -> big-endian bytes
    let mut le: Vec<u8> = Vec::with_capacity(groups.len());
    let mut acc: u32 = 0;
    let mut bits = 0;
    for g in &groups {
        acc |= u32::from(*g) << bits;
        bits += 7;
        while bits >= 8 {
            le.push((acc & 0xff) as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        le.push((acc & 0xff) as u8);
    }
    le.reverse();
    Ok(trim(le))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_roundtrip() {
        for s in [
            "0",
            "1",
            "-1",
            "12345",
            "340282366920938463463374607431768211455",
            "-99",
        ] {
            let v = BigInteger::parse_decimal(s).expect("parse");
            assert_eq!(v.to_decimal(), s);
        }
        assert_eq!(BigInteger::from(-5i64).to_i128(), Some(-5));
    }
}
