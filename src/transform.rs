//! The one type map: what each source column is, how it is read so no value is bent on
//! the way, and which column type each target gets. Sinks read values through [`Cell`].
//!
//! Values that Arrow (or connectorx) cannot carry exactly travel as MySQL's own text
//! rendering. DECIMAL and JSON already come as text in the binary protocol and are taken
//! as that text (connectorx would squeeze DECIMAL into Decimal128(38,10) and re-serialise
//! JSON with sorted keys). The temporal types are selected as numbers (`col + 0`, and
//! TIMESTAMP as its instant, `UNIX_TIMESTAMP(col)`, whatever the session's zone) and
//! written back as MySQL's text (`temporal`): read natively, zero dates and TIME beyond
//! 24 h make connectorx panic.

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float32Array, Float64Array,
    LargeBinaryArray, StringArray,
};
use arrow::datatypes::{
    DataType, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use std::fmt;

pub mod keys;
mod sqlite;
pub mod temporal;
mod zero_dates;
pub use sqlite::{sqlite_decl, sqlite_type, DecimalMode, REAL_DIGITS};
pub use zero_dates::{apply_zero_dates, is_zero_date, target_columns, Refused, ZeroDates};

/// A source column's type, as precise as the source tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlType {
    /// TINYINT (1) .. BIGINT (8); `bytes` is the storage size.
    Int {
        bytes: u8,
        unsigned: bool,
    },
    /// TINYINT(1), MySQL's BOOL.
    Bool,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
        unsigned: bool,
    },
    Date,
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    Time {
        fsp: u8,
    },
    Year,
    /// CHAR/VARCHAR/TEXT; `max_chars` from the column's declared length.
    Text {
        max_chars: u64,
        fixed: bool,
    },
    /// BINARY/VARBINARY/BLOB.
    Binary {
        max_bytes: u64,
        fixed: bool,
    },
    Bit {
        bits: u8,
    },
    Json,
    Enum,
    Set,
    Geometry,
    /// The type of a bare `NULL` in a select list.
    Null,
}

#[derive(Debug, Clone)]
pub struct SourceColumn {
    pub name: String,
    pub ty: SqlType,
    /// False when the source guarantees no NULLs (NOT NULL); the MySQL target keeps it.
    pub nullable: bool,
    /// The source's own column type (e.g. `enum('a','b')`), when the column is a plain
    /// table column; the MySQL target then uses it verbatim.
    pub exact_mysql_type: Option<String>,
    /// The character set and collation of a text column of a table (result metadata only
    /// says `utf8mb4`, the connection's), so the MySQL target compares and fits text alike.
    pub collation: Option<Collation>,
}

/// A text column's character set and collation, as `information_schema.COLUMNS` has them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Collation {
    pub charset: String,
    pub name: String,
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mysql_type(self))
    }
}

/// A string as a MySQL literal that means the same whatever the session's sql_mode (hex,
/// with its character set): for names in lookups sent as plain queries, one round trip
/// each (a prepared statement costs two, which a remote server makes felt).
pub fn mysql_literal(s: &str) -> String {
    let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
    format!("_utf8mb4 X'{hex}'")
}

/// FNV-1a of `bytes`: a stable short hash for names that must fit a length limit.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

/// `name` with `suffix`, shortened with a hash when it would pass MySQL's 64-character
/// limit for table and index names.
pub fn derived_name(name: &str, suffix: &str) -> String {
    let full = format!("{name}{suffix}");
    if full.chars().count() <= 64 {
        return full;
    }
    let keep: String = name.chars().take(64 - suffix.len() - 9).collect();
    format!("{keep}_{:08x}{suffix}", fnv1a(name.as_bytes()) as u32)
}

