//! One run of dbsync: the command line and the config made into a plan once, then the copy
//! (`attempt`), again after a transient failure, within `[general] run_timeout`.

/// A line of `--dry-run`'s plan (see `dry_run::line`).
macro_rules! plan_line {
    ($($arg:tt)*) => {
        $crate::run::dry_run::line(format_args!($($arg)*))
    };
}

mod attempt;
mod dry_run;
mod fallback;
mod incremental;
mod job;
mod verify;

use crate::cli::Cli;
use crate::config::RawConfig;
use crate::error::{chain, Error};
use crate::interrupt;
use crate::pipeline::ProgressMode;
use crate::plan::job::JobPlan;
use crate::plan::{self, Plan};
use crate::report::{Exit, Outcome, Summary};
use crate::{connect, logfile, retry};
use std::time::Instant;

/// What the command line asks of this run.
#[derive(Debug, Clone, Copy)]
pub struct How {
    pub dry_run: bool,
    pub full_refresh: bool,
    pub progress: ProgressMode,
}

/// What the config asks: one query, or a job of many tables.
enum Work {
    One(Box<Plan>),
    Job(Box<JobPlan>),
}

/// Carries out one run; never panics out (see `main`), always returns its outcome.
pub fn run(cli: &Cli, progress: ProgressMode) -> Outcome {
    let start = Instant::now();
    let known = crate::config::known::Known {
        targets: crate::target::SECTIONS,
    };
    let raw = RawConfig::load(&cli.config, known);
    // Read apart from the plan: a config that fails as a plan still names its log file,
    // and the error goes there too.
    let log_file = cli
        .log_file
        .clone()
        .or_else(|| raw.as_ref().ok().and_then(plan::log_file));
    let log_level = raw
        .as_ref()
        .ok()
        .map_or(log::LevelFilter::Info, plan::log_level);
    let work = raw.and_then(|raw| match JobPlan::from_config(&raw, cli.target)? {
        Some(job) => Ok(Work::Job(Box::new(job))),
        // `--only` picks tables of a job: on a one-query config it would do nothing.
        None if cli.only.is_some() => Err(crate::config::ConfigError::Invalid {
            section: "general".into(),
            key: "tables".into(),
            value: String::new(),
            expected: "a job of tables for --only to choose from (this config copies one \
                       query: drop --only, or list tables in [general] tables)"
                .into(),
        }),
        None => Ok(Work::One(Box::new(Plan::from_config(&raw, cli.target)?))),
    });
    if let Ok(plan) = work.as_ref().map(Work::plan) {
        if let Some(limit) = plan.run_timeout {
            interrupt::set_run_timeout(start, limit);
        }
        connect::skip_system_bundle(&plan.endpoints());
    }
    open_log_file(log_file, log_level);
    dry_run::send_plan_to_stderr(cli.summary_json.as_deref() == Some(std::path::Path::new("-")));
    let how = How {
        dry_run: cli.dry_run,
        full_refresh: cli.full_refresh,
        progress,
    };
    let mut outcome = match work {
        Ok(Work::Job(job)) if cli.verify => {
            let (summary, exit) = verify::job(&job, cli.only.as_deref());
            Outcome::Job(summary, exit)
        }
        Ok(Work::One(plan)) if cli.verify => Outcome::One(verify::single(&plan)),
        Ok(Work::Job(job)) => {
            let (summary, exit) = job::run(&job, how, cli.only.as_deref());
            Outcome::Job(summary, exit)
        }
        Ok(Work::One(plan)) => {
            let mut summary = Summary::new(plan.target.kind().as_str(), plan.target.table());
            one_table(&plan, how, &mut summary);
            Outcome::One(summary)
        }
        Err(e) => {
            let e = Error::from(e);
            let mut summary = Summary::new(cli.target.map(|t| t.as_str()).unwrap_or(""), "");
            summary.exit = e.exit();
            summary.error = Some(chain(&e));
            Outcome::One(summary)
        }
    };
    outcome.finish(start.elapsed().as_secs_f64(), logfile::warnings());
    outcome
}

impl Work {
    /// The plan whose run-wide settings apply (a job's: its template table's).
    fn plan(&self) -> &Plan {
        match self {
            Work::One(plan) => plan,
            Work::Job(job) => &job.template,
        }
    }
}

/// One table's run, with its retries, into its summary.
pub(super) fn one_table(plan: &Plan, how: How, summary: &mut Summary) {
    match with_retries(plan, how, summary) {
        Ok(exit) if how.dry_run => summary.exit = exit,
        Ok(exit) => {
            summary.exit = exit;
            verify::after(plan, summary);
        }
        Err(e) => {
            summary.exit = e.exit();
            summary.error = Some(chain(&e));
        }
    }
}

fn open_log_file(path: Option<std::path::PathBuf>, level: log::LevelFilter) {
    let Some(path) = path else { return };
    match logfile::open(&path, level) {
        Err(e) => log::warn!("cannot append the log to {}: {e}", path.display()),
        Ok(()) => log::info!("dbsync {} starting", env!("CARGO_PKG_VERSION")),
    }
}

/// Runs the copy, and again, up to `[general] retries` times, after a transient failure:
/// each attempt is a whole, atomic copy, so nothing is half-done in between. No retry
/// starts whose pause would end past `[general] run_timeout`.
fn with_retries(plan: &Plan, how: How, summary: &mut Summary) -> Result<Exit, Error> {
    let mut attempt = 1;
    let mut lock = None;
    loop {
        summary.attempts = attempt;
        let err = match attempt::execute(plan, how, summary, &mut lock) {
            Ok(exit) => return Ok(exit),
            Err(e) => e.past_run_timeout(),
        };
        if attempt > plan.retries || how.dry_run || !err.is_transient() {
            return Err(err);
        }
        let text = chain(&err);
        let wait = retry::backoff(attempt + 1);
        if let Some(left) = interrupt::left().filter(|left| wait >= *left) {
            return Err(Error::NoTimeToRetry {
                cause: text,
                pause: wait,
                left,
                limit: plan.run_timeout.unwrap_or_default(),
            });
        }
        log::warn!(
            "attempt {attempt} failed ({text}); trying again in {} s ({} of [general] retries = {} left)",
            wait.as_secs(),
            plan.retries + 1 - attempt,
            plan.retries
        );
        summary.retried.push(text);
        pause(wait)?;
        *summary = Summary {
            attempts: attempt,
            retried: std::mem::take(&mut summary.retried),
            ..Summary::new(&summary.target, &summary.table)
        };
        attempt += 1;
    }
}

/// Waits `wait`, stopping early for a signal or run_timeout.
fn pause(wait: std::time::Duration) -> Result<(), Error> {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        interrupt::check()?;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}
