//! One attempt at the copy, as its steps: lock the target, inspect it, open the source,
//! decide what to read and how to apply it, copy, report.

use super::fallback::{open_source, Opened};
use super::{dry_run, incremental, How};
use crate::error::{invalid, Error};
use crate::incremental::{Apply, TargetState};
use crate::interrupt;
use crate::pipeline::{self, CopyOptions, CopyStats, ProgressMode};
use crate::plan::{Guards, Plan};
use crate::report::{Exit, SourceUsed, Summary};
use crate::source::Source;
use crate::target::TargetLock;
use crate::target::{Load, Sink};
use crate::transform::keys::Keys;
use crate::transform::ZeroDates;
use std::time::{Instant, SystemTime};

pub(super) fn execute(
    plan: &Plan,
    how: How,
    summary: &mut Summary,
    lock: &mut Option<TargetLock>,
) -> Result<Exit, Error> {
    if !how.dry_run {
        hold_lock(plan, lock)?;
    }
    let Ready {
        mut sink,
        source,
        used,
        load,
    } = match prepare(plan, how, summary, false)? {
        Prepared::Load(ready) => ready,
        Prepared::Done(exit) => return Ok(exit),
    };
    let t1 = Instant::now();
    let stats = copy(plan, how, source, sink.as_mut(), &load, lock).map_err(|stopped| {
        // How far a failed or interrupted copy got.
        summary.rows = stopped.rows;
        if stopped.rows > 0 {
            log::info!("{} rows were read before the copy stopped", stopped.rows);
        }
        stopped.error
    })?;
    let secs = t1.elapsed().as_secs_f64();
    report(
        plan,
        &load.apply,
        &stats,
        &sink.describe(),
        secs,
        used,
        summary,
    );
    Ok(exit_of(used))
}

/// A table ready to be copied: its sink, its source, and how the load goes.
pub(super) struct Ready {
    pub sink: Box<dyn Sink>,
    pub source: Box<dyn Source>,
    pub used: SourceUsed,
    pub load: Load,
}

/// What preparing a table found: a load to do, or nothing (a dry run, a fallback table
/// kept as it is).
pub(super) enum Prepared {
    Load(Ready),
    Done(Exit),
}

/// The exit code of a table copied from `used`.
pub(super) fn exit_of(used: SourceUsed) -> Exit {
    match used {
        SourceUsed::Fallback => Exit::Fallback,
        _ => Exit::Ok,
    }
}

/// Everything between the lock and the copy: the target inspected, the source opened and
/// described, the load decided; a dry run prints its plan here. `staged_apart`: the table
/// swaps later, with a job's others.
pub(super) fn prepare(
    plan: &Plan,
    how: How,
    summary: &mut Summary,
    staged_apart: bool,
) -> Result<Prepared, Error> {
    let t0 = Instant::now();
    let read_at = SystemTime::now();
    interrupt::check()?;
    let mut sink = plan.target.open_sink();
    let state = inspect(plan, how, sink.as_mut(), summary)?;
    let incremental_read = !how.full_refresh && state.as_ref().is_some_and(|s| s.max.is_some());
    let (mut source, used) = match open_source(plan, how.dry_run, incremental_read, summary)? {
        Opened::Source(s, used) => (s, used),
        Opened::Kept(exit) => return Ok(Prepared::Done(exit)),
    };
    interrupt::check()?;
    summary.source = used;
    log::info!(
        "source: {} ({} columns, described in {:.2} s)",
        source.describe(),
        source.columns().len(),
        t0.elapsed().as_secs_f64()
    );
    let (keys, apply) = decide(plan, how, source.as_mut(), used, state.as_ref(), summary)?;
    if how.dry_run {
        dry_run::print(plan, source.as_ref(), &keys, &apply, summary)?;
        dry_run::check_target(plan, &apply)?;
        summary.action = "planned";
        return Ok(Prepared::Done(exit_of(used)));
    }
    let expected_rows = match apply {
        Apply::Replace if plan.target.wants_row_estimate(&keys) => source.estimate(),
        _ => None,
    };
    let load = Load {
        keys,
        from_fallback: used == SourceUsed::Fallback,
        origin: Some((source.describe(), read_at)),
        staged_apart,
        expected_rows,
        on_schema_change: plan.on_schema_change,
        deletes: super::verify::deletes_of(plan, &apply, used, source.restriction()),
        apply,
    };
    Ok(Prepared::Load(Ready {
        sink,
        source,
        used,
        load,
    }))
}

/// Before anything is read: a second run stops here, touching nothing. Held across
/// retries; taken again only if it was lost.
pub(super) fn hold_lock(plan: &Plan, lock: &mut Option<TargetLock>) -> Result<(), Error> {
    let lost = |l: &mut TargetLock| match l.still_held(true) {
        Ok(()) => false,
        Err(e) => {
            log::info!("taking the run's lock again: {e}");
            true
        }
    };
    if lock.as_mut().is_none_or(lost) {
        *lock = None;
        *lock = Some(
            plan.target
                .lock(plan.lock_wait)
                .map_err(|e| interrupt::check().map_or_else(Error::from, |()| Error::from(e)))?,
        );
    }
    Ok(())
}

