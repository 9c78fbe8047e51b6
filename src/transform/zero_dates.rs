//! Zero and partial dates (`0000-00-00`, `2024-00-00`): found in the temporal columns of
//! each batch and kept, nulled or refused as `[external_db] zero_dates` says.

use super::{SourceColumn, SqlType};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

/// What to do with zero and partial dates (`0000-00-00`, `2024-00-00`), which MySQL allows
/// and most tools reject. `[external_db] zero_dates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroDates {
    /// Copy them as the source has them (SQLite: the text; MySQL: the same zero date).
    Keep,
    /// Write NULL instead.
    Null,
    /// Fail the run, naming the first one.
    Error,
}

impl ZeroDates {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "keep" => Some(ZeroDates::Keep),
            "null" => Some(ZeroDates::Null),
            "error" => Some(ZeroDates::Error),
            _ => None,
        }
    }
}

/// A zero or partial date: year, month or day is zero (the date part of DATE, DATETIME,
/// TIMESTAMP as MySQL renders them).
pub fn is_zero_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && (&b[0..4] == b"0000" || &b[5..7] == b"00" || &b[8..10] == b"00")
}

/// The columns as the target must declare them: under `Null`, temporal columns may receive
/// NULL in place of a zero date, so they are nullable whatever the source says.
pub fn target_columns(columns: &[SourceColumn], policy: ZeroDates) -> Vec<SourceColumn> {
    let mut out = columns.to_vec();
    if policy == ZeroDates::Null {
        for c in &mut out {
            if matches!(
                c.ty,
                SqlType::Date | SqlType::DateTime { .. } | SqlType::Timestamp { .. }
            ) {
                c.nullable = true;
            }
        }
    }
    out
}

/// A value the policy refuses: where it is and what it was.
#[derive(Debug)]
pub struct Refused {
    pub column: String,
    pub row: usize,
    pub value: String,
}

/// The zero dates of one text column: the first (row, value), how many, and under `Null`
/// the column with them replaced by NULL. `None` when there are none.
#[allow(clippy::type_complexity)]
fn zero_dates_in<O: arrow::array::OffsetSizeTrait>(
    array: &ArrayRef,
    policy: ZeroDates,
) -> Option<((usize, String), u64, Option<ArrayRef>)> {
    let text = array.as_string::<O>();
    let zero: Vec<usize> = (0..text.len())
        .filter(|&r| text.is_valid(r) && is_zero_date(text.value(r)))
        .collect();
    let first = *zero.first()?;
    let replaced = (policy == ZeroDates::Null).then(|| {
        let nulled: arrow::array::GenericStringArray<O> = (0..text.len())
            .map(|r| (text.is_valid(r) && !is_zero_date(text.value(r))).then(|| text.value(r)))
            .collect();
        std::sync::Arc::new(nulled) as ArrayRef
    });
    Some((
        (first, text.value(first).to_string()),
        zero.len() as u64,
        replaced,
    ))
}

/// Applies the zero-date policy to one batch; returns the batch (changed only under
/// `Null`) and how many zero or partial dates it held.
pub fn apply_zero_dates(
    batch: RecordBatch,
    columns: &[SourceColumn],
    policy: ZeroDates,
) -> Result<(RecordBatch, u64), Refused> {
    let mut found = 0u64;
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    let mut changed = false;
    for (i, col) in columns.iter().enumerate() {
        if !matches!(
            col.ty,
            SqlType::Date | SqlType::DateTime { .. } | SqlType::Timestamp { .. }
        ) {
            continue;
        }
        let zeros = match arrays[i].data_type() {
            DataType::Utf8 => zero_dates_in::<i32>(&arrays[i], policy),
            DataType::LargeUtf8 => zero_dates_in::<i64>(&arrays[i], policy),
            _ => continue,
        };
        let Some((first, count, replaced)) = zeros else {
            continue;
        };
        found += count;
        match policy {
            ZeroDates::Keep => {}
            ZeroDates::Error => {
                return Err(Refused {
                    column: col.name.clone(),
                    row: first.0,
                    value: first.1,
                })
            }
            ZeroDates::Null => {
                arrays[i] = replaced.expect("built under Null");
                changed = true;
            }
        }
    }
    if !changed {
        return Ok((batch, found));
    }
    let fields: Vec<arrow::datatypes::Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
    let batch = RecordBatch::try_new(schema, arrays).expect("same shape as the input batch");
    Ok((batch, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn zero_and_partial_dates() {
        for z in [
            "0000-00-00",
            "2024-00-00",
            "2024-05-00 10:00:00",
            "0000-01-01",
        ] {
            assert!(is_zero_date(z), "{z}");
        }
        for d in ["2024-05-01", "1000-01-01 00:00:00", "838:59:59", ""] {
            assert!(!is_zero_date(d), "{d}");
        }
    }

    #[test]
    fn zero_date_policy() {
        use arrow::array::LargeStringArray;
        use arrow::datatypes::{Field, Schema};
        let col = SourceColumn {
            name: "d".into(),
            ty: SqlType::Date,
            nullable: true,
            exact_mysql_type: None,
            collation: None,
        };
        let schema = Arc::new(Schema::new(vec![Field::new(
            "d",
            DataType::LargeUtf8,
            false,
        )]));
        let arr: ArrayRef = Arc::new(LargeStringArray::from(vec!["2024-01-01", "0000-00-00"]));
        let batch = RecordBatch::try_new(schema, vec![arr]).unwrap();
        let cols = [col];
        let (b, n) = apply_zero_dates(batch.clone(), &cols, ZeroDates::Keep).unwrap();
        assert_eq!((n, b.column(0).null_count()), (1, 0));
        let (b, n) = apply_zero_dates(batch.clone(), &cols, ZeroDates::Null).unwrap();
        assert_eq!((n, b.column(0).null_count()), (1, 1));
        let e = apply_zero_dates(batch, &cols, ZeroDates::Error).unwrap_err();
        assert_eq!((e.row, e.value.as_str()), (1, "0000-00-00"));
    }
}
