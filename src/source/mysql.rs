//! The primary source: a query on MySQL, described from its metadata with the mysql crate,
//! then read with connectorx's MySQL parser into Arrow batches (see `batch`).

mod batch;
mod describe;
mod exact;
pub mod filter;
mod keys;
mod lost;
pub mod partition;
pub mod query;
mod read;
pub mod snapshot;
pub mod tables;

pub use describe::sql_type;

use super::{Emit, Source, SourceError};
use crate::connect::{self, Abandon, Endpoint, Session, TlsMode};
use crate::incremental::{self, Filter};
use crate::plan::Partitioning;
use crate::transform::keys::Keys;
use crate::transform::{self, quote_mysql, SourceColumn};
use lost::Probe;
use mysql::prelude::Queryable;
pub use snapshot::Snapshot;
use snapshot::Turn;
use std::time::Duration;

/// How long the check of an incremental run's start may take.
const START_CHECK: Duration = Duration::from_secs(5);

pub struct MySqlSource {
    endpoint: Endpoint,
    mode: TlsMode,
    /// One query, or one per partition.
    read_queries: Vec<String>,
    columns: Vec<SourceColumn>,
    batch_rows: usize,
    statement_timeout: Duration,
    /// Text, ENUM and SET columns without a readable definition (see `exact::lost`).
    lost: Vec<String>,
    keys: Keys,
    /// The query as configured (it may hold `{incremental_value}`), for `restrict`.
    raw_query: String,
    /// The query as it reads every row (the placeholder below every key), cleaned.
    full_query: String,
    dialect: query::Dialect,
    /// The connection that described the query, kept for `look_at_start` (a login less).
    probe: Option<Session>,
    /// A job's snapshot, whose connection reads the rows (in turn) instead of one of
    /// their own.
    snapshot: Option<Turn>,
    /// The incremental run's filter, once `restrict` has it.
    filter: Option<Filter>,
}

impl MySqlSource {
    /// Connects and describes the query without running it. A connection failure comes
    /// back as `SourceError::Connect`, whose `is_unreachable` decides the fallback.
    pub fn open(
        ep: &Endpoint,
        query: &str,
        batch_rows: usize,
        partitioning: Option<&Partitioning>,
        statement_timeout: Duration,
        incremental_key: Option<&str>,
    ) -> Result<Self, SourceError> {
        // The probe only reads metadata: a server silent for this long is not answering.
        let answer = ep.connect_timeout.max(Duration::from_secs(5));
        let (mut conn, mode) = ep.connect(true, Some(answer))?;
        let first = Probe {
            who: DESCRIBER,
            section: ep.section,
            bound: answer,
            setting: format!("[{}] connect_timeout, at least 5 s", ep.section),
        };
        let dialect = query::Dialect::of(&mut conn).map_err(|e| {
            conn.give_up();
            first.query_error("reading the session's sql_mode", e)
        })?;
        let raw_query = query.to_string();
        let has_placeholder = query.contains(incremental::PLACEHOLDER);
        if has_placeholder && incremental_key.is_none() {
            return Err(SourceError::Query {
                section: ep.section,
                message: format!(
                    "the query holds {}, which only [general] strategy = append or merge fills in",
                    incremental::PLACEHOLDER
                ),
            });
        }
        // The columns do not depend on the start value.
        let query = query::clean(&query.replace(incremental::PLACEHOLDER, "NULL"), dialect);
        // Describing may run the query (`LIMIT 0`) and read information_schema: statements.
        // A connection that breaks under one is given up: nothing waits on it again.
        let probe = Probe::statement(DESCRIBER, ep.section, statement_timeout);
        let described = conn.with_timeout(statement_timeout, |c| {
            describe::describe(c, &query, dialect, &probe)
        });
        let (columns, lost, keys) = described.inspect_err(|e| {
            if matches!(e, SourceError::Connection { .. }) {
                conn.give_up();
            }
        })?;
        // A full read: the placeholder stands below every key.
        let query = if has_placeholder {
            let kind = incremental_key
                .and_then(|k| columns.iter().find(|c| c.name.eq_ignore_ascii_case(k)))
                .and_then(|c| incremental::key_kind(c).ok())
                .unwrap_or(incremental::KeyKind::Int);
            query::clean(
                &raw_query.replace(incremental::PLACEHOLDER, filter::placeholder_minimum(kind)),
                dialect,
            )
        } else {
            query
        };
        let read_query = read_query(&query, dialect, &columns, None);
        let full_query = query.clone();
        let read_queries = match partitioning {
            // The bounds query reads the whole result: a statement, not a probe.
            Some(p) => conn.with_timeout(statement_timeout, |c| {
                partition::split(c, dialect, &query, &read_query, &columns, p)
            })?,
            None => vec![read_query],
        };
        for q in &read_queries {
            log::debug!("source query: {q}");
        }
        Ok(MySqlSource {
            endpoint: ep.clone(),
            mode,
            read_queries,
            columns,
            batch_rows,
            statement_timeout,
            lost,
            keys,
            raw_query,
            full_query,
            dialect,
            // Kept only when an incremental run will check its start with it.
            probe: incremental_key.map(|_| conn),
            snapshot: None,
            filter: None,
        })
    }

