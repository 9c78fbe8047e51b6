//! The canonical row text dbsync hashes itself (into SQLite), and its hash.
//!
//! A row's text is its values in column order, each written `LEN:BYTES` (LEN the byte
//! length in decimal) or `N` for NULL, with nothing between them: the length prefix keeps
//! `("ab","c")` apart from `("a","bc")`, and `N` is never the start of a value. The row's
//! hash is the first 8 bytes of the text's SHA-256 as a big-endian u64, and a chunk's checksum
//! is the sum of its rows' hashes modulo 2^64 with its row count: not linear in the
//! values, so two values swapped between rows of one chunk change it.
//!
//! On MySQL both sides are hashed by the servers with the same SQL (`sql::row_hash`, a
//! text of its own, as unambiguous, written with `CONCAT_WS`), so FLOAT and DOUBLE are
//! compared as each server prints `col + 0e0`, alike on both. Into SQLite, dbsync hashes
//! both sides itself from the values as SQLite holds them (`Canon`): the source's rows as
//! the SQLite sink would bind them (FLOAT as shown, 6 digits), SQLite's as read; a
//! DECIMAL that SQLite keeps as a number (`decimal = real`, or `auto` up to 15 digits) is
//! compared to 15 significant digits. The servers' text and dbsync's are never compared
//! with each other; into SQLite the source's and the file's texts, both dbsync's, are
//! compared byte for byte before any hashing (`pair`).

use crate::transform::Cell;
use rusqlite::types::ValueRef;

/// Appends one value of the canonical text: `LEN:BYTES`, or `N` for NULL.
pub fn push_value(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.push(b'N'),
        Some(v) => {
            out.extend_from_slice(itoa::Buffer::new().format(v.len()).as_bytes());
            out.push(b':');
            out.extend_from_slice(v);
        }
    }
}

/// The values of a canonical text, each as it is written there (`LEN:BYTES`, or `N`).
pub fn values(mut text: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let first = *text.first()?;
        let end = match first {
            b'N' => 1,
            _ => {
                let colon = text.iter().position(|&b| b == b':').unwrap_or(text.len());
                let len: usize = std::str::from_utf8(&text[..colon])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                (colon + 1 + len).min(text.len())
            }
        };
        let (value, rest) = text.split_at(end);
        text = rest;
        Some(value)
    })
}

/// A canonical text (of a key) as the log shows it: its values, `NULL` for NULL, joined
/// by `, `.
pub fn show(text: &[u8]) -> String {
    let shown: Vec<String> = values(text)
        .map(|v| match v {
            b"N" => "NULL".to_string(),
            _ => {
                let colon = v.iter().position(|&b| b == b':').map_or(v.len(), |c| c + 1);
                String::from_utf8_lossy(&v[colon..]).into_owned()
            }
        })
        .collect();
    shown.join(", ")
}

/// The hash that pairs a row of canonical `text` up with its counterpart: of the values
/// at the `key` positions (written into `key_text`), or without a key the row's own hash.
/// 64 bits of FNV-1a: a collision among a billion keys is about as likely as one in 40
/// billion runs; SHA-256 is for the rows' contents.
pub fn key_hash(text: &[u8], key: &[usize], key_text: &mut Vec<u8>) -> u64 {
    if key.is_empty() {
        return row_hash(text);
    }
    key_text.clear();
    for (i, v) in values(text).enumerate() {
        if key.contains(&i) {
            key_text.extend_from_slice(v);
        }
    }
    crate::transform::fnv1a(key_text)
}

/// A row's key hash (as `key_hash`) and its own.
pub fn hashes(text: &[u8], key: &[usize], key_text: &mut Vec<u8>) -> (u64, u64) {
    let h = row_hash(text);
    match key.is_empty() {
        true => (h, h),
        false => (key_hash(text, key, key_text), h),
    }
}

/// The row hash of a canonical text: SHA-256 in Rust, on the CPU's SHA instructions where
/// it has them (OpenSSL's EVP digests take locks on every init, which cost more than the
/// hashing of a row).
pub fn row_hash(text: &[u8]) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text);
    u64::from_be_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
}

/// How one column's values are compared when dbsync hashes them (SQLite target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canon {
    /// As SQLite stores it: integers in decimal, reals as their 8 bytes, text and blobs
    /// as their bytes.
    Stored,
    /// A DECIMAL SQLite keeps as a number: to 15 significant digits.
    Decimal15,
}

