//! Verification: whether a target table still equals its source, compared by checksums
//! of key ranges computed where it is cheapest, down to the keys that differ.
//!
//! On a MySQL target both servers sum the hashes of their rows' canonical text (`canon`,
//! `sql`) per chunk of the key, and only the chunks whose sums differ are read, key and
//! hash, on both sides (`server`). Into SQLite, dbsync streams the source's rows and compares
//! both sides itself (`local`): rows in step by their canonical texts (`pair`), the rest
//! by their hashes. A table without a usable key is compared as a multiset of
//! row hashes.

pub mod canon;
mod gone;
mod local;
mod pair;
mod server;
mod sorted;
pub mod sql;
mod tally;

pub use tally::{Tally, Verdict};

use crate::connect::ConnectError;
use crate::incremental::Filter;
use crate::plan::Plan;
use crate::source::mysql::MySqlSource;
use crate::source::{Source, SourceError};
use crate::target::Target;
use std::time::Instant;

/// Keys of each kind (missing, extra, changed) and chunks the log names per table.
pub const SAMPLE_KEYS: usize = 10;

/// Why a verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("verifying on the {side}: {message}")]
    Query { side: &'static str, message: String },
    #[error("{0} does not exist: nothing to verify (load it first)")]
    NoTarget(String),
    #[error("verifying {0}: {1}")]
    Sqlite(String, String),
}

/// The target's rows whose key the source no longer has (`deletes = apply`), each DELETE's
/// condition ready for the target.
#[derive(Debug, Clone, Default)]
pub struct Vanished {
    pub conditions: Vec<String>,
    pub rows: u64,
    pub source_rows: u64,
    pub target_rows: u64,
    /// How the keys were compared, for the log.
    pub how: &'static str,
    pub chunks: u64,
    pub differing_chunks: u64,
    pub seconds: f64,
    /// Source rows the merge did not read (outside its filter) whose key the target lacks:
    /// no incremental run will bring them.
    pub unread_lacking: u64,
}

/// Keys one DELETE of a merge's deletes names.
const DELETE_KEYS: usize = 1000;

/// DELETE conditions naming these values of `column` (an SQL expression, quoted),
/// `DELETE_KEYS` at a time.
fn in_lists<T: ToString>(column: &str, values: &[T]) -> Vec<String> {
    values
        .chunks(DELETE_KEYS)
        .map(|part| {
            let part: Vec<String> = part.iter().map(T::to_string).collect();
            format!("{column} IN ({})", part.join(", "))
        })
        .collect()
}

/// The plan's source query, opened (described, not yet read).
fn open_source(plan: &Plan, query: &str) -> Result<MySqlSource, VerifyError> {
    Ok(MySqlSource::open(
        &plan.source,
        query,
        plan.batch_rows,
        None,
        plan.statement_timeout,
        plan.incremental.as_ref().map(|i| i.key.as_str()),
    )?)
}

/// Finds the target's rows whose `key` the source no longer has (a merge's deletes),
/// reading the source's keys now, and counts the source's rows outside `read` (the merge's
/// filter) whose key the target lacks; changes nothing.
pub fn vanished(
    plan: &Plan,
    key: &[String],
    read: Option<&Filter>,
) -> Result<Vanished, VerifyError> {
    let t0 = Instant::now();
    let source = open_source(plan, &plan.query)?;
    let mut gone = match &plan.target {
        Target::MySql(t) => server::vanished(plan, t, &source, key, read)?,
        Target::Sqlite(t) => gone::vanished(plan, t, &source, key, read)?,
    };
    gone.seconds = t0.elapsed().as_secs_f64();
    Ok(gone)
}

/// Compares the plan's target table with its source query, now; changes nothing.
pub fn table(plan: &Plan) -> Result<Verdict, VerifyError> {
    let t0 = Instant::now();
    let source = open_source(plan, &plan.query)?;
    let names: Vec<String> = source.columns().iter().map(|c| c.name.clone()).collect();
    let key = source
        .keys()
        .settle(&plan.primary_key, plan.indexes, &names)
        .ok()
        .and_then(|k| k.primary)
        .filter(|k| !k.is_empty());
    if key.is_none() {
        log::info!(
            "verify: the rows have no usable key (no primary key): compared as a multiset of row \
             hashes, so differences are counted but not named by key"
        );
    }
    let mut verdict = match &plan.target {
        Target::MySql(t) => server::compare(plan, t, &source, key.as_deref())?,
        Target::Sqlite(t) => local::compare(plan, t, Box::new(source), key.as_deref())?,
    };
    verdict.keyed = key.is_some();
    verdict.seconds = t0.elapsed().as_secs_f64();
    Ok(verdict)
}