    /// Warns about the columns whose definitions could not be read, which a MySQL target
    /// then declares from the result metadata.
    pub fn warn_lost_definitions(&self) {
        exact::warn_lost(&self.lost);
    }

    /// The query reading every row, as the server runs it, and the session's dialect
    /// (for a verification, which wraps it in its own SELECT).
    pub fn full_query(&self) -> (&str, query::Dialect) {
        (&self.full_query, self.dialect)
    }
}

/// The connection that describes the query.
const DESCRIBER: &str = "the source's describing connection";

/// The query as read: the user's own when every column arrives exactly as it is, else
/// wrapped so the columns that need it are cast on the server.
fn read_query(
    query: &str,
    dialect: query::Dialect,
    columns: &[SourceColumn],
    filter: Option<&Filter>,
) -> String {
    let exprs: Vec<Option<String>> = columns.iter().map(transform::read_expr).collect();
    let tail = filter
        .map(|f| format!(" WHERE {}", filter::condition(f, "dbsync_src")))
        .unwrap_or_default();
    if exprs.iter().all(Option::is_none) {
        return match filter {
            None => query.to_string(),
            Some(_) => query::wrap(query, dialect, "*", "dbsync_src", &tail),
        };
    }
    let list: Vec<String> = columns
        .iter()
        .zip(exprs)
        .map(|(c, e)| match e {
            Some(e) => format!("{e} AS {}", quote_mysql(&c.name)),
            None => quote_mysql(&c.name),
        })
        .collect();
    query::wrap(query, dialect, &list.join(", "), "dbsync_src", &tail)
}

impl Source for MySqlSource {
    fn describe(&self) -> String {
        format!("MySQL {}", self.endpoint.describe())
    }

    fn columns(&self) -> &[SourceColumn] {
        &self.columns
    }

    fn keys(&self) -> Keys {
        self.keys.clone()
    }

    /// Reads only the rows `filter` lets through (one connection: an incremental read is small).
    fn restrict(&mut self, filter: &Filter) {
        let query = self
            .raw_query
            .replace(incremental::PLACEHOLDER, &filter::placeholder_value(filter));
        let query = query::clean(&query, self.dialect);
        let q = read_query(&query, self.dialect, &self.columns, Some(filter));
        log::debug!("source query: {q}");
        self.read_queries = vec![q];
        self.filter = Some(filter.clone());
    }

    fn restriction(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }

    /// One statement: the server's UTC clock, and whether the query returns a row whose
    /// key is `max` (the placeholder stands below every key; the server pushes the equality
    /// into the query where it can, as it does the read's own filter).
    /// One statement, bounded to a few seconds on the server and on the client (the check
    /// only warns, and must not cost the night a long wait): the server's UTC clock, and
    /// the questions about the query's rows, which the server answers through an index on
    /// the key when it can push the condition into the query, as it does the read's own.
    /// A query holding `{incremental_value}` is not asked about its rows: its own WHERE
    /// (a LIMIT, a BETWEEN) may leave them out at any start.
    fn look_at_start(&mut self, ask: &incremental::StartQuestions) -> incremental::StartView {
        // Dropped at the end: not held through the read.
        let Some(mut conn) = self.probe.take() else {
            return Default::default();
        };
        let rows_asked = !self.raw_query.contains(incremental::PLACEHOLDER);
        let exists = |condition: String| match rows_asked {
            true => {
                let query = query::clean(&self.raw_query, self.dialect);
                let tail = format!(
                    " WHERE `dbsync_src`.{} {condition} LIMIT 1",
                    quote_mysql(&ask.key)
                );
                format!(
                    "EXISTS ({})",
                    query::wrap(&query, self.dialect, "1", "dbsync_src", &tail)
                )
            }
            false => "NULL".to_string(),
        };
        let holds = ask
            .holds
            .map_or("NULL".into(), |n| exists(format!("= {n}")));
        let zero = match ask.zero_dates {
            true => exists("< '1000-01-01'".into()),
            false => "NULL".into(),
        };
        let sql = format!(
            "SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:%s.%f'), {holds}, {zero}"
        );
        let sql = self.dialect.bounded(&sql, START_CHECK.as_secs());
        type Answer = (String, Option<bool>, Option<bool>);
        let answer: Result<Option<Answer>, _> =
            conn.with_timeout(START_CHECK + Duration::from_secs(1), |c| c.query_first(sql));
        match answer {
            Ok(Some((now, holds_max, zero_keys))) => incremental::StartView {
                now_utc: incremental::parse_instant(&now),
                holds_max,
                zero_keys,
            },
            Ok(None) => Default::default(),
            Err(e) => {
                let e = crate::connect::redact(&e.to_string(), &self.endpoint);
                log::debug!("the start was not checked against the source: {e}");
                Default::default()
            }
        }
    }