/// A double as its 8 bytes (`-0` as `0`): exact, and no text to format.
fn real(v: f64, out: &mut Vec<u8>) {
    let v = if v == 0.0 { 0.0 } else { v };
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

/// A number to 15 significant digits: its 15 digits as an integer and its exponent,
/// computed rather than formatted (formatting `{:.14e}` was 7% of a verify's CPU). Scaling
/// by an exact power of ten rounds once: a review's 20M random DECIMALs of up to 15 digits
/// came out as their exact rounding, alike a bit (1 ulp) either side. A value of more
/// digits that lies next to a rounding boundary may still come out unlike its neighbour,
/// as it did when formatted. Far from 1 (no exact power of ten to scale by) the digits
/// are formatted instead, and written the same way.
fn digits15(v: f64, out: &mut Vec<u8>) {
    use std::io::Write;
    let v = if v == 0.0 { 0.0 } else { v };
    // v scaled to 15 digits before the point, unrounded: one rounding (a power of ten up
    // to 1e22 is exact).
    let scaled = |e: i32| -> Option<f64> {
        let k = 14 - e;
        let p = 10f64.powi(k.abs());
        match k.abs() <= 22 {
            true if k >= 0 => Some(v * p),
            true => Some(v / p),
            false => None,
        }
    };
    if v != 0.0 && v.is_finite() {
        let mut e = v.abs().log10().floor() as i32;
        // log10 may land a step off next to a power of ten.
        for _ in 0..3 {
            match scaled(e) {
                Some(x) if x.abs() >= 1e15 => e += 1,
                Some(x) if x.abs() < 1e14 => e -= 1,
                Some(x) => {
                    // 999999999999999.5 and up round to 10^15: written as 10^14 a step up,
                    // as a value just above it comes out.
                    let (m, e) = match x.round() {
                        m if m.abs() >= 1e15 => (m / 10.0, e + 1),
                        m => (m, e),
                    };
                    // As `write!(out, "{}e{e}")` writes them, without the formatter.
                    out.extend_from_slice(itoa::Buffer::new().format(m as i64).as_bytes());
                    out.push(b'e');
                    out.extend_from_slice(itoa::Buffer::new().format(e).as_bytes());
                    return;
                }
                None => break,
            }
        }
    }
    // Formatted (exactly rounded), then written as above: `d.ddd…e-x` as `dddd…e-x`.
    let text = format!("{v:.14e}");
    match text.split_once('e') {
        Some((digits, e)) if v.is_finite() => {
            out.extend(digits.bytes().filter(|b| *b != b'.'));
            let _ = write!(out, "e{e}");
        }
        _ => out.extend_from_slice(text.as_bytes()),
    }
}

impl Canon {
    /// Appends the canonical value of a source cell, as the SQLite sink binds it.
    pub fn push_cell(self, cell: Cell<'_>, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
        scratch.clear();
        match (self, cell) {
            (_, Cell::Null) => return push_value(out, None),
            (Canon::Decimal15, Cell::Text(s)) => match s.trim().parse::<f64>() {
                Ok(v) => digits15(v, scratch),
                Err(_) => scratch.extend_from_slice(s.as_bytes()),
            },
            (Canon::Decimal15, Cell::Int(i)) => digits15(i as f64, scratch),
            (_, Cell::Int(i)) => {
                scratch.extend_from_slice(itoa::Buffer::new().format(i).as_bytes())
            }
            (_, Cell::UInt(u)) => {
                scratch.extend_from_slice(itoa::Buffer::new().format(u).as_bytes())
            }
            (_, Cell::Float(f)) => real(f, scratch),
            (_, Cell::Float32(f)) => real(crate::transform::float_as_shown(f), scratch),
            // As they are, without a first copy into `scratch`.
            (_, Cell::Text(s)) => return push_value(out, Some(s.as_bytes())),
            (_, Cell::Bytes(b)) => return push_value(out, Some(b)),
        }
        push_value(out, Some(scratch));
    }

    /// Appends the canonical value of a value read from SQLite.
    pub fn push_sqlite(self, value: ValueRef<'_>, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
        scratch.clear();
        match (self, value) {
            (_, ValueRef::Null) => return push_value(out, None),
            (Canon::Decimal15, ValueRef::Integer(i)) => digits15(i as f64, scratch),
            (Canon::Decimal15, ValueRef::Real(f)) => digits15(f, scratch),
            (Canon::Decimal15, ValueRef::Text(t)) => {
                match std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                {
                    Some(v) => digits15(v, scratch),
                    None => scratch.extend_from_slice(t),
                }
            }
            (_, ValueRef::Integer(i)) => {
                scratch.extend_from_slice(itoa::Buffer::new().format(i).as_bytes())
            }
            (_, ValueRef::Real(f)) => real(f, scratch),
            (_, ValueRef::Text(b) | ValueRef::Blob(b)) => return push_value(out, Some(b)),
        }
        push_value(out, Some(scratch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            push_value(&mut out, *v);
        }
        out
    }

    #[test]
    fn the_text_marks_null_and_lengths() {
        assert_eq!(text(&[Some(b"ab"), Some(b"c")]), b"2:ab1:c");
        assert_ne!(
            text(&[Some(b"ab"), Some(b"c")]),
            text(&[Some(b"a"), Some(b"bc")])
        );
        assert_ne!(text(&[None, Some(b"")]), text(&[Some(b""), None]));
        assert_eq!(text(&[None, Some(b"N")]), b"N1:N");
    }

    #[test]
    fn keys_show_as_their_values() {
        assert_eq!(
            show(&text(&[Some(b"12"), None, Some(b"a:b")])),
            "12, NULL, a:b"
        );
        assert_eq!(show(b""), "");
        let t = text(&[Some(b"12"), None, Some(b""), Some(b"N:x")]);
        let v: Vec<&[u8]> = values(&t).collect();
        assert_eq!(v, vec![&b"2:12"[..], b"N", b"0:", b"3:N:x"]);
        let mut key_text = Vec::new();
        key_hash(&t, &[0, 3], &mut key_text);
        assert_eq!(key_text, b"2:123:N:x");
    }

    #[test]
    fn the_hash_is_sha256s_first_quarter() {
        // SHA-256("") = e3b0c44298fc1c14..., SHA-256("a") = ca978112ca1bbdca...
        assert_eq!(row_hash(b""), 0xe3b0c44298fc1c14);
        assert_eq!(row_hash(b"a"), 0xca978112ca1bbdca);
    }

    #[test]
    fn source_cells_and_sqlite_values_agree() {
        let both = |canon: Canon, cell: Cell<'_>, stored: ValueRef<'_>| {
            let (mut s, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
            canon.push_cell(cell, &mut s, &mut a);
            canon.push_sqlite(stored, &mut s, &mut b);
            (a, b)
        };
        let (a, b) = both(
            Canon::Stored,
            Cell::UInt(u64::MAX),
            ValueRef::Text(b"18446744073709551615"),
        );
        assert_eq!(a, b);
        let (a, b) = both(
            Canon::Stored,
            Cell::Float32(1.2345678),
            ValueRef::Real(1.23457),
        );
        assert_eq!(a, b);
        let (a, b) = both(Canon::Decimal15, Cell::Text("12.50"), ValueRef::Real(12.5));
        assert_eq!(a, b);
        let (a, b) = both(Canon::Decimal15, Cell::Text("12.00"), ValueRef::Integer(12));
        assert_eq!(a, b);
        let (a, b) = both(Canon::Decimal15, Cell::Text("12.51"), ValueRef::Real(12.5));
        assert_ne!(a, b);
        // Past 15 digits, decimal = real rounds: equal to 15 digits is equal.
        let (a, b) = both(
            Canon::Decimal15,
            Cell::Text("1234567890.1234567891"),
            ValueRef::Real("1234567890.1234567891".parse().unwrap()),
        );
        assert_eq!(a, b);
        let (a, b) = both(Canon::Stored, Cell::Null, ValueRef::Text(b""));
        assert_ne!(a, b);
    }

    #[test]
    fn fifteen_digits_are_computed_alike_near_every_power_of_ten() {
        let d = |v: f64| {
            let mut out = Vec::new();
            digits15(v, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(d(12.5), "125000000000000e1");
        assert_eq!(d(-0.001), "-100000000000000e-3");
        assert_eq!(d(0.0), d(-0.0));
        for e in -8..=30 {
            let p = 10f64.powi(e);
            // The same value one unit off in its last bit: alike.
            assert_eq!(d(p), d(f64::from_bits(p.to_bits() + 1)), "1e{e}");
            assert_eq!(d(p), d(f64::from_bits(p.to_bits() - 1)), "1e{e}");
            let below = 9.99999999999999 * p;
            assert_ne!(d(below), d(p), "1e{e}");
            assert!(d(below).starts_with("999999999999999e"), "{}", d(below));
        }
        // A change in the 15th digit is seen; beyond it, not.
        assert_ne!(d(1234567890.12345), d(1234567890.12346));
        let x = 1_234_567_890.123_45;
        assert_eq!(d(x), d(f64::from_bits(x.to_bits() + 3)));
        assert_eq!(d(1e300), "100000000000000e300");
        assert_eq!(d(-1.5e-300), "-150000000000000e-300");
    }
}
