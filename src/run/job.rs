//! A job of many tables (`[general] tables`): the tables chosen among the source's, then
//! read in one consistent snapshot and swapped in at once (`consistency = snapshot`), or
//! each copied on its own (`per_table`). One summary; the worst table decides the exit.

mod snapshot;

use super::attempt;
use super::How;
use crate::error::{chain, Error};
use crate::interrupt;
use crate::logfile;
use crate::plan::job::{Consistency, JobPlan};
use crate::plan::Plan;
use crate::report::{Exit, JobSummary, Summary};
use crate::source::mysql::tables::{base_tables, BaseTable};
use crate::source::SourceError;

/// The tables of the job, and whether the source was unreachable (the fallback serves).
pub(super) struct Chosen {
    pub(super) plans: Vec<Plan>,
    /// Tables a snapshot does not cover (their engine is not InnoDB).
    outside: Vec<String>,
    pub(super) fallback: bool,
    /// Tables in flight at once (`[general] parallel_tables`).
    parallel_tables: usize,
}

/// Runs the job; its summary and exit code.
pub(super) fn run(job: &JobPlan, how: How, only: Option<&[String]>) -> (JobSummary, Exit) {
    let (mut summary, chosen) = match begin(job, only) {
        Ok(begun) => begun,
        Err(ended) => return ended,
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
        (Consistency::Snapshot, false) => snapshot::run(job, &chosen, how, &mut summary),
    };
    if job.consistency == Consistency::Snapshot && !how.dry_run {
        // A per_table job's tables are verified each after its own load.
        for (plan, table) in chosen.plans.iter().zip(summary.tables.iter_mut()) {
            logfile::for_table(plan.target.table(), || super::verify::after(plan, table));
        }
    }
    let own = own.err().map(|e| {
        summary.error = Some(chain(&e));
        e.exit()
    });
    let exit = summary.exit(own);
    (summary, exit)
}

/// A job's summary as it starts, and its tables (see `choose`); a job whose tables cannot
/// be chosen ends here, its summary saying why.
pub(super) fn begin(
    job: &JobPlan,
    only: Option<&[String]>,
) -> Result<(JobSummary, Chosen), (JobSummary, Exit)> {
    let mut summary = JobSummary {
        attempts: 1,
        ..JobSummary::default()
    };
    match choose(job, only) {
        Ok(chosen) => Ok((summary, chosen)),
        Err(e) => {
            summary.error = Some(chain(&e));
            let exit = summary.exit(Some(e.exit()));
            Err((summary, exit))
        }
    }
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
            let mut names = crate::source::sqlite::tables(file)?;
            // A table the config names outright is in the job even when the file lacks it:
            // it then fails, rather than being left out without a word.
            for p in job.patterns.iter().filter(|p| p.include) {
                let literal = !p.glob.contains(['*', '?']);
                if literal && !names.iter().any(|n| n.eq_ignore_ascii_case(&p.glob)) {
                    names.push(p.glob.clone());
                }
            }
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
    let mut unsplit = false;
    for name in &selected {
        let mut plan = job.table_plan(name)?;
        // The job decided once where its rows come from: a table never decides again (a
        // table read from the fallback beside the snapshot's would mix two nights).
        match fallback {
            true => plan.primary_down = true,
            false => plan.fallback = None,
        }
        if job.consistency == Consistency::Snapshot {
            // One connection reads every table in the snapshot, one read each.
            unsplit |= plan.partitioning.take().is_some();
        }
        plans.push(plan);
    }
    if unsplit {
        log::info!(
            "[external_db] partitions does not apply under consistency = snapshot: one \
             connection reads every table, in one snapshot"
        );
    }
    refuse_shared_targets(&selected, &plans)?;
    crate::target::Target::share_sessions(plans.iter_mut().map(|p| &mut p.target));
    log::info!("job: {} tables ({})", plans.len(), selected.join(", "));
    Ok(Chosen {
        plans,
        outside,
        fallback,
        parallel_tables: job.parallel_tables,
    })
}

/// Two tables of a job loading one target table (a `target_table` naming another table's,
/// or `Orders` beside `orders` where the target ignores case) is a config error: they would
/// take one lock twice and stage under one name.
fn refuse_shared_targets(names: &[String], plans: &[Plan]) -> Result<(), Error> {
    for (i, plan) in plans.iter().enumerate() {
        let table = plan.target.table();
        let earlier = plans[..i]
            .iter()
            .position(|p| p.target.table().eq_ignore_ascii_case(table));
        if let Some(j) = earlier {
            return Err(crate::config::ConfigError::Invalid {
                section: crate::config::table_section(&names[i]),
                key: "target_table".into(),
                value: table.to_string(),
                expected: format!(
                    "a target table of its own: table `{}` loads `{}` too (names compare \
                     without case)",
                    names[j],
                    plans[j].target.table()
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// `--dry-run`: each table's plan, printed.
fn dry_run(chosen: &Chosen, how: How, summary: &mut JobSummary) -> Result<(), Error> {
    for (plan, table) in chosen.plans.iter().zip(summary.tables.iter_mut()) {
        plan_line!("== table {}", plan.target.table());
        let prepared = logfile::for_table(plan.target.table(), || {
            attempt::prepare(plan, how, table, false)
        });
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
                logfile::for_table(plan.target.table(), || {
                    super::one_table(plan, how, &mut table)
                });
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

/// A table's failure, naming the table.
pub(super) fn in_table(plan: &Plan, e: Error) -> Error {
    Error::InTable {
        table: plan.target.table().to_string(),
        cause: Box::new(e),
    }
}
