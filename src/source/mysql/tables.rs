//! The base tables of the source's database, for a job of many tables.

use crate::connect::Endpoint;
use crate::source::SourceError;
use mysql::prelude::Queryable;
use std::time::Duration;

/// A base table of the source's database, with its storage engine (a consistent snapshot
/// covers InnoDB's only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseTable {
    pub name: String,
    pub engine: String,
}

/// Every base table of `ep`'s database, by name. A connection failure comes back as
/// `SourceError::Connect`, whose `is_unreachable` decides the fallback.
pub fn base_tables(ep: &Endpoint) -> Result<Vec<BaseTable>, SourceError> {
    let (mut conn, _) = ep.connect(true, Some(ep.connect_timeout.max(Duration::from_secs(5))))?;
    let rows: Result<Vec<(String, Option<String>)>, _> = conn.query(
        "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
    );
    let rows = rows.map_err(|e| SourceError::Query {
        section: ep.section,
        message: format!(
            "listing the tables of `{}`: {}",
            ep.database,
            crate::connect::redact(&e.to_string(), ep)
        ),
    })?;
    Ok(rows
        .into_iter()
        .map(|(name, engine)| BaseTable {
            name,
            engine: engine.unwrap_or_default(),
        })
        .collect())
}