    /// The server's plan for the read (`EXPLAIN`), one line per step.
    fn explain(&self) -> Result<Vec<String>, SourceError> {
        Ok(self
            .plan()?
            .iter()
            .map(|r| {
                r.columns_ref()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| match r.as_ref(i) {
                        Some(mysql::Value::NULL) | None => None,
                        Some(v) => Some(format!(
                            "{}={}",
                            c.name_str(),
                            v.as_sql(true).trim_matches('\'')
                        )),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect())
    }

    fn query_text(&self) -> Option<&str> {
        Some(&self.raw_query)
    }

    /// A job under a snapshot opens its tables without partitions: one read each.
    fn read_in(&mut self, snapshot: &Snapshot) {
        self.snapshot = Some(snapshot.turn());
    }

    fn estimate(&self) -> Option<u64> {
        if self.read_queries.len() != 1 {
            return None;
        }
        let plan = match self.plan() {
            Ok(p) => p,
            Err(e) => {
                log::debug!("no row estimate: {e}");
                return None;
            }
        };
        // One step reading one table: its row estimate is the result's (a join's or a
        // grouping's is not). Partitioned reads show rows and rows/s only.
        match plan.as_slice() {
            [step] => {
                let text = |name: &str| -> String {
                    step.get_opt::<Option<String>, _>(name)
                        .and_then(Result::ok)
                        .flatten()
                        .unwrap_or_default()
                };
                let (access, extra) = (text("type"), text("Extra"));
                // A scan with a condition: the estimate counts the rows examined, not kept.
                let scan_filtered =
                    matches!(access.as_str(), "ALL" | "index") && extra.contains("Using where");
                if extra.contains("Using temporary") || scan_filtered {
                    return None;
                }
                step.get_opt::<Option<u64>, _>("rows")
                    .and_then(Result::ok)
                    .flatten()
            }
            _ => None,
        }
    }

    fn read(
        mut self: Box<Self>,
        emit: &mut Emit<'_>,
        abandon: &Abandon,
    ) -> Result<u64, SourceError> {
        // Not held idle through the read.
        drop(self.probe.take());
        if let [query] = self.read_queries.as_slice() {
            return self.read_one(query, emit, abandon);
        }
        self.read_partitions(emit, abandon)
    }
}

impl MySqlSource {
    /// `EXPLAIN` of the (first) read query, on a connection of its own.
    fn plan(&self) -> Result<Vec<mysql::Row>, SourceError> {
        let (mut conn, _) = self.endpoint.connect(true, None)?;
        let query = self.read_queries.first().cloned().unwrap_or_default();
        // A plan comes at once; one that does not is not worth waiting for.
        let bound = self.statement_timeout.min(Duration::from_secs(10));
        let planned = conn.with_timeout(bound, |c| c.query(format!("EXPLAIN {query}")));
        planned.map_err(|e| {
            let probe = Probe {
                who: "the source's EXPLAIN connection",
                section: self.endpoint.section,
                bound,
                setting: "an EXPLAIN waits at most 10 s".into(),
            };
            if connect::wait::broken(&e).is_some() {
                conn.give_up();
            }
            probe.query_error("explaining the query", e)
        })
    }

    fn column_name(&self, index: usize) -> &str {
        self.columns.get(index).map_or("?", |c| c.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::SqlType;

    #[test]
    fn wraps_only_when_a_column_needs_a_cast() {
        let col = |name: &str, ty| SourceColumn {
            name: name.into(),
            ty,
            nullable: true,
            exact_mysql_type: None,
            collation: None,
        };
        let ints = [col(
            "id",
            SqlType::Int {
                bytes: 4,
                unsigned: true,
            },
        )];
        let d = query::Dialect::default();
        assert_eq!(
            read_query("SELECT id FROM t", d, &ints, None),
            "SELECT id FROM t"
        );
        let mixed = [
            col(
                "id",
                SqlType::Int {
                    bytes: 4,
                    unsigned: true,
                },
            ),
            col("p v", SqlType::DateTime { fsp: 0 }),
        ];
        assert_eq!(
            read_query("SELECT * FROM t", d, &mixed, None),
            "SELECT `id`, `p v` + 0 AS `p v` FROM (SELECT * FROM t\n) AS `dbsync_src`"
        );
    }
}
