//! The load record kept beside the `[local_db]` table: when it was last loaded, how many
//! rows, from where. The fallback reads it to tell (and bound) the age of what it serves.
//!
//! It lives in the same SQLite file, in a small table written inside the load's own
//! transaction, so the record and the rows it describes can never disagree.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};
use std::time::{Duration, SystemTime};

/// The table holding one row per loaded table.
pub const TABLE: &str = "dbsync_loads";

/// One successful load of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRecord {
    /// When the rows were read from their source (the start of that run).
    pub loaded_at: SystemTime,
    pub rows: u64,
    /// Where they came from, e.g. `MySQL reader@db.example.com:3306/vehicles`.
    pub source: String,
}

impl LoadRecord {
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.loaded_at).unwrap_or_default()
    }

    /// `2026-11-27 22:46:55 UTC`.
    pub fn loaded_at_text(&self) -> String {
        DateTime::<Utc>::from(self.loaded_at)
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string()
    }
}

/// Writes (or replaces) the record of `table`; meant to run inside the load's transaction.
pub fn write(conn: &Connection, table: &str, record: &LoadRecord) -> rusqlite::Result<()> {
    let unix = record
        .loaded_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (table_name TEXT PRIMARY KEY COLLATE NOCASE, loaded_at TEXT NOT NULL, \
         loaded_at_unix INTEGER NOT NULL, rows INTEGER NOT NULL, source TEXT NOT NULL)"
    ))?;
    conn.execute(
        &format!("INSERT OR REPLACE INTO {TABLE} VALUES (?1, ?2, ?3, ?4, ?5)"),
        rusqlite::params![
            table,
            record.loaded_at_text(),
            unix,
            record.rows as i64,
            record.source
        ],
    )?;
    Ok(())
}

/// The record of `table`, or `None` when the file has none (loaded by an older dbsync, or
/// by something else).
pub fn read(conn: &Connection, table: &str) -> rusqlite::Result<Option<LoadRecord>> {
    let has_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
        [TABLE],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(None);
    }
    conn.query_row(
        &format!("SELECT loaded_at_unix, rows, source FROM {TABLE} WHERE table_name = ?1"),
        [table],
        |r| {
            Ok(LoadRecord {
                loaded_at: SystemTime::UNIX_EPOCH
                    + Duration::from_secs(r.get::<_, i64>(0)?.max(0) as u64),
                rows: r.get::<_, i64>(1)?.max(0) as u64,
                source: r.get(2)?,
            })
        },
    )
    .optional()
}

/// An age as people read it: `3d 4h`, `5h 12m`, `42s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins) = (s / 86_400, s / 3_600 % 24, s / 60 % 60);
    let (big, small) = match (days, hours, mins) {
        (0, 0, 0) => return format!("{s}s"),
        (0, 0, m) => (format!("{m}m"), format!("{}s", s % 60)),
        (0, h, m) => (format!("{h}h"), format!("{m}m")),
        (d, h, _) => (format!("{d}d"), format!("{h}h")),
    };
    if small.starts_with('0') {
        big
    } else {
        format!("{big} {small}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_is_replaced() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(read(&conn, "t").unwrap(), None);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let r = LoadRecord {
            loaded_at: at,
            rows: 7,
            source: "MySQL u@h:3306/d".into(),
        };
        write(&conn, "t", &r).unwrap();
        assert_eq!(read(&conn, "t").unwrap(), Some(r.clone()));
        assert_eq!(read(&conn, "other").unwrap(), None);
        // SQLite table names are case-insensitive; so is the record's key.
        assert_eq!(read(&conn, "T").unwrap(), Some(r.clone()));
        let newer = LoadRecord { rows: 9, ..r };
        write(&conn, "t", &newer).unwrap();
        assert_eq!(read(&conn, "t").unwrap().unwrap().rows, 9);
        assert_eq!(newer.loaded_at_text(), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn ages_read_like_people_say_them() {
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(125)), "2m 5s");
        assert_eq!(human(Duration::from_secs(5 * 3600 + 720)), "5h 12m");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3d 4h");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 59)), "2d");
        assert_eq!(human(Duration::from_secs(36 * 3600)), "1d 12h");
    }
}
