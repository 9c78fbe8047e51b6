//! Turning a batch into parameter sets for prepared multi-row INSERTs, each sized in bytes
//! under the server's `max_allowed_packet`.
//!
//! Prepared statements rather than SQL text: the server then skips lexing and parsing a
//! literal per value, which measured here as about a quarter of its work per row.

use crate::target::SinkError;
use crate::transform::{Cell, ColumnView};
use mysql::Value;

/// Rows of one INSERT ready to execute: `rows` rows of `params.len() / rows` values.
pub struct Chunk {
    pub rows: usize,
    pub params: Vec<Value>,
}

/// What encoding needs to know, shared by the rayon tasks of one batch.
pub struct Encoding<'a> {
    /// Most bytes of parameters in one statement.
    pub limit: usize,
    /// Most rows in one statement (a statement has at most 65535 parameters).
    pub max_rows: usize,
    pub max_packet: usize,
    pub batch: u64,
    pub names: &'a [String],
}

/// Bytes a chunk's parameters take on the wire.
pub fn wire_bytes(chunk: &Chunk) -> usize {
    chunk.params.iter().map(wire_size).sum()
}

/// Bytes one value takes in a COM_STMT_EXECUTE packet (its type code included).
fn wire_size(v: &Value) -> usize {
    2 + match v {
        Value::NULL => 0,
        Value::Bytes(b) => b.len() + 9,
        Value::Float(_) => 4,
        _ => 8,
    }
}

/// One value as a statement parameter. Text and bytes are sent as strings; the server
/// converts them to the column's type (DECIMAL, dates and times travel as MySQL's text).
pub fn to_value(cell: Cell<'_>) -> Result<Value, String> {
    Ok(match cell {
        Cell::Null => Value::NULL,
        Cell::Int(i) => Value::Int(i),
        Cell::UInt(u) => Value::UInt(u),
        Cell::Float(f) if f.is_finite() => Value::Double(f),
        // The exact single-precision value: a FLOAT column stores the same bits.
        Cell::Float32(f) if f.is_finite() => Value::Float(f),
        Cell::Float(f) => return Err(not_storable(f)),
        Cell::Float32(f) => return Err(not_storable(f as f64)),
        Cell::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        Cell::Bytes(b) => Value::Bytes(b.to_vec()),
    })
}

pub fn not_storable(f: f64) -> String {
    format!(
        "the value {f} cannot be stored in a MySQL column (no infinities or NaN); \
         leave it out of the source (e.g. WHERE ... or NULLIF in the query) or make it NULL"
    )
}

impl Encoding<'_> {
    /// Rows `start..end` as chunks of at most `max_rows` rows and `limit` bytes (a single
    /// larger row gets a chunk of its own, if the server's packet allows it).
    pub fn encode(
        &self,
        views: &[ColumnView<'_>],
        start: usize,
        end: usize,
    ) -> Result<Vec<Chunk>, SinkError> {
        let ncols = views.len();
        let mut out = Vec::new();
        let mut params = Vec::with_capacity(self.max_rows.min(end - start) * ncols);
        let (mut rows, mut bytes) = (0usize, 0usize);
        for row in start..end {
            let mut row_bytes = 0;
            let row_start = params.len();
            for (i, v) in views.iter().enumerate() {
                let value = to_value(v.cell(row)).map_err(|m| self.value_error(row, i, m))?;
                row_bytes += wire_size(&value);
                params.push(value);
            }
            if row_bytes + 1024 > self.max_packet {
                let (col, size) = (row_start..params.len())
                    .map(|p| (p - row_start, wire_size(&params[p])))
                    .max_by_key(|(_, n)| *n)
                    .unwrap_or((0, 0));
                return Err(self.value_error(
                    row,
                    col,
                    format!(
                        "the row needs a {row_bytes}-byte INSERT (this column {size} bytes) but the server's max_allowed_packet is {} bytes; \
                         raise max_allowed_packet on the target server (on Azure: server parameters) or leave the column out of the query",
                        self.max_packet
                    ),
                ));
            }
            if rows > 0 && (rows == self.max_rows || bytes + row_bytes > self.limit) {
                let tail = params.split_off(row_start);
                out.push(Chunk {
                    rows,
                    params: std::mem::replace(&mut params, tail),
                });
                rows = 0;
                bytes = 0;
            }
            rows += 1;
            bytes += row_bytes;
        }
        if rows > 0 {
            out.push(Chunk { rows, params });
        }
        Ok(out)
    }

    pub fn value_error(&self, row: usize, col: usize, message: String) -> SinkError {
        SinkError::Value {
            batch: self.batch,
            // Counted from 1 within the batch, as people count rows.
            row: row + 1,
            column: self.names.get(col).cloned().unwrap_or_default(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int32Array, StringArray};
    use std::sync::Arc;

    fn encoding(
        limit: usize,
        max_rows: usize,
        max_packet: usize,
        names: &[String],
    ) -> Encoding<'_> {
        Encoding {
            limit,
            max_rows,
            max_packet,
            batch: 1,
            names,
        }
    }

    #[test]
    fn chunks_respect_rows_and_bytes() {
        let ids: ArrayRef = Arc::new(Int32Array::from((0..100).collect::<Vec<i32>>()));
        let text: ArrayRef = Arc::new(StringArray::from(vec!["x".repeat(100); 100]));
        let views = [
            ColumnView::new(&ids).unwrap(),
            ColumnView::new(&text).unwrap(),
        ];
        let names = ["id".to_string(), "t".to_string()];
        // 10 + 111 bytes a row.
        let chunks = encoding(1 << 20, 30, 1 << 20, &names)
            .encode(&views, 0, 100)
            .unwrap();
        assert_eq!(
            chunks.iter().map(|c| c.rows).collect::<Vec<_>>(),
            [30, 30, 30, 10]
        );
        let chunks = encoding(121 * 7, 1000, 1 << 20, &names)
            .encode(&views, 0, 100)
            .unwrap();
        assert!(chunks.iter().all(|c| c.rows == 7 || c.rows == 100 % 7));
        assert_eq!(chunks.iter().map(|c| c.params.len()).sum::<usize>(), 200);
        assert_eq!(chunks[0].params[1], Value::Bytes(vec![b'x'; 100]));
    }

    #[test]
    fn a_row_over_the_packet_is_named() {
        let ids: ArrayRef = Arc::new(Int32Array::from(vec![1, 2]));
        let text: ArrayRef = Arc::new(StringArray::from(vec!["small", &"y".repeat(5000)]));
        let views = [
            ColumnView::new(&ids).unwrap(),
            ColumnView::new(&text).unwrap(),
        ];
        let names = ["id".to_string(), "payload".to_string()];
        let e = encoding(1 << 20, 100, 4096, &names)
            .encode(&views, 0, 2)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("row 2 of batch 1, column `payload`")
                && e.contains("max_allowed_packet is 4096"),
            "{e}"
        );
    }

    #[test]
    fn values_keep_their_exact_form() {
        assert_eq!(
            to_value(Cell::UInt(u64::MAX)).unwrap(),
            Value::UInt(u64::MAX)
        );
        assert_eq!(to_value(Cell::Float32(0.1)).unwrap(), Value::Float(0.1));
        assert_eq!(
            to_value(Cell::Bytes(&[0, 255])).unwrap(),
            Value::Bytes(vec![0, 255])
        );
        assert!(to_value(Cell::Float(f64::NAN)).is_err());
    }
}
