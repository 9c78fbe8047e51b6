//! Deciding one incremental run: the key checked against the query, the target's state
//! checked against the source (`decide`), and the source restricted to the rows past the
//! start.

use crate::error::{invalid, refused, Error};
use crate::incremental::decide::{
    decide, stall_warnings, start_questions, Decision, Facts, Refusal,
};
use crate::incremental::{key_kind, Apply, Bound, Filter, Incremental, KeyKind};
use crate::incremental::{TargetState, PLACEHOLDER};
use crate::report::{SourceUsed, Summary};
use crate::source::Source;
use crate::target::Target;
use crate::transform::keys::{Index, Keys};
use crate::transform::{SourceColumn, SqlType};

/// Checks an incremental run against the query and the target, and restricts the source
/// to the rows past the target's maximum; `Apply::Replace` when the run must be full
/// (no table yet, no rows, `--full-refresh`, or a merge target without the key).
#[allow(clippy::too_many_arguments)]
pub(super) fn prepare(
    inc: &Incremental,
    source: &mut dyn Source,
    used: SourceUsed,
    state: Option<&TargetState>,
    full_refresh: bool,
    target: &Target,
    keys: &mut Keys,
    summary: &mut Summary,
) -> Result<Apply, Error> {
    let col = key_column(inc, source.columns())?;
    let fallback = used == SourceUsed::Fallback;
    // The fallback's columns are SQLite's integers and text: the target's value tells.
    let kind = match fallback {
        true => None,
        false => Some(check_key(inc, &col, source)?),
    };
    let merge_key = match inc.merge {
        true => merge_key(keys, state, fallback, source.columns(), target)?,
        false => Vec::new(),
    };
    let facts = Facts {
        inc,
        key: &col.name,
        kind,
        fallback,
        full_refresh,
        columns: source.columns(),
        merge_key: &merge_key,
        collated_keys: target.collates_keys_itself(),
        state,
    };
    let (max, start, inclusive) = match decide(&facts) {
        Ok(Decision::Read {
            max,
            start,
            inclusive,
        }) => (max, start, inclusive),
        Ok(Decision::Full { why, warn }) => {
            let line = format!("{}: {why}: this run loads the whole table", inc.strategy());
            match warn {
                true => log::warn!("{line}"),
                false => log::info!("{line}"),
            }
            index_the_key(keys, &summary.table, &col.name);
            return Ok(Apply::Replace);
        }
        Err(Refusal::Target(why)) => {
            return Err(refused(format!("the target table {}", summary.table), why))
        }
        Err(Refusal::Setting { key, value, why }) => return Err(invalid(key, &value, why)),
    };
    let kind = kind.unwrap_or(match start {
        Bound::Int(_) => KeyKind::Int,
        Bound::Instant(_) => KeyKind::DateTime,
    });
    let filter = Filter {
        column: col.name.clone(),
        kind,
        bound: start,
        inclusive,
    };
    source.restrict(&filter);
    log_start(inc, &col.name, max, &filter, fallback);
    summary.incremental_from = Some(start.text());
    if !fallback {
        warn_of_stall(inc, &col, kind, max, source);
    }
    Ok(match inc.merge {
        true => Apply::Merge(merge_key),
        false => Apply::Append,
    })
}

/// The query's column named by `incremental_key`.
fn key_column(inc: &Incremental, columns: &[SourceColumn]) -> Result<SourceColumn, Error> {
    columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(&inc.key))
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            invalid(
                "incremental_key",
                &inc.key,
                format!("a column of the query (it returns {})", names.join(", ")),
            )
        })
}

/// The columns a merge matches rows by: the query's key, or, from the fallback (which knows
/// none), the target's own primary key. Refuses what could leave two rows for one key.
fn merge_key(
    keys: &Keys,
    state: Option<&TargetState>,
    fallback: bool,
    columns: &[SourceColumn],
    target: &Target,
) -> Result<Vec<String>, Error> {
    let fallback_key = state
        .filter(|_| fallback)
        .map(|s| s.primary_key.clone())
        .filter(|k| !k.is_empty());
    let Some(key) = keys.primary.clone().or(fallback_key) else {
        return Err(invalid(
            "primary_key",
            "",
            "the columns that identify a row: strategy = merge replaces rows by their key, and \
             the query's table has none (set [general] primary_key = column[, column])"
                .into(),
        ));
    };
    if !fallback {
        check_key_not_null(&key, columns)?;
    }
    if target.collates_keys_itself() {
        check_exact_key(&key, columns)?;
    }
    Ok(key)
}

fn log_start(inc: &Incremental, key: &str, max: Bound, filter: &Filter, fallback: bool) {
    let op = if filter.inclusive { ">=" } else { ">" };
    let start = filter.bound;
    let why = match (start != max, fallback && inc.merge) {
        (true, _) => format!(" (its largest, {max}, less incremental_lookback)"),
        // Rows below it may be older in the fallback than in the target.
        (false, true) => {
            " (the target's largest; from the fallback, without incremental_lookback)".into()
        }
        (false, false) => " (the target's largest)".into(),
    };
    log::info!(
        "{}: reading the rows with `{key}` {op} {start}{why}",
        inc.strategy()
    );
}