/// Quotes an identifier for SQLite and for MySQL with ANSI-style double quotes doubled
/// inside; MySQL needs backticks, see [`quote_mysql`].
pub fn quote_sqlite(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

pub fn quote_mysql(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// The text form of a column that `read_expr` reads as a number.
pub fn temporal_kind(ty: &SqlType) -> Option<temporal::Temporal> {
    match ty {
        SqlType::Date => Some(temporal::Temporal::Date),
        SqlType::DateTime { .. } => Some(temporal::Temporal::DateTime),
        SqlType::Timestamp { .. } => Some(temporal::Temporal::Timestamp),
        SqlType::Time { .. } => Some(temporal::Temporal::Time),
        _ => None,
    }
}

/// The expression the source query selects for this column, when the raw value would not
/// arrive exactly; `None` reads the column as it is.
pub fn read_expr(col: &SourceColumn) -> Option<String> {
    let q = quote_mysql(&col.name);
    match col.ty {
        // As numbers (see `temporal`): cheaper for the server than text, and exact.
        SqlType::Date | SqlType::DateTime { .. } | SqlType::Time { .. } => Some(format!("{q} + 0")),
        // As the instant itself: `+ 0` or text would be in the session's time zone, which
        // is the server's (the user's query means what it means in the mysql client), and
        // a zone with DST shows one hour twice a year. Read through the derived table,
        // MariaDB gives NULL for the zero timestamp, whose `+ 0` is 0 in any zone.
        SqlType::Timestamp { .. } => Some(format!("COALESCE(UNIX_TIMESTAMP({q}), {q} + 0)")),
        SqlType::Null => Some(format!("CAST({q} AS CHAR)")),
        SqlType::Geometry => Some(format!("ST_AsBinary({q})")),
        _ => None,
    }
}

/// MySQL column type, derived from the source's metadata when no exact type is known.
pub fn mysql_type(ty: &SqlType) -> String {
    let uns = |u: bool| if u { " UNSIGNED" } else { "" };
    let frac = |name: &str, fsp: u8| {
        if fsp > 0 {
            format!("{name}({fsp})")
        } else {
            name.to_string()
        }
    };
    match *ty {
        SqlType::Int { bytes, unsigned } => {
            let name = match bytes {
                1 => "TINYINT",
                2 => "SMALLINT",
                3 => "MEDIUMINT",
                4 => "INT",
                _ => "BIGINT",
            };
            format!("{name}{}", uns(unsigned))
        }
        SqlType::Bool => "TINYINT(1)".into(),
        SqlType::Float => "FLOAT".into(),
        SqlType::Double => "DOUBLE".into(),
        SqlType::Decimal {
            precision,
            scale,
            unsigned,
        } => format!("DECIMAL({precision},{scale}){}", uns(unsigned)),
        SqlType::Date => "DATE".into(),
        SqlType::DateTime { fsp } => frac("DATETIME", fsp),
        SqlType::Timestamp { fsp } => frac("TIMESTAMP", fsp),
        SqlType::Time { fsp } => frac("TIME", fsp),
        SqlType::Year => "YEAR".into(),
        SqlType::Text { max_chars, fixed } => match max_chars {
            n if fixed && n <= 255 => format!("CHAR({n})"),
            n if n <= 255 => format!("VARCHAR({n})"),
            n if n <= 16_383 => "TEXT".into(),
            n if n <= 4_194_303 => "MEDIUMTEXT".into(),
            _ => "LONGTEXT".into(),
        },
        SqlType::Binary { max_bytes, fixed } => match max_bytes {
            n if fixed && n <= 255 => format!("BINARY({n})"),
            n if n <= 255 => format!("VARBINARY({n})"),
            n if n <= 65_535 => "BLOB".into(),
            n if n <= 16_777_215 => "MEDIUMBLOB".into(),
            _ => "LONGBLOB".into(),
        },
        SqlType::Bit { bits } => format!("BIT({})", bits.clamp(1, 64)),
        SqlType::Json => "JSON".into(),
        // Without the member list (only a table column's exact type has it) the text is kept.
        SqlType::Enum | SqlType::Set => "VARCHAR(255)".into(),
        // Read as WKB (ST_AsBinary), so stored as the bytes.
        SqlType::Geometry => "LONGBLOB".into(),
        SqlType::Null => "TEXT".into(),
    }
}

/// The MySQL target's column type: the source's own when known, except for what is read
/// in another form (GEOMETRY arrives as WKB bytes).
pub fn mysql_target_type(col: &SourceColumn) -> String {
    match (&col.ty, &col.exact_mysql_type) {
        (SqlType::Geometry, _) | (_, None) => mysql_type(&col.ty),
        (_, Some(exact)) => exact.clone(),
    }
}

/// One value, borrowed from a batch, as a sink needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    /// A MySQL FLOAT: each sink decides how to keep it (see `float_as_shown`).
    Float32(f32),
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// A typed view of one Arrow column, so the per-value work is a match, not a downcast.
pub enum ColumnView<'a> {
    I8(&'a arrow::array::PrimitiveArray<Int8Type>),
    I16(&'a arrow::array::PrimitiveArray<Int16Type>),
    I32(&'a arrow::array::PrimitiveArray<Int32Type>),
    I64(&'a arrow::array::PrimitiveArray<Int64Type>),
    U8(&'a arrow::array::PrimitiveArray<UInt8Type>),
    U16(&'a arrow::array::PrimitiveArray<UInt16Type>),
    U32(&'a arrow::array::PrimitiveArray<UInt32Type>),
    U64(&'a arrow::array::PrimitiveArray<UInt64Type>),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Bool(&'a BooleanArray),
    Utf8(&'a StringArray),
    LargeUtf8(&'a arrow::array::LargeStringArray),
    Bin(&'a BinaryArray),
    LargeBin(&'a LargeBinaryArray),
    AllNull(usize),
}

impl<'a> ColumnView<'a> {
    pub fn new(array: &'a ArrayRef) -> Result<Self, String> {
        Ok(match array.data_type() {
            DataType::Int8 => ColumnView::I8(array.as_primitive()),
            DataType::Int16 => ColumnView::I16(array.as_primitive()),
            DataType::Int32 => ColumnView::I32(array.as_primitive()),
            DataType::Int64 => ColumnView::I64(array.as_primitive()),
            DataType::UInt8 => ColumnView::U8(array.as_primitive()),
            DataType::UInt16 => ColumnView::U16(array.as_primitive()),
            DataType::UInt32 => ColumnView::U32(array.as_primitive()),
            DataType::UInt64 => ColumnView::U64(array.as_primitive()),
            DataType::Float32 => ColumnView::F32(array.as_primitive()),
            DataType::Float64 => ColumnView::F64(array.as_primitive()),
            DataType::Boolean => ColumnView::Bool(array.as_boolean()),
            DataType::Utf8 => ColumnView::Utf8(array.as_string()),
            DataType::LargeUtf8 => ColumnView::LargeUtf8(array.as_string()),
            DataType::Binary => ColumnView::Bin(array.as_binary()),
            DataType::LargeBinary => ColumnView::LargeBin(array.as_binary()),
            DataType::Null => ColumnView::AllNull(array.len()),
            other => return Err(format!("Arrow type {other} is not handled")),
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            ColumnView::I8(a) => a.is_null(row),
            ColumnView::I16(a) => a.is_null(row),
            ColumnView::I32(a) => a.is_null(row),
            ColumnView::I64(a) => a.is_null(row),
            ColumnView::U8(a) => a.is_null(row),
            ColumnView::U16(a) => a.is_null(row),
            ColumnView::U32(a) => a.is_null(row),
            ColumnView::U64(a) => a.is_null(row),
            ColumnView::F32(a) => a.is_null(row),
            ColumnView::F64(a) => a.is_null(row),
            ColumnView::Bool(a) => a.is_null(row),
            ColumnView::Utf8(a) => a.is_null(row),
            ColumnView::LargeUtf8(a) => a.is_null(row),
            ColumnView::Bin(a) => a.is_null(row),
            ColumnView::LargeBin(a) => a.is_null(row),
            ColumnView::AllNull(_) => true,
        }
    }

    #[inline]
    pub fn cell(&self, row: usize) -> Cell<'a> {
        if self.is_null(row) {
            return Cell::Null;
        }
        match self {
            ColumnView::I8(a) => Cell::Int(a.value(row) as i64),
            ColumnView::I16(a) => Cell::Int(a.value(row) as i64),
            ColumnView::I32(a) => Cell::Int(a.value(row) as i64),
            ColumnView::I64(a) => Cell::Int(a.value(row)),
            ColumnView::U8(a) => Cell::Int(a.value(row) as i64),
            ColumnView::U16(a) => Cell::Int(a.value(row) as i64),
            ColumnView::U32(a) => Cell::Int(a.value(row) as i64),
            ColumnView::U64(a) => Cell::UInt(a.value(row)),
            ColumnView::F32(a) => Cell::Float32(a.value(row)),
            ColumnView::F64(a) => Cell::Float(a.value(row)),
            ColumnView::Bool(a) => Cell::Int(a.value(row) as i64),
            ColumnView::Utf8(a) => Cell::Text(a.value(row)),
            ColumnView::LargeUtf8(a) => Cell::Text(a.value(row)),
            ColumnView::Bin(a) => Cell::Bytes(a.value(row)),
            ColumnView::LargeBin(a) => Cell::Bytes(a.value(row)),
            ColumnView::AllNull(_) => Cell::Null,
        }
    }
}

/// A FLOAT as MySQL and MariaDB show it: rounded to 6 significant digits (FLT_DIG), so
/// 16777217 stored as FLOAT reads back as 16777200 and 1.2345678 as 1.23457. A target that
/// only holds doubles (SQLite) gets this value, the one users see; a MySQL target gets the
/// exact single-precision bits instead.
pub fn float_as_shown(v: f32) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v as f64;
    }
    format!("{:.5e}", v as f64).parse().unwrap_or(v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, UInt64Array};
    use std::sync::Arc;

    #[test]
    fn literals_are_hex() {
        assert_eq!(mysql_literal("a'b"), "_utf8mb4 X'612762'");
        assert_eq!(mysql_literal(""), "_utf8mb4 X''");
    }

    #[test]
    fn quoting_doubles_the_quote_char() {
        assert_eq!(
            quote_sqlite("a\"b; DROP TABLE x"),
            "\"a\"\"b; DROP TABLE x\""
        );
        assert_eq!(quote_mysql("we`ird name"), "`we``ird name`");
    }

    #[test]
    fn risky_types_are_read_in_another_form() {
        let col = |ty| SourceColumn {
            name: "p`x".into(),
            ty,
            nullable: true,
            exact_mysql_type: None,
            collation: None,
        };
        assert_eq!(
            read_expr(&col(SqlType::Time { fsp: 0 })).unwrap(),
            "`p``x` + 0"
        );
        // DECIMAL arrives as text in the binary protocol already.
        assert!(read_expr(&col(SqlType::Decimal {
            precision: 65,
            scale: 30,
            unsigned: false
        }))
        .is_none());
        assert!(read_expr(&col(SqlType::Int {
            bytes: 8,
            unsigned: true
        }))
        .is_none());
    }

    #[test]
    fn mysql_types_keep_the_source_shape() {
        assert_eq!(
            mysql_type(&SqlType::Decimal {
                precision: 12,
                scale: 2,
                unsigned: false
            }),
            "DECIMAL(12,2)"
        );
        assert_eq!(
            mysql_type(&SqlType::Int {
                bytes: 8,
                unsigned: true
            }),
            "BIGINT UNSIGNED"
        );
        assert_eq!(mysql_type(&SqlType::DateTime { fsp: 3 }), "DATETIME(3)");
        assert_eq!(
            mysql_type(&SqlType::Text {
                max_chars: 17,
                fixed: true
            }),
            "CHAR(17)"
        );
    }

    #[test]
    fn cells_are_exact() {
        let u: ArrayRef = Arc::new(UInt64Array::from(vec![Some(u64::MAX), None]));
        let v = ColumnView::new(&u).unwrap();
        assert_eq!(v.cell(0), Cell::UInt(u64::MAX));
        assert_eq!(v.cell(1), Cell::Null);
        let f: ArrayRef = Arc::new(Float32Array::from(vec![2.71f32]));
        assert_eq!(ColumnView::new(&f).unwrap().cell(0), Cell::Float32(2.71));
    }

    #[test]
    fn floats_are_shown_with_six_digits() {
        assert_eq!(float_as_shown(16777217.0), 16777200.0);
        assert_eq!(float_as_shown(1.2345678), 1.23457);
        assert_eq!(float_as_shown(3.4028234e38), 3.40282e38);
        assert_eq!(float_as_shown(1.175_494_4e-38), 1.17549e-38);
        assert_eq!(float_as_shown(0.1), 0.1);
        assert_eq!(float_as_shown(-0.0), 0.0);
    }
}
