//! `consistency = snapshot`: every table read in one snapshot of the source, each staged,
//! then all swapped in at once; a failure anywhere changes none of them. Retried as a
//! whole, with a new snapshot. The snapshot's connection reads the next table while the
//! previous one is written.

use super::{in_table, Chosen};
use crate::error::{chain, Error};
use crate::incremental::Apply;
use crate::interrupt;
use crate::logfile;
use crate::pipeline::{CopyOptions, CopyStats, Reading};
use crate::plan::job::JobPlan;
use crate::report::{JobSummary, Summary};
use crate::run::attempt::{self, Prepared, Ready};
use crate::run::How;
use crate::source::mysql::Snapshot;
use crate::target::{Load, LockError, Sink, Target, TargetLock};
use std::sync::Mutex;
use std::time::Instant;

pub(super) fn run(
    job: &JobPlan,
    chosen: &Chosen,
    how: How,
    summary: &mut JobSummary,
) -> Result<(), Error> {
    if !chosen.outside.is_empty() && !chosen.fallback {
        log::warn!(
            "a snapshot covers InnoDB tables only; these are read at their own moment: {}",
            chosen.outside.join(", ")
        );
    }
    let template = &job.template;
    let mut locks: Vec<TargetLock> = Vec::new();
    let mut attempt = 1;
    loop {
        summary.attempts = attempt;
        let err = match one_attempt(chosen, how, summary, &mut locks) {
            Ok(()) => return Ok(()),
            Err(e) => e.past_run_timeout(),
        };
        if attempt > template.retries || !err.is_transient() {
            return Err(not_loaded(summary, err));
        }
        let text = chain(&err);
        let wait = crate::retry::backoff(attempt + 1);
        if interrupt::left().is_some_and(|left| wait >= left) {
            return Err(not_loaded(summary, err));
        }
        log::warn!(
            "attempt {attempt} failed ({text}); the whole job again, with a new snapshot, in {} s",
            wait.as_secs()
        );
        if let Err(e) = crate::run::pause(wait) {
            return Err(not_loaded(summary, e));
        }
        summary.retried.push(text);
        for t in &mut summary.tables {
            *t = Summary::new(&t.target, &t.table);
        }
        attempt += 1;
    }
}

/// The job failed: every table without a failure of its own says it was not loaded, with
/// the job's exit code (a snapshot job changes all its tables or none).
fn not_loaded(summary: &mut JobSummary, err: Error) -> Error {
    let why = match &err {
        Error::InTable { table, .. } => format!("table `{table}` failed"),
        _ => "the job failed".to_string(),
    };
    for t in summary.tables.iter_mut().filter(|t| t.error.is_none()) {
        t.exit = err.exit();
        t.error = Some(format!(
            "not loaded: {why}, and a snapshot job changes all its tables or none"
        ));
    }
    err
}

/// A table opened in the snapshot: its sink, its rows being read, and how they go in.
struct Opened {
    index: usize,
    sink: Box<dyn Sink>,
    reading: Reading,
    opts: CopyOptions,
    load: Load,
}

/// A table staged for the swap: where it is in the job, what was read, how it goes in.
struct Staged {
    index: usize,
    /// How long its copy took (the swap comes on top).
    secs: f64,
    stats: CopyStats,
    apply: Apply,
}

/// A table's failure, for the job's summary.
type Failed = (usize, Error);

/// One attempt: every lock, the snapshot, each table staged, one swap.
fn one_attempt(
    chosen: &Chosen,
    how: How,
    summary: &mut JobSummary,
    locks: &mut Vec<TargetLock>,
) -> Result<(), Error> {
    hold_locks(chosen, summary, locks)?;
    let snapshot = match chosen.fallback {
        true => None,
        false => Some(Snapshot::start(&chosen.plans[0].source)?),
    };
    let t0 = Instant::now();
    let mut sinks = Vec::new();
    let shared_locks = Mutex::new(std::mem::take(locks));
    let staged = stage_all(
        chosen,
        how,
        summary,
        snapshot.as_ref(),
        &mut sinks,
        &shared_locks,
    );
    *locks = shared_locks.into_inner().unwrap_or_else(|p| p.into_inner());
    match staged {
        Ok(staged) => {
            drop(snapshot);
            // Right before the swap: the job still holds every table's lock.
            let held = locks.iter_mut().try_for_each(|l| l.still_held(false));
            if let Err(e) = interrupt::check()
                .map_err(Error::from)
                .and(held.map_err(Error::from))
            {
                abort_all(&mut sinks);
                return Err(e);
            }
            swap_all(chosen, summary, &mut sinks, staged, t0)
        }
        Err((i, e)) => {
            summary.tables[i].error = Some(chain(&e));
            summary.tables[i].exit = e.exit();
            abort_all(&mut sinks);
            Err(in_table(&chosen.plans[i], e))
        }
    }
}

