//! A job of many tables (`[general] tables`): the tables chosen among the source's, then
//! read in one consistent snapshot and swapped in at once (`consistency = snapshot`), or
//! each copied on its own (`per_table`). One summary; the worst table decides the exit.

use super::attempt::{self, Prepared, Ready};
use super::How;
use crate::error::{chain, Error};
use crate::incremental::Apply;
use crate::interrupt;
use crate::logfile;
use crate::pipeline::CopyStats;
use crate::plan::job::{Consistency, JobPlan};
use crate::plan::Plan;
use crate::report::{Exit, JobSummary, Summary};
use crate::source::mysql::tables::{base_tables, BaseTable};
use crate::source::mysql::Snapshot;
use crate::source::SourceError;
use crate::target::{Sink, TargetLock};
use std::time::Instant;

/// The tables of the job, and whether the source was unreachable (the fallback serves).
struct Chosen {
    plans: Vec<Plan>,
    /// Tables a snapshot does not cover (their engine is not InnoDB).
    outside: Vec<String>,
    fallback: bool,
}

/// Runs the job; its summary and exit code.
pub(super) fn run(job: &JobPlan, how: How, only: Option<&[String]>) -> (JobSummary, Exit) {
    let mut summary = JobSummary {
        attempts: 1,
        ..JobSummary::default()
    };
    let chosen = match choose(job, only) {
        Ok(c) => c,
        Err(e) => {
            summary.error = Some(chain(&e));
            let exit = summary.exit(Some(e.exit()));
            return (summary, exit);
        }
    };
    let kind = job.template.target.kind().as_str();
    summary.tables = chosen
        .plans
        .iter()
        .map(|p| Summary::new(kind, p.target.table()))
        .collect();
    let own = match (job.consistency, how.dry_run) {
        (_, true) => dry_run(&chosen, how, &mut summary),
        (Consistency::PerTable, false) => per_table(job, &chosen, how, &mut summary),
        (Consistency::Snapshot, false) => snapshot(job, &chosen, how, &mut summary),
    };
    let own = own.err().map(|e| {
        summary.error = Some(chain(&e));
        e.exit()
    });
    let exit = summary.exit(own);
    (summary, exit)
}

/// The job's tables among the source's (or, when it cannot be reached, the fallback
/// file's), each with its plan.
fn choose(job: &JobPlan, only: Option<&[String]>) -> Result<Chosen, Error> {
    let (base, fallback) = match base_tables(&job.source) {
        Ok(tables) => (tables, false),
        Err(SourceError::Connect(e)) if e.is_unreachable() && job.template.fallback.is_some() => {
            let file = job.template.fallback.as_ref().expect("checked above");
            log::warn!(
                "primary source unreachable, the job's tables come from the fallback file {}: {e}",
                file.path.display()
            );
            let names = crate::source::sqlite::tables(file)?;
            let tables = names.into_iter().map(|name| BaseTable {
                name,
                engine: "InnoDB".into(),
            });
            (tables.collect(), true)
        }
        Err(e) => return Err(e.into()),
    };
    let names: Vec<String> = base.iter().map(|t| t.name.clone()).collect();
    let selected = job.select(&names, only)?;
    let outside: Vec<String> = base
        .iter()
        .filter(|t| selected.contains(&t.name) && !t.engine.eq_ignore_ascii_case("InnoDB"))
        .map(|t| format!("{} ({})", t.name, t.engine))
        .collect();
    let mut plans = Vec::with_capacity(selected.len());
    for name in &selected {
        let mut plan = job.table_plan(name)?;
        if job.consistency == Consistency::Snapshot {
            // One connection reads every table in the snapshot, one read each.
            plan.partitioning = None;
        }
        plans.push(plan);
    }
    log::info!("job: {} tables ({})", plans.len(), selected.join(", "));
    Ok(Chosen {
        plans,
        outside,
        fallback,
    })
}

/// `--dry-run`: each table's plan, printed.
fn dry_run(chosen: &Chosen, how: How, summary: &mut JobSummary) -> Result<(), Error> {
    for (plan, table) in chosen.plans.iter().zip(summary.tables.iter_mut()) {
        println!("== table {}", plan.target.table());
        logfile::set_table(Some(plan.target.table().to_string()));
        let prepared = attempt::prepare(plan, how, table, false);
        logfile::set_table(None);
        match prepared {
            Ok(_) => table.exit = Exit::Ok,
            Err(e) => {
                table.exit = e.exit();
                table.error = Some(chain(&e));
            }
        }
    }
    Ok(())
}

/// `per_table`: each table copied on its own, with its own lock and retries; a failed table
/// leaves the others loaded. Tables of a SQLite file go one after the other (the file has
/// one writer at a time); on MySQL, `parallel_tables` at once.
fn per_table(
    job: &JobPlan,
    chosen: &Chosen,
    how: How,
    summary: &mut JobSummary,
) -> Result<(), Error> {
    let width = match job.template.target.endpoint() {
        None => 1,
        Some(_) => job.parallel_tables,
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(usize, Summary)>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..width.min(chosen.plans.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(plan) = chosen.plans.get(i) else {
                    break;
                };
                let mut table = summary.tables[i].clone();
                logfile::set_table(Some(plan.target.table().to_string()));
                super::one_table(plan, how, &mut table);
                logfile::set_table(None);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, table));
            });
        }
    });
    for (i, table) in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
        summary.attempts = summary.attempts.max(table.attempts);
        summary.tables[i] = table;
    }
    interrupt::check()?;
    Ok(())
}