/// What the target holds, for an incremental run, which starts from there: read before
/// the source (under --full-refresh too, all but the maximum: a fallback run must know
/// whether it holds rows).
fn inspect(
    plan: &Plan,
    how: How,
    sink: &mut dyn Sink,
    summary: &mut Summary,
) -> Result<Option<TargetState>, Error> {
    let Some(i) = &plan.incremental else {
        return Ok(None);
    };
    summary.strategy = i.strategy();
    Ok(sink.inspect(&i.key, !how.full_refresh)?)
}

/// The target's keys, and how the rows go in: a replace, or what the incremental decision
/// says (which may restrict the source to the rows past the target's largest key).
fn decide(
    plan: &Plan,
    how: How,
    source: &mut dyn Source,
    used: SourceUsed,
    state: Option<&TargetState>,
    summary: &mut Summary,
) -> Result<(Keys, Apply), Error> {
    let names: Vec<String> = source.columns().iter().map(|c| c.name.clone()).collect();
    let mut keys = source
        .keys()
        .settle(&plan.primary_key, plan.indexes, &names)
        .map_err(|why| {
            invalid(
                "primary_key",
                &format!("{:?}", plan.primary_key),
                format!("columns of the query: {why}"),
            )
        })?;
    let apply = match &plan.incremental {
        Some(i) => incremental::prepare(
            i,
            source,
            used,
            state,
            how.full_refresh,
            &plan.target,
            &mut keys,
            summary,
        )?,
        None => Apply::Replace,
    };
    for line in keys.lines() {
        log::info!("{line}");
    }
    Ok((keys, apply))
}

pub(super) fn copy(
    plan: &Plan,
    how: How,
    source: Box<dyn Source>,
    sink: &mut dyn Sink,
    load: &Load,
    lock: &mut Option<TargetLock>,
) -> Result<CopyStats, pipeline::Stopped> {
    let opts = options(plan, how, source.as_ref(), load);
    let mut check_lock = || match lock.as_mut() {
        Some(l) => l.still_held(false).map_err(Error::from),
        None => Ok(()),
    };
    pipeline::copy(source, sink, opts, load, &mut check_lock)
}

/// How the copy of `source` goes: its progress, zero dates and guards.
pub(super) fn options(plan: &Plan, how: How, source: &dyn Source, load: &Load) -> CopyOptions {
    let opts = CopyOptions {
        progress: how.progress,
        zero_dates: plan.zero_dates,
        // Nothing new is a quiet night, and an incremental run removes nothing.
        guards: match load.apply {
            Apply::Replace => plan.guards,
            _ => Guards {
                allow_empty: true,
                max_shrink_percent: None,
            },
        },
        expected_rows: match how.progress {
            ProgressMode::Off => None,
            _ => source.estimate(),
        },
    };
    match opts.expected_rows {
        Some(n) => log::debug!("the server estimates {n} rows"),
        None if how.progress != ProgressMode::Off => {
            log::debug!("no row estimate: progress shows rows and rows/s")
        }
        None => {}
    }
    opts
}

/// The run's outcome in the log and the summary.
pub(super) fn report(
    plan: &Plan,
    apply: &Apply,
    stats: &CopyStats,
    target: &str,
    secs: f64,
    used: SourceUsed,
    summary: &mut Summary,
) {
    if matches!(apply, Apply::Merge(_)) && stats.rows == 0 && used == SourceUsed::Primary {
        // A merge reads the rows at the target's largest key again: none means they were
        // deleted at the source, or the source went back (emptied, or restored from an
        // older backup). Nothing was changed; a person should know.
        log::warn!(
            "merge: the source has no row with `{}` >= {}, which the target holds: rows at the \
             top were deleted at the source, or it lost rows (emptied? restored from an older \
             backup?); the target is unchanged (run with --full-refresh to make it the source's)",
            plan.incremental.as_ref().map_or("", |i| i.key.as_str()),
            summary.incremental_from.as_deref().unwrap_or("?")
        );
    }
    if stats.zero_dates > 0 {
        let what = match plan.zero_dates {
            ZeroDates::Keep => "copied as they are",
            ZeroDates::Null => "written as NULL",
            ZeroDates::Error => "refused",
        };
        log::warn!(
            "{} zero or partial dates in the source ({what}; [external_db] zero_dates)",
            stats.zero_dates
        );
    }
    // A job's table: its own copy's time (a one-table run's is the run's, set at its end).
    summary.seconds = secs;
    let action = match apply {
        Apply::Replace => "replaced",
        Apply::Append => "appended",
        Apply::Merge(_) => "merged",
    };
    if *apply == Apply::Replace {
        log::info!(
            "target: {target} replaced with {} rows in {secs:.2} s ({:.0} rows/s)",
            stats.rows,
            stats.rows as f64 / secs.max(1e-9)
        );
    } else {
        log::info!(
            "target: {target} {action}: {} rows read, {} inserted, {} updated, in {secs:.2} s",
            stats.rows,
            stats.applied.inserted,
            stats.applied.updated,
        );
        summary.inserted = Some(stats.applied.inserted);
        summary.updated = Some(stats.applied.updated);
        if plan.deletes_apply && matches!(apply, Apply::Merge(_)) {
            log::info!(
                "target: {} rows the source no longer has deleted",
                stats.applied.deleted
            );
            summary.deleted = Some(stats.applied.deleted);
        }
    }
    summary.rows = stats.rows;
    if *apply == Apply::Replace {
        (summary.source_rows, summary.target_rows) = (Some(stats.rows), Some(stats.rows));
    }
    summary.zero_dates = stats.zero_dates;
    summary.action = action;
}
