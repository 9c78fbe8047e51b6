//! Which column type a SQLite target declares for each source type, and so which
//! affinity stores its values.

use super::SqlType;

/// SQLite column type. Chosen by affinity so SQLite never rewrites a value: INTEGER and
/// REAL take what they hold exactly; everything rendered as text goes to TEXT (NUMERIC
/// affinity would turn '0012' or '1.10' into numbers); BIGINT UNSIGNED gets no declared
/// type (BLOB affinity) because INTEGER affinity turns text above 2^63-1 into a lossy REAL.
pub fn sqlite_type(ty: &SqlType) -> &'static str {
    match ty {
        SqlType::Int {
            bytes: 8,
            unsigned: true,
        } => "",
        SqlType::Int { .. } | SqlType::Bool | SqlType::Year => "INTEGER",
        SqlType::Float | SqlType::Double => "REAL",
        SqlType::Binary { .. } | SqlType::Bit { .. } | SqlType::Geometry => "BLOB",
        SqlType::Decimal { .. }
        | SqlType::Date
        | SqlType::DateTime { .. }
        | SqlType::Timestamp { .. }
        | SqlType::Time { .. }
        | SqlType::Text { .. }
        | SqlType::Json
        | SqlType::Enum
        | SqlType::Set
        | SqlType::Null => "TEXT",
    }
}

/// `[local_db] decimal`: how DECIMAL columns are stored in SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMode {
    /// REAL (in a column declared `DECIMAL(p,s)`) up to 15 digits, exact text beyond.
    Auto,
    /// REAL whatever the precision.
    Real,
    /// Exact text whatever the precision (comparisons are then textual).
    Text,
}

impl DecimalMode {
    pub fn parse(s: &str) -> Option<DecimalMode> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(DecimalMode::Auto),
            "real" => Some(DecimalMode::Real),
            "text" => Some(DecimalMode::Text),
            _ => None,
        }
    }
}

/// Most significant digits a REAL (a double) holds exactly: every DECIMAL value of at
/// most this precision converts to the nearest double and prints back as itself at its
/// scale.
pub const REAL_DIGITS: u8 = 15;

/// SQLite's declared type for a column: `sqlite_type`, except for DECIMAL, which is
/// declared `DECIMAL(p,s)` (NUMERIC affinity: SQLite stores the text the source sends as
/// a number, INTEGER when it is whole, so comparisons, MAX and SUM work) when `decimal`
/// allows: up to `REAL_DIGITS` digits under `auto`, always under `real` (lossy beyond
/// `REAL_DIGITS`: the digits past the 15th are rounded; the run warns).
pub fn sqlite_decl(ty: &SqlType, decimal: DecimalMode) -> String {
    match (ty, decimal) {
        (
            SqlType::Decimal {
                precision, scale, ..
            },
            DecimalMode::Real,
        ) => format!("DECIMAL({precision},{scale})"),
        (
            SqlType::Decimal {
                precision, scale, ..
            },
            DecimalMode::Auto,
        ) if *precision <= REAL_DIGITS => format!("DECIMAL({precision},{scale})"),
        _ => sqlite_type(ty).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_up_to_15_digits_are_numbers_in_sqlite_and_print_back_exactly() {
        let dec = |precision, scale| SqlType::Decimal {
            precision,
            scale,
            unsigned: false,
        };
        assert_eq!(sqlite_decl(&dec(15, 2), DecimalMode::Auto), "DECIMAL(15,2)");
        assert_eq!(sqlite_decl(&dec(16, 2), DecimalMode::Auto), "TEXT");
        assert_eq!(
            sqlite_decl(&dec(65, 30), DecimalMode::Real),
            "DECIMAL(65,30)"
        );
        assert_eq!(sqlite_decl(&dec(5, 2), DecimalMode::Text), "TEXT");
        assert_eq!(sqlite_decl(&SqlType::Date, DecimalMode::Real), "TEXT");
        // What the sink does: MySQL's text bound into a column declared so.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (d DECIMAL(15,2), w DECIMAL(15,0), s DECIMAL(15,14))")
            .unwrap();
        let values = [
            ("9999999999999.99", "999999999999999", "9.99999999999999"),
            ("-9999999999999.99", "-999999999999999", "-0.00000000000001"),
            ("0.10", "0", "0.30000000000000"),
            ("12.00", "-1", "1.00000000000001"),
        ];
        for (d, w, s) in values {
            conn.execute("INSERT INTO t VALUES (?1, ?2, ?3)", [d, w, s])
                .unwrap();
        }
        let back: Vec<(String, String, String, String)> = conn
            .prepare(
                "SELECT printf('%.2f', d), printf('%.0f', w), printf('%.14f', s), typeof(d) FROM t",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for ((d, w, s), got) in values.iter().zip(&back) {
            assert_eq!(
                (*d, *w, *s),
                (got.0.as_str(), got.1.as_str(), got.2.as_str())
            );
        }
        // Whole values are stored as integers; comparisons are numeric.
        assert_eq!(back[3].3, "integer");
        let max: f64 = conn
            .query_row("SELECT max(d) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(max, 9999999999999.99);
    }

    #[test]
    fn sqlite_types_never_have_numeric_affinity() {
        // NUMERIC affinity is what any of these would get from a name like DECIMAL/DATETIME.
        for ty in [
            SqlType::Decimal {
                precision: 12,
                scale: 2,
                unsigned: false,
            },
            SqlType::DateTime { fsp: 0 },
            SqlType::Date,
            SqlType::Time { fsp: 6 },
        ] {
            assert_eq!(sqlite_type(&ty), "TEXT", "{ty:?}");
        }
        assert_eq!(
            sqlite_type(&SqlType::Int {
                bytes: 8,
                unsigned: true
            }),
            ""
        );
        assert_eq!(
            sqlite_type(&SqlType::Int {
                bytes: 4,
                unsigned: true
            }),
            "INTEGER"
        );
    }
}
