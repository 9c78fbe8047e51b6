//! Where the rows come from: the primary source, or the `[local_db]` table when the primary
//! cannot be reached (its age told, and refused past `fallback_max_age`).

use crate::error::Error;
use crate::freshness;
use crate::plan::Plan;
use crate::report::{Exit, SourceUsed, Summary};
use crate::source::{self, Source, SourceError};
use crate::target::SqliteTable;

/// Where the rows come from, or why nothing needs copying.
pub(super) enum Opened {
    Source(Box<dyn Source>, SourceUsed),
    /// The target is the fallback table itself and was kept.
    Kept(Exit),
}

/// The primary source, or the fallback when the primary cannot be reached. An
/// incremental read is small: it is not split into partitions.
pub(super) fn open_source(
    plan: &Plan,
    dry_run: bool,
    incremental_read: bool,
    summary: &mut Summary,
) -> Result<Opened, Error> {
    if let (true, Some(fallback)) = (plan.primary_down, plan.fallback.as_ref()) {
        // A job found the primary unreachable: every table comes from the fallback file,
        // none from a primary that may be back by now (that would mix two moments).
        return open_fallback(plan, fallback, dry_run, summary);
    }
    let partitioning = plan.partitioning.as_ref().filter(|_| !incremental_read);
    let primary = source::mysql::MySqlSource::open(
        &plan.source,
        &plan.query,
        plan.batch_rows,
        partitioning,
        plan.statement_timeout,
        plan.incremental.as_ref().map(|i| i.key.as_str()),
    );
    match (primary, &plan.fallback) {
        (Ok(s), _) => {
            if plan.target.keeps_source_definitions() {
                s.warn_lost_definitions();
            }
            Ok(Opened::Source(Box::new(s), SourceUsed::Primary))
        }
        (Err(SourceError::Connect(e)), Some(fallback)) if e.is_unreachable() => {
            log::warn!("primary source unreachable, using the fallback {fallback}: {e}");
            open_fallback(plan, fallback, dry_run, summary)
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// The fallback table, its age checked; or, when the target is that table, kept.
fn open_fallback(
    plan: &Plan,
    fallback: &SqliteTable,
    dry_run: bool,
    summary: &mut Summary,
) -> Result<Opened, Error> {
    summary.source = SourceUsed::Fallback;
    let kept = plan.target.is_table(fallback);
    let max_age = if kept { None } else { plan.fallback_max_age };
    check_fallback_age(fallback, max_age, summary)?;
    if kept {
        return keep_fallback_table(fallback, dry_run, summary).map(Opened::Kept);
    }
    let s = source::sqlite::SqliteSource::open(fallback, plan.batch_rows)?;
    Ok(Opened::Source(Box::new(s), SourceUsed::Fallback))
}

/// Tells the age of the fallback's rows (log and summary) and refuses rows older than
/// `max_age`, or of unknown age when a maximum is set.
fn check_fallback_age(
    fallback: &SqliteTable,
    max_age: Option<std::time::Duration>,
    summary: &mut Summary,
) -> Result<(), Error> {
    let refused = |message: String| {
        Error::Source(SourceError::Fallback {
            path: fallback.path.display().to_string(),
            table: fallback.table.clone(),
            message,
        })
    };
    let limit = |max: std::time::Duration| {
        format!(
            "[general] fallback_max_age = {}",
            freshness::human(max).replace(' ', "")
        )
    };
    let Some(record) = source::sqlite::load_record(fallback)? else {
        log::warn!("the fallback's rows are of unknown age: {fallback} has no load record");
        return match max_age {
            None => Ok(()),
            Some(max) => Err(refused(format!(
                "the age of its rows is unknown (no load record in the file), and {} is set: \
                 the target is kept; refresh the file with a run into local_sqlite while the \
                 primary is reachable (it then records each load), or unset fallback_max_age",
                limit(max)
            ))),
        };
    };
    let age = record.age(std::time::SystemTime::now());
    summary.fallback_loaded_at = Some(record.loaded_at_text());
    summary.fallback_age_seconds = Some(age.as_secs());
    log::warn!(
        "the fallback's rows are {} old: {} rows loaded at {} from {}",
        freshness::human(age),
        record.rows,
        record.loaded_at_text(),
        record.source
    );
    match max_age {
        Some(max) if age > max => Err(refused(format!(
            "its rows were loaded {} ago ({}), longer ago than {}: the target is kept; \
             refresh the file with a run into local_sqlite while the primary is reachable, \
             or raise fallback_max_age",
            freshness::human(age),
            record.loaded_at_text(),
            limit(max)
        ))),
        _ => Ok(()),
    }
}

/// The target is the fallback table itself: there is nothing newer to copy into it.
fn keep_fallback_table(
    t: &SqliteTable,
    dry_run: bool,
    summary: &mut Summary,
) -> Result<Exit, Error> {
    let rows = source::sqlite::count_rows(t)?;
    summary.rows = rows;
    summary.action = if dry_run { "planned" } else { "kept" };
    if dry_run {
        plan_line!("source:   fallback {t} (the primary is unreachable)");
        plan_line!("target:   the same table: kept as it is ({rows} rows)");
    }
    log::warn!(
        "the target is the fallback table itself: kept as it is ({rows} rows), nothing copied"
    );
    Ok(Exit::Fallback)
}
