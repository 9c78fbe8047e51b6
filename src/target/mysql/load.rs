//! Rows streamed as `LOAD DATA LOCAL INFILE`: one statement per writer connection for the
//! whole copy, whose "file" is served by a local-infile handler from the encoded batches,
//! never from disk and whatever file name the server asks for. Every INSERT waits a round
//! trip for its answer; a stream does not, which is what matters on a link to Azure, and
//! the server spends less per row on it.
//!
//! Format: tab-separated, `\N` for NULL, backslash escapes, in `CHARACTER SET utf8mb4`, so
//! the server converts text into each column's own character set. Binary columns (BLOB,
//! BINARY, BIT, WKB) travel as hex and become bytes again in the statement's SET clause
//! (`UNHEX(@v)`): raw bytes are not valid utf8mb4, and one character set cannot serve both.
//! Under LOCAL the server turns data errors into warnings, so any warning fails the load.

use super::encode::not_storable;
use crate::target::SinkError;
use crate::transform::{quote_mysql, Cell, ColumnView, SqlType};
use std::io::Write;

/// How one column is written into the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// As its text (numbers, dates, text), escaped.
    Plain,
    /// As hex, turned back into bytes by `UNHEX` on the server.
    Hex,
    /// A YEAR: as four digits, since the text `0` is read as the year 2000 (the number 0,
    /// which INSERT sends, is the year 0000).
    Year,
}

impl Field {
    /// Columns whose values arrive as bytes go as hex.
    pub fn for_type(ty: &SqlType) -> Field {
        match ty {
            SqlType::Binary { .. } | SqlType::Bit { .. } | SqlType::Geometry => Field::Hex,
            SqlType::Year => Field::Year,
            _ => Field::Plain,
        }
    }
}

/// The statement one writer runs: every row its stream carries goes into `table`.
pub fn statement(table: &str, names: &[String], fields: &[Field]) -> String {
    let mut cols = Vec::with_capacity(names.len());
    let mut sets = Vec::new();
    for (i, (name, f)) in names.iter().zip(fields).enumerate() {
        match f {
            Field::Plain | Field::Year => cols.push(quote_mysql(name)),
            Field::Hex => {
                cols.push(format!("@v{i}"));
                sets.push(format!("{} = UNHEX(@v{i})", quote_mysql(name)));
            }
        }
    }
    let set = if sets.is_empty() {
        String::new()
    } else {
        format!(" SET {}", sets.join(", "))
    };
    format!(
        "LOAD DATA LOCAL INFILE 'dbsync-stream' INTO TABLE {} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({}){set}",
        quote_mysql(table),
        cols.join(", ")
    )
}

/// Rows `start..end` as lines of the stream.
pub fn encode(
    views: &[ColumnView<'_>],
    fields: &[Field],
    start: usize,
    end: usize,
    value_error: &dyn Fn(usize, usize, String) -> SinkError,
) -> Result<Vec<u8>, SinkError> {
    let mut out = Vec::with_capacity((end - start) * 64);
    for row in start..end {
        for (i, (v, f)) in views.iter().zip(fields).enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            write_cell(&mut out, v.cell(row), *f).map_err(|m| value_error(row, i, m))?;
        }
        out.push(b'\n');
    }
    Ok(out)
}

fn write_cell(out: &mut Vec<u8>, cell: Cell<'_>, field: Field) -> Result<(), String> {
    match cell {
        Cell::Null => out.extend_from_slice(b"\\N"),
        Cell::Int(i) if field == Field::Year => write!(out, "{i:04}").expect("writing to a Vec"),
        Cell::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Cell::UInt(u) => out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes()),
        // The shortest digits that read back as the same double (the server rounds
        // correctly), written out without an exponent: the server parsed exponent forms
        // measurably slower. A FLOAT goes as its exact double, so the column gets the
        // same bits.
        Cell::Float(f) if !f.is_finite() => return Err(not_storable(f)),
        Cell::Float32(f) if !f.is_finite() => return Err(not_storable(f as f64)),
        Cell::Float(f) => write!(out, "{f}").expect("writing to a Vec"),
        Cell::Float32(f) => write!(out, "{}", f as f64).expect("writing to a Vec"),
        Cell::Text(s) if field == Field::Hex => hex(out, s.as_bytes()),
        Cell::Bytes(b) if field == Field::Hex => hex(out, b),
        Cell::Text(s) => escape(out, s.as_bytes()),
        Cell::Bytes(b) => escape(out, b),
    }
    Ok(())
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
}

/// Backslash-escapes what would end a field or a line, or read as an escape or a NULL.
fn escape(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, BinaryArray, Float32Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn every_awkward_value_survives_the_format() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a\tb\nc\\d\r\0e"),
            Some(""),
            Some("NULL"),
            Some("\\N"),
            None,
        ]));
        let bin: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some(&[0u8, 9, 10, 255][..]),
            Some(&[][..]),
            None,
            Some(&b"\\"[..]),
            Some(&[1u8][..]),
        ]));
        let f: ArrayRef = Arc::new(Float32Array::from(vec![
            0.1,
            1e-45,
            -0.0,
            3.4028235e38,
            1.0,
        ]));
        let views = [
            ColumnView::new(&text).unwrap(),
            ColumnView::new(&bin).unwrap(),
            ColumnView::new(&f).unwrap(),
        ];
        let fields = [Field::Plain, Field::Hex, Field::Plain];
        let err = |_, _, m: String| SinkError::Count {
            staged: m.len() as u64,
            read: 0,
        };
        let out = encode(&views, &fields, 0, 5, &err).unwrap();
        let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
        assert_eq!(
            lines,
            [
                "a\\tb\\nc\\\\d\\r\\0e\t00090AFF\t0.10000000149011612",
                "\t\t0.000000000000000000000000000000000000000000001401298464324817",
                "NULL\t\\N\t-0",
                "\\\\N\t5C\t340282346638528860000000000000000000000",
                "\\N\t01\t1",
            ]
        );
    }

    #[test]
    fn binary_columns_come_back_through_unhex() {
        let sql = statement(
            "t`x",
            &["id".into(), "raw".into()],
            &[Field::Plain, Field::Hex],
        );
        assert_eq!(
            sql,
            "LOAD DATA LOCAL INFILE 'dbsync-stream' INTO TABLE `t``x` CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
             (`id`, @v1) SET `raw` = UNHEX(@v1)"
        );
    }
}