/// The job's locks held: all taken at the first attempt (MySQL: on one connection);
/// checked at a retry's start, and all taken again if one was lost. A lock another run
/// holds fails its table.
fn hold_locks(
    chosen: &Chosen,
    summary: &mut JobSummary,
    locks: &mut Vec<TargetLock>,
) -> Result<(), Error> {
    if !locks.is_empty() {
        match locks.iter_mut().try_for_each(|l| l.still_held(true)) {
            Ok(()) => return Ok(()),
            Err(e) => log::info!("taking the job's locks again: {e}"),
        }
        locks.clear();
    }
    let targets: Vec<&Target> = chosen.plans.iter().map(|p| &p.target).collect();
    match Target::lock_all(&targets, chosen.plans[0].lock_wait) {
        Ok(all) => {
            *locks = all;
            Ok(())
        }
        // A wait a signal cut short is the signal's.
        Err((i, e)) => match interrupt::check() {
            Err(stop) => Err(stop.into()),
            Ok(()) if matches!(e, LockError::Held { .. }) => {
                let e = Error::from(e);
                summary.tables[i].error = Some(chain(&e));
                summary.tables[i].exit = e.exit();
                Err(in_table(&chosen.plans[i], e))
            }
            Ok(()) => Err(e.into()),
        },
    }
}

/// Every table read and staged (nothing visible yet). The snapshot's connection reads them
/// in turn; `lanes` tables are written at once, and the table after them is opened ahead,
/// its reader waiting for the connection.
fn stage_all(
    chosen: &Chosen,
    how: How,
    summary: &mut JobSummary,
    snapshot: Option<&Snapshot>,
    sinks: &mut Vec<Box<dyn Sink>>,
    locks: &Mutex<Vec<TargetLock>>,
) -> Result<Vec<Staged>, Failed> {
    let lanes = lanes(chosen);
    let shared = Mutex::new(Lanes {
        summary,
        ahead: None,
        next: 0,
        failed: None,
        staged: Vec::new(),
    });
    std::thread::scope(|scope| {
        for _ in 0..lanes {
            scope.spawn(|| lane(chosen, how, snapshot, &shared, locks));
        }
    });
    let lanes = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut staged = lanes.staged;
    staged.sort_by_key(|(s, _)| s.index);
    let (staged, staged_sinks): (Vec<Staged>, Vec<Box<dyn Sink>>) = staged.into_iter().unzip();
    sinks.extend(staged_sinks);
    match lanes.failed {
        Some(failed) => Err(failed),
        None => Ok(staged),
    }
}

/// Tables written at once: a SQLite file has one writer; on MySQL, `parallel_tables`
/// (each on its connections), so that a remote link's round trips overlap.
fn lanes(chosen: &Chosen) -> usize {
    match chosen.plans[0].target.endpoint() {
        None => 1,
        Some(_) => chosen.parallel_tables.max(1),
    }
}

/// What the lanes share: the job's summary, the table opened ahead, the next table to
/// open, the first failure and what was staged.
struct Lanes<'a> {
    summary: &'a mut JobSummary,
    ahead: Option<Opened>,
    next: usize,
    failed: Option<Failed>,
    staged: Vec<(Staged, Box<dyn Sink>)>,
}

/// One lane: takes the table opened ahead (opening the one after it), writes it, and
/// again, until every table is taken or one failed.
fn lane(
    chosen: &Chosen,
    how: How,
    snapshot: Option<&Snapshot>,
    shared: &Mutex<Lanes<'_>>,
    locks: &Mutex<Vec<TargetLock>>,
) {
    loop {
        let mut current = {
            let mut l = shared.lock().unwrap_or_else(|p| p.into_inner());
            if l.failed.is_some() {
                return;
            }
            match take_and_open_ahead(chosen, how, snapshot, &mut l) {
                Some(current) => current,
                None => return,
            }
        };
        let i = current.index;
        let t0 = Instant::now();
        // A replaced table's locks are checked once, right before the swap; an incremental
        // table's apply commits on its own on MySQL, so its locks are checked before it.
        let replace = current.load.apply == Apply::Replace;
        let mut check = || match replace {
            true => Ok(()),
            false => locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter_mut()
                .try_for_each(|l| l.still_held(false))
                .map_err(Error::from),
        };
        let done = logfile::for_table(chosen.plans[i].target.table(), || {
            crate::pipeline::copy_read(
                current.reading,
                current.sink.as_mut(),
                current.opts,
                &current.load,
                &mut check,
            )
        });
        let mut l = shared.lock().unwrap_or_else(|p| p.into_inner());
        match done {
            Ok(stats) => {
                let staged = Staged {
                    index: i,
                    secs: t0.elapsed().as_secs_f64(),
                    stats,
                    apply: current.load.apply,
                };
                l.staged.push((staged, current.sink));
            }
            Err(e) => {
                l.summary.tables[i].rows = e.rows;
                first_failure(&mut l.failed, (i, e.error));
                // The table opened ahead is not read: its reader lets go of its turn.
                l.ahead = None;
                return;
            }
        }
    }
}

