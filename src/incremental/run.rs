//! Deciding one incremental run: the key checked against the query, the target's state
//! checked against the source, and the source restricted to the rows past the start.

use super::{key_kind, same_columns, Apply, Bound, Filter, Incremental, KeyKind};
use super::{TargetState, PLACEHOLDER};
use crate::plan::Target;
use crate::report::{SourceUsed, Summary};
use crate::sink::SinkError;
use crate::source::Source;
use crate::transform::keys::{Index, Keys};
use crate::transform::{SourceColumn, SqlType};
use crate::{invalid, sink_error, Error};

/// Checks an incremental run against the query and the target, and restricts the source
/// to the rows past the target's maximum; `Apply::Replace` when the run must be full
/// (no table yet, no rows, `--full-refresh`, or a merge target without the key).
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare(
    inc: &Incremental,
    source: &mut dyn Source,
    used: SourceUsed,
    state: Option<&TargetState>,
    full_refresh: bool,
    target: &Target,
    keys: &mut Keys,
    summary: &mut Summary,
) -> Result<Apply, Error> {
    let strategy = inc.strategy();
    let names: Vec<String> = source.columns().iter().map(|c| c.name.clone()).collect();
    let Some(col) = source
        .columns()
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(&inc.key))
        .cloned()
    else {
        return Err(invalid(
            "incremental_key",
            &inc.key,
            format!("a column of the query (it returns {})", names.join(", ")),
        ));
    };
    let fallback = used == SourceUsed::Fallback;
    // The fallback's columns are SQLite's integers and text: the target's value tells.
    let kind = match fallback {
        true => None,
        false => Some(check_key(inc, &col, source)?),
    };
    let fallback_key = state
        .filter(|_| fallback)
        .map(|s| s.primary_key.clone())
        .filter(|k| !k.is_empty());
    let merge_key = keys.primary.clone().or(fallback_key);
    if inc.merge {
        let Some(key) = &merge_key else {
            return Err(invalid(
                "primary_key",
                "",
                "the columns that identify a row: strategy = merge replaces rows by their key, and \
                 the query's table has none (set [general] primary_key = column[, column])"
                    .into(),
            ));
        };
        if !fallback {
            check_key_not_null(key, source.columns())?;
        }
        if matches!(target, Target::Sqlite(_)) {
            check_exact_key(key, source.columns())?;
        }
    }
    let full = |why: &str, keys: &mut Keys| {
        log::info!("{strategy}: {why}: this run loads the whole table");
        index_the_key(keys, &summary.table, &col.name);
        Ok(Apply::Replace)
    };
    let refused = |why: String| {
        sink_error(SinkError::Refused {
            target: format!("the target table {}", summary.table),
            why,
        })
    };
    // The fallback's rows are older than what the target got from the primary: they may add
    // to it, never replace it.
    let holds_rows = state.is_some_and(|s| s.has_rows);
    if fallback && full_refresh && holds_rows {
        return Err(refused(
            "--full-refresh reloads it from the primary source, which is unreachable, and the \
             fallback's rows may be older than those it holds: it is kept as it is; run again \
             with --full-refresh once the primary is back (without it, a fallback run adds only \
             the fallback's rows past the target's largest key)"
                .into(),
        ));
    }
    if full_refresh {
        return full("--full-refresh", keys);
    }
    let Some(state) = state else {
        return full("the target table does not exist yet", keys);
    };
    if !same_columns(&state.columns, &names) {
        return Err(refused(format!(
            "its columns ({}) are not the query's ({}), so rows cannot be added to it: run once \
             with --full-refresh to replace it",
            state.columns.join(", "),
            names.join(", ")
        )));
    }
    let Some(max) = &state.max else {
        if !state.has_rows {
            return full("the target table has no rows", keys);
        }
        if fallback {
            return Err(refused(format!(
                "its rows all have a NULL `{}`, so nothing tells which of the fallback's rows \
                 are newer, and a full replace from the fallback's rows, which may be older \
                 than those it holds, could move it backwards: it is kept as it is; the next \
                 run that reaches the primary source replaces it",
                col.name
            )));
        }
        return full(
            &format!("the target's rows all have a NULL `{}`", col.name),
            keys,
        );
    };
    let merge_key = merge_key.unwrap_or_default();
    if inc.merge && !same_columns(&state.primary_key, &merge_key) {
        if fallback {
            return Err(refused(format!(
                "it has no primary key on ({}), which a merge needs, and the full replace that \
                 would create it is not made from the fallback's rows, which may be older than \
                 those it holds: it is kept as it is; the next run that reaches the primary \
                 source replaces it",
                merge_key.join(", ")
            )));
        }
        log::warn!(
            "merge: the target table has no primary key on ({}), which a merge needs",
            merge_key.join(", ")
        );
        return full("a full replace creates it", keys);
    }
    let bound = match kind {
        Some(k) => Bound::from_target(max, k),
        None => Bound::guess(max),
    }
    .map_err(|why| refused(format!("{why}: run once with --full-refresh")))?;
    // Fallback rows are older than the primary's: only those past everything the target
    // holds may go in, or the target would move backwards.
    let (start, inclusive) = match (inc.merge, fallback) {
        (true, false) => (
            bound
                .back(inc.lookback)
                .map_err(|why| invalid("incremental_lookback", "", why))?,
            true,
        ),
        _ => (bound, false),
    };
    let kind = kind.unwrap_or(match start {
        Bound::Int(_) => KeyKind::Int,
        Bound::Instant(_) => KeyKind::DateTime,
    });
    source.restrict(&Filter {
        column: col.name.clone(),
        kind,
        bound: start,
        inclusive,
    });
    let op = if inclusive { ">=" } else { ">" };
    let less = match (inclusive, start != bound) {
        (true, true) => format!(" (its largest, {bound}, less incremental_lookback)"),
        _ => " (the target's largest)".to_string(),
    };
    log::info!(
        "{strategy}: reading the rows with `{}` {op} {start}{less}",
        col.name
    );
    summary.incremental_from = Some(start.text());
    Ok(match inc.merge {
        true => Apply::Merge(merge_key),
        false => Apply::Append,
    })
}

/// The key's kind, refusing what would lose rows: NULLs, a lookback of the other kind, an
/// `append` by dates (every later row of the last day would be skipped), a query whose own
/// LIMIT would apply before the filter.
fn check_key(inc: &Incremental, col: &SourceColumn, source: &dyn Source) -> Result<KeyKind, Error> {
    let kind = key_kind(col).map_err(|why| invalid("incremental_key", &inc.key, why))?;
    inc.lookback
        .fits(kind)
        .map_err(|why| invalid("incremental_lookback", "", why))?;
    if !inc.merge && kind == KeyKind::Date {
        return Err(invalid(
            "strategy",
            "append",
            format!(
                "merge for a DATE key: `{}` is shared by every row of a day, and append reads \
                 only days past the last one loaded, so rows added later to that day would be lost",
                col.name
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
/// source compares by a case- or accent-insensitive collation could leave two rows.
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
            name: super::key_index_name(table, key),
            unique: false,
            columns: vec![(key.to_string(), None)],
        });
    }
}