/// `snapshot`: every table read in one snapshot of the source, staged, then all swapped
/// in at once; a failure anywhere changes none of them. Retried as a whole.
fn snapshot(
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
    let mut locks: Vec<Option<TargetLock>> = chosen.plans.iter().map(|_| None).collect();
    let mut attempt = 1;
    loop {
        summary.attempts = attempt;
        let err = match snapshot_attempt(chosen, how, summary, &mut locks) {
            Ok(()) => return Ok(()),
            Err(e) => e.past_run_timeout(),
        };
        if attempt > template.retries || !err.is_transient() {
            return Err(err);
        }
        let text = chain(&err);
        let wait = crate::retry::backoff(attempt + 1);
        if interrupt::left().is_some_and(|left| wait >= left) {
            return Err(err);
        }
        log::warn!(
            "attempt {attempt} failed ({text}); the whole job again, with a new snapshot, in {} s",
            wait.as_secs()
        );
        summary.retried.push(text);
        super::pause(wait)?;
        for t in &mut summary.tables {
            *t = Summary::new(&t.target, &t.table);
        }
        attempt += 1;
    }
}

/// A staged table's sink, what it read, and how it goes in.
type StagedSink = (Box<dyn Sink>, CopyStats, Apply);

/// A table staged for the swap: where it is in the job, what was read, how it goes in.
struct Staged {
    index: usize,
    stats: CopyStats,
    apply: Apply,
}

/// One attempt at a snapshot job: every lock, the snapshot, each table staged, one swap.
fn snapshot_attempt(
    chosen: &Chosen,
    how: How,
    summary: &mut JobSummary,
    locks: &mut [Option<TargetLock>],
) -> Result<(), Error> {
    for (plan, lock) in chosen.plans.iter().zip(locks.iter_mut()) {
        attempt::hold_lock(plan, lock).map_err(|e| in_table(plan, e))?;
    }
    let snapshot = match chosen.fallback {
        true => None,
        false => Some(Snapshot::start(&chosen.plans[0].source)?),
    };
    let t0 = Instant::now();
    let (mut sinks, mut staged) = (Vec::new(), Vec::new());
    for (i, plan) in chosen.plans.iter().enumerate() {
        logfile::set_table(Some(plan.target.table().to_string()));
        let done = stage_one(
            plan,
            how,
            &mut summary.tables[i],
            snapshot.as_ref(),
            &mut locks[i],
        );
        logfile::set_table(None);
        match done {
            Ok(Some((sink, stats, apply))) => {
                sinks.push(sink);
                staged.push(Staged {
                    index: i,
                    stats,
                    apply,
                });
            }
            Ok(None) => {}
            Err(e) => {
                summary.tables[i].error = Some(chain(&e));
                summary.tables[i].exit = e.exit();
                abort_all(&mut sinks);
                return Err(in_table(plan, e));
            }
        }
    }
    drop(snapshot);
    if let Err(e) = interrupt::check() {
        abort_all(&mut sinks);
        return Err(e.into());
    }
    swap_all(chosen, summary, &mut sinks, staged, t0)
}

/// One table read and staged (nothing visible yet); `None` when it had nothing to load
/// (a fallback table kept as it is).
fn stage_one(
    plan: &Plan,
    how: How,
    table: &mut Summary,
    snapshot: Option<&Snapshot>,
    lock: &mut Option<TargetLock>,
) -> Result<Option<StagedSink>, Error> {
    let Ready {
        mut sink,
        mut source,
        used,
        load,
    } = match attempt::prepare(plan, how, table, true)? {
        Prepared::Load(ready) => ready,
        Prepared::Done(exit) => {
            table.exit = exit;
            return Ok(None);
        }
    };
    if let Some(snapshot) = snapshot {
        source.read_in(snapshot);
    }
    table.exit = attempt::exit_of(used);
    let stats = attempt::copy(plan, how, source, sink.as_mut(), &load, lock)?;
    Ok(Some((sink, stats, load.apply)))
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
    let applied = match first.target.swap_all(sinks, first.lock_wait) {
        Ok(applied) => applied,
        Err(e) => {
            abort_all(sinks);
            return Err(e.into());
        }
    };
    for (mut s, applied) in staged.into_iter().zip(applied) {
        s.stats.applied = applied;
        let plan = &chosen.plans[s.index];
        let table = &mut summary.tables[s.index];
        logfile::set_table(Some(plan.target.table().to_string()));
        let target = plan.target.describe();
        attempt::report(plan, &s.apply, &s.stats, &target, t0, table.source, table);
        logfile::set_table(None);
    }
    Ok(())
}

/// Drops every staged table: the job changes nothing.
fn abort_all(sinks: &mut [Box<dyn Sink>]) {
    for sink in sinks {
        sink.abort();
    }
}

/// A table's failure, naming the table.
fn in_table(plan: &Plan, e: Error) -> Error {
    Error::InTable {
        table: plan.target.table().to_string(),
        cause: Box::new(e),
    }
}