/// Warns when the target's largest key would keep every later run from reading new rows
/// (see `stall_warnings`); the source's answer costs one round trip, bounded.
fn warn_of_stall(
    inc: &Incremental,
    col: &SourceColumn,
    kind: KeyKind,
    max: Bound,
    source: &mut dyn Source,
) {
    let year = col.ty == SqlType::Year;
    let view = source.look_at_start(&start_questions(inc, &col.name, kind, year, max));
    for warning in stall_warnings(inc, &col.name, kind, year, max, &view) {
        log::warn!("{}: {warning}", inc.strategy());
    }
}

/// The key's kind, refusing what would lose rows: NULLs, a lookback of the other kind, an
/// `append` by dates or years (every later row of the last day or year would be skipped), a
/// query whose own LIMIT would apply before the filter.
fn check_key(inc: &Incremental, col: &SourceColumn, source: &dyn Source) -> Result<KeyKind, Error> {
    let kind = key_kind(col).map_err(|why| invalid("incremental_key", &inc.key, why))?;
    inc.lookback
        .fits(kind)
        .map_err(|why| invalid("incremental_lookback", &inc.lookback_text, why))?;
    let shared_by = match (kind, &col.ty) {
        (KeyKind::Date, _) => Some("day"),
        (_, SqlType::Year) => Some("year"),
        _ => None,
    };
    if let Some(period) = shared_by.filter(|_| !inc.merge) {
        return Err(invalid(
            "strategy",
            "append",
            format!(
                "merge for a {} key: `{}` is shared by every row of a {period}, and append reads \
                 only {period}s past the last one loaded, so rows added later to that {period} \
                 would be lost",
                col.ty, col.name
            ),
        ));
    }
    if let Some(query) = source.query_text() {
        if !query.contains(PLACEHOLDER) && crate::source::mysql::query::has_top_level_limit(query) {
            return Err(invalid(
                "query",
                "",
                format!(
                    "a filter inside the LIMIT: the query has its own LIMIT, which would apply \
                     before dbsync's filter on `{}` and hide the new rows; put the filter in the \
                     query, e.g. WHERE {} > {PLACEHOLDER}",
                    col.name, col.name
                ),
            ));
        }
    }
    Ok(kind)
}

/// A merge finds the rows to replace by equal keys, and NULL equals nothing: a row with a
/// NULL in its key would be added again on every run.
fn check_key_not_null(key: &[String], columns: &[SourceColumn]) -> Result<(), Error> {
    match columns
        .iter()
        .find(|c| c.nullable && key.iter().any(|k| k.eq_ignore_ascii_case(&c.name)))
    {
        Some(c) => Err(invalid(
            "primary_key",
            &key.join(", "),
            format!(
                "NOT NULL columns for strategy = merge: `{}` may be NULL, and a row whose key holds \
                 a NULL matches no row, so it would be added again on every run (declare it NOT \
                 NULL, or COALESCE it in the query)",
                c.name
            ),
        )),
        None => Ok(()),
    }
}

/// A merge into SQLite finds the rows to replace by exact comparison: a text key that the
/// source compares by a case- or accent-insensitive collation could leave two rows. (One
/// that only ignores trailing spaces, PAD SPACE, is declared COLLATE RTRIM in SQLite.)
fn check_exact_key(key: &[String], columns: &[SourceColumn]) -> Result<(), Error> {
    for name in key {
        let Some(c) = columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)) else {
            continue;
        };
        let text = matches!(c.ty, SqlType::Text { .. } | SqlType::Enum | SqlType::Set);
        let exact = c
            .collation
            .as_ref()
            .is_some_and(|k| k.name.ends_with("_bin") || k.charset == "binary");
        if text && !exact {
            let by = c
                .collation
                .as_ref()
                .map_or("an unknown collation".to_string(), |k| k.name.clone());
            return Err(invalid(
                "strategy",
                "merge",
                format!(
                    "replace, or a key compared exactly: the key column `{}` is compared by {by} \
                     at the source, where 'abc' and 'ABC' may be the same row, but exactly in SQLite, \
                     so a merge could keep both (an integer key, or a _bin collation, merges safely)",
                    c.name
                ),
            ));
        }
    }
    Ok(())
}

/// A full load of an incremental table indexes the key, so the next run's maximum is cheap.
fn index_the_key(keys: &mut Keys, table: &str, key: &str) {
    let first = |cols: &[String]| cols.first().is_some_and(|c| c.eq_ignore_ascii_case(key));
    let covered = keys.primary.as_deref().is_some_and(first)
        || keys.indexes.iter().any(|i| {
            i.columns
                .first()
                .is_some_and(|(c, _)| c.eq_ignore_ascii_case(key))
        });
    if !covered {
        keys.indexes.push(Index {
            name: crate::incremental::key_index_name(table, key),
            unique: false,
            columns: vec![(key.to_string(), None)],
        });
    }
}