/// Keeps the failure of the earliest table: a later table's failure may only follow from
/// it (its read cut when the earlier one's reading was dropped), never the reverse.
fn first_failure(kept: &mut Option<Failed>, failed: Failed) {
    if kept.as_ref().is_none_or(|(i, _)| failed.0 < *i) {
        *kept = Some(failed);
    }
}

/// The table opened ahead (or the first one), and the one after it opened ahead in turn.
fn take_and_open_ahead(
    chosen: &Chosen,
    how: How,
    snapshot: Option<&Snapshot>,
    l: &mut Lanes<'_>,
) -> Option<Opened> {
    let open = |l: &mut Lanes<'_>| match open_from(chosen, l.next, how, l.summary, snapshot) {
        Ok(opened) => {
            l.next = opened.as_ref().map_or(chosen.plans.len(), |o| o.index + 1);
            opened
        }
        Err(failed) => {
            first_failure(&mut l.failed, failed);
            l.next = chosen.plans.len();
            None
        }
    };
    let current = match l.ahead.take() {
        Some(opened) => opened,
        None => open(l)?,
    };
    l.ahead = open(l);
    if l.failed.is_some() {
        return None;
    }
    Some(current)
}

/// The first table from `start` on that has rows to load, opened, its reading started;
/// tables with nothing to load (a fallback table kept as it is) are passed.
fn open_from(
    chosen: &Chosen,
    start: usize,
    how: How,
    summary: &mut JobSummary,
    snapshot: Option<&Snapshot>,
) -> Result<Option<Opened>, Failed> {
    for (i, plan) in chosen.plans.iter().enumerate().skip(start) {
        let table = &mut summary.tables[i];
        let opened = logfile::for_table(plan.target.table(), || {
            match attempt::prepare(plan, how, table, true) {
                Ok(Prepared::Load(ready)) => {
                    Ok(Some(start_reading(plan, how, ready, snapshot, table)))
                }
                Ok(Prepared::Done(exit)) => {
                    table.exit = exit;
                    Ok(None)
                }
                Err(e) => Err((i, e)),
            }
        })?;
        if let Some((sink, reading, opts, load)) = opened {
            return Ok(Some(Opened {
                index: i,
                sink,
                reading,
                opts,
                load,
            }));
        }
    }
    Ok(None)
}

/// A prepared table's reader started, in the snapshot.
fn start_reading(
    plan: &crate::plan::Plan,
    how: How,
    ready: Ready,
    snapshot: Option<&Snapshot>,
    table: &mut Summary,
) -> (Box<dyn Sink>, Reading, CopyOptions, Load) {
    let Ready {
        sink,
        mut source,
        used,
        load,
    } = ready;
    if let Some(snapshot) = snapshot {
        source.read_in(snapshot);
    }
    table.exit = attempt::exit_of(used);
    let opts = attempt::options(plan, how, source.as_ref(), &load);
    (sink, Reading::start(source, plan.zero_dates), opts, load)
}

/// Every staged table put in place at once, then each table's outcome reported.
fn swap_all(
    chosen: &Chosen,
    summary: &mut JobSummary,
    sinks: &mut [Box<dyn Sink>],
    staged: Vec<Staged>,
    t0: Instant,
) -> Result<(), Error> {
    let first = &chosen.plans[0];
    let t1 = Instant::now();
    let applied = match first.target.swap_all(sinks, first.lock_wait) {
        Ok(applied) => applied,
        Err(e) => {
            abort_all(sinks);
            return Err(e.into());
        }
    };
    log::info!(
        "{} tables staged in {:.2} s and swapped in at once in {:.2} s",
        staged.len(),
        (t1 - t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );
    for (mut s, applied) in staged.into_iter().zip(applied) {
        s.stats.applied = applied;
        let plan = &chosen.plans[s.index];
        let table = &mut summary.tables[s.index];
        let target = plan.target.describe();
        logfile::for_table(plan.target.table(), || {
            attempt::report(
                plan,
                &s.apply,
                &s.stats,
                &target,
                s.secs,
                table.source,
                table,
            )
        });
    }
    Ok(())
}

/// Drops every staged table: the job changes nothing.
fn abort_all(sinks: &mut [Box<dyn Sink>]) {
    for sink in sinks {
        sink.abort();
    }
}
