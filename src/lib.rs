//! dbsync: copy the result of a MySQL query into SQLite or MySQL, replacing the target
//! table atomically. `run` turns the command line and the config into a plan and carries
//! it out; everything below it works on domain types only.

pub mod cli;
pub mod config;
pub mod connect;
pub mod fence;
pub mod freshness;
pub mod incremental;
pub mod interrupt;
pub mod lock;
pub mod logfile;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod retry;
pub mod sink;
pub mod source;
#[cfg(test)]
pub mod testing;
pub mod transform;
pub mod verify;

use crate::config::{ConfigError, RawConfig};
use crate::incremental::Apply;
use crate::lock::LockError;
use crate::pipeline::CopyError;
use crate::plan::{Plan, SqliteTable, Target};
use crate::report::{Exit, SourceUsed, Summary};
use crate::sink::Sink;
use crate::source::{Source, SourceError};
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Interrupted(#[from] interrupt::Interrupted),
    /// An attempt failed after `[general] run_timeout` ran out (a wait it cut short).
    #[error("stopped by {}: {cause}", interrupt::run_timeout_setting(*.limit))]
    PastRunTimeout { limit: Duration, cause: String },
    /// A retry that would start only after run_timeout ran out.
    #[error(
        "{cause}; not retried: the next attempt would start after a {} s pause, with {} s of {} left",
        .pause.as_secs(), .left.as_secs(), interrupt::run_timeout_setting(*.limit)
    )]
    NoTimeToRetry {
        cause: String,
        pause: Duration,
        left: Duration,
        limit: Duration,
    },
}

impl Error {
    /// Worth the whole copy again (see `retry`). An unreachable primary counts (a failover
    /// may be under way) when no fallback took its place.
    fn is_transient(&self) -> bool {
        match self {
            Error::Config(_) | Error::Interrupted(_) | Error::Lock(LockError::Held { .. }) => false,
            Error::PastRunTimeout { .. } | Error::NoTimeToRetry { .. } => false,
            Error::Copy(CopyError::Interrupted(_)) => false,
            Error::Copy(CopyError::Empty { .. } | CopyError::Shrunk { .. }) => false,
            // Trying again at once could read the target before that COMMIT shows.
            Error::Copy(CopyError::Sink(sink::SinkError::Unknown { .. })) => false,
            Error::Source(SourceError::Connect(c)) => c.is_unreachable(),
            other => retry::is_transient_text(&error_chain(other)),
        }
    }

    fn exit(&self) -> Exit {
        match self {
            Error::Config(_) => Exit::Usage,
            Error::Lock(LockError::Held { .. }) => Exit::Locked,
            Error::Interrupted(i) | Error::Copy(CopyError::Interrupted(i)) => match i.0 {
                interrupt::Stop::Signal(sig) => Exit::interrupted(sig),
                interrupt::Stop::RunTimeout(_) => Exit::Failed,
            },
            _ => Exit::Failed,
        }
    }
}

/// Carries out one run; never panics out (see `main`), always returns a summary.
pub fn run(cli: &cli::Cli, progress: pipeline::ProgressMode) -> Summary {
    let start = Instant::now();
    let raw = RawConfig::load(&cli.config);
    // Read apart from the plan: a config that fails as a plan still names its log file,
    // and the error goes there too.
    let config_log_file = raw.as_ref().ok().and_then(plan::log_file);
    let log_level = raw
        .as_ref()
        .ok()
        .map_or(log::LevelFilter::Info, plan::log_level);
    let plan = raw.and_then(|raw| Plan::from_config(&raw, cli.target.map(|t| t.as_str())));
    if let Some(limit) = plan.as_ref().ok().and_then(|p| p.run_timeout) {
        interrupt::set_run_timeout(start, limit);
    }
    if let Ok(p) = &plan {
        let mut endpoints = vec![&p.source];
        if let Target::MySql(t) = &p.target {
            endpoints.push(&t.endpoint);
        }
        connect::skip_system_bundle(&endpoints);
    }
    let log_file = cli.log_file.clone().or(config_log_file);
    if let Some(path) = log_file {
        if let Err(e) = logfile::open(&path, log_level) {
            log::warn!("cannot append the log to {}: {e}", path.display());
        } else {
            log::info!("dbsync {} starting", env!("CARGO_PKG_VERSION"));
        }
    }
    let mut summary = match &plan {
        Ok(p) => Summary::new(p.target.kind().as_str(), p.target.table()),
        Err(_) => Summary::new(cli.target.map(|t| t.as_str()).unwrap_or(""), ""),
    };
    let result = plan.map_err(Error::from).and_then(|plan| {
        let how = How {
            dry_run: cli.dry_run,
            full_refresh: cli.full_refresh,
            progress,
        };
        execute_with_retries(&plan, how, &mut summary)
    });
    summary.seconds = start.elapsed().as_secs_f64();
    summary.warnings = logfile::warnings();
    match result {
        Ok(exit) => summary.exit = exit,
        Err(e) => {
            summary.exit = e.exit();
            summary.error = Some(error_chain(&e));
        }
    }
    summary
}

/// What the command line asks of this run.
#[derive(Debug, Clone, Copy)]
struct How {
    dry_run: bool,
    full_refresh: bool,
    progress: pipeline::ProgressMode,
}

/// Runs the copy, and again, up to `[general] retries` times, after a transient failure:
/// each attempt is a whole, atomic copy, so nothing is half-done in between. No retry
/// starts whose pause would end past `[general] run_timeout`.
fn execute_with_retries(plan: &Plan, how: How, summary: &mut Summary) -> Result<Exit, Error> {
    let mut attempt = 1;
    let mut lock = None;
    loop {
        summary.attempts = attempt;
        let err = match execute(plan, how, summary, &mut lock) {
            Ok(exit) => return Ok(exit),
            Err(e) => past_run_timeout(e),
        };
        if attempt > plan.retries || how.dry_run || !err.is_transient() {
            return Err(err);
        }
        let text = error_chain(&err);
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
        let until = Instant::now() + wait;
        while Instant::now() < until {
            interrupt::check()?;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        *summary = Summary {
            attempts: attempt,
            retried: std::mem::take(&mut summary.retried),
            ..Summary::new(&summary.target, &summary.table)
        };
        attempt += 1;
    }
}

/// An attempt's failure once run_timeout has run out names it: the failure is most likely
/// a wait that the stop cut short. A signal's is left as it is: a failure such as a swap of
/// unknown outcome must not pass for an interruption.
fn past_run_timeout(e: Error) -> Error {
    match (interrupt::stopping(), &e) {
        (_, Error::Interrupted(_) | Error::Copy(CopyError::Interrupted(_))) => e,
        (Some(interrupt::Stop::RunTimeout(limit)), _) => Error::PastRunTimeout {
            limit,
            cause: error_chain(&e),
        },
        _ => e,
    }
}

/// The error and its causes, each once, as one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

/// Where the rows come from, or why nothing needs copying.
enum Opened {
    Source(Box<dyn Source>, SourceUsed),
    /// The target is the fallback table itself and was kept.
    Kept(Exit),
}

/// The primary source, or the fallback when the primary cannot be reached. An
/// incremental read is small: it is not split into partitions.
fn open_source(
    plan: &Plan,
    dry_run: bool,
    incremental_read: bool,
    summary: &mut Summary,
) -> Result<Opened, Error> {
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
            if matches!(plan.target, Target::MySql(_)) {
                s.warn_lost_definitions();
            }
            Ok(Opened::Source(Box::new(s), SourceUsed::Primary))
        }
        (Err(SourceError::Connect(e)), Some(fallback)) if e.is_unreachable() => {
            log::warn!("primary source unreachable, using the fallback {fallback}: {e}");
            summary.source = SourceUsed::Fallback;
            let kept = matches!(&plan.target, Target::Sqlite(t) if t == fallback);
            let max_age = if kept { None } else { plan.fallback_max_age };
            check_fallback_age(fallback, max_age, summary)?;
            if kept {
                return keep_fallback_table(fallback, dry_run, summary).map(Opened::Kept);
            }
            let s = source::sqlite::SqliteSource::open(fallback, plan.batch_rows)?;
            Ok(Opened::Source(Box::new(s), SourceUsed::Fallback))
        }
        (Err(e), _) => Err(e.into()),
    }
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

fn execute(
    plan: &Plan,
    how: How,
    summary: &mut Summary,
    lock: &mut Option<lock::TargetLock>,
) -> Result<Exit, Error> {
    // Before anything is read: a second run stops here, touching nothing. Held across
    // retries; taken again only if it was lost.
    let lost = |l: &mut lock::TargetLock| match l.still_held(true) {
        Ok(()) => false,
        Err(e) => {
            log::info!("taking the run's lock again: {e}");
            true
        }
    };
    if !how.dry_run && lock.as_mut().is_none_or(lost) {
        *lock = None;
        *lock = Some(
            lock::acquire(&plan.target, plan.lock_wait)
                .map_err(|e| interrupt::check().map_or_else(Error::from, |()| Error::from(e)))?,
        );
    }
    let t0 = Instant::now();
    let read_at = std::time::SystemTime::now();
    interrupt::check()?;
    let mut sink: Box<dyn Sink> = match &plan.target {
        Target::Sqlite(t) => Box::new(
            sink::sqlite::SqliteSink::new(&t.path, &t.table)
                .with_wal(t.wal)
                .with_decimal(t.decimal),
        ),
        Target::MySql(t) => Box::new(sink::mysql::MySqlSink::new(t)),
    };
    // An incremental run starts from what the target holds: read it before the source.
    let state = match &plan.incremental {
        Some(i) => {
            summary.strategy = i.strategy();
            // Read under --full-refresh too (all but the maximum): a fallback run must know
            // whether it holds rows.
            sink.inspect(&i.key, !how.full_refresh)
                .map_err(sink_error)?
        }
        None => None,
    };
    let incremental_read = !how.full_refresh && state.as_ref().is_some_and(|s| s.max.is_some());
    let (mut source, used) = match open_source(plan, how.dry_run, incremental_read, summary)? {
        Opened::Source(s, used) => (s, used),
        Opened::Kept(exit) => return Ok(exit),
    };
    interrupt::check()?;
    summary.source = used;
    log::info!(
        "source: {} ({} columns, described in {:.2} s)",
        source.describe(),
        source.columns().len(),
        t0.elapsed().as_secs_f64()
    );
    let exit = match used {
        SourceUsed::Fallback => Exit::Fallback,
        _ => Exit::Ok,
    };
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
        Some(i) => incremental::run::prepare(
            i,
            source.as_mut(),
            used,
            state.as_ref(),
            how.full_refresh,
            &plan.target,
            &mut keys,
            summary,
        )?,
        None => Apply::Replace,
    };
    log_keys(&keys);
    if how.dry_run {
        print_plan(plan, source.as_ref(), &keys, &apply, summary)?;
        summary.action = "planned";
        return Ok(exit);
    }
    if used == SourceUsed::Fallback {
        sink.rows_from_fallback();
    }
    sink.record_origin(source.describe(), read_at);
    let incremental = apply != Apply::Replace;
    let merge = matches!(apply, Apply::Merge(_));
    let action = match apply {
        Apply::Replace => "replaced",
        Apply::Append => "appended",
        Apply::Merge(_) => "merged",
    };
    sink.set_apply(apply.clone());
    let t1 = Instant::now();
    let opts = pipeline::CopyOptions {
        progress: how.progress,
        zero_dates: plan.zero_dates,
        // Nothing new is a quiet night, and an incremental run removes nothing.
        guards: match &apply {
            Apply::Replace => plan.guards,
            _ => plan::Guards {
                allow_empty: true,
                max_shrink_percent: None,
            },
        },
        expected_rows: match how.progress {
            pipeline::ProgressMode::Off => None,
            _ => source.estimate(),
        },
    };
    match opts.expected_rows {
        Some(n) => log::debug!("the server estimates {n} rows"),
        None if how.progress != pipeline::ProgressMode::Off => {
            log::debug!("no row estimate: progress shows rows and rows/s")
        }
        None => {}
    }
    let mut check_lock = || match lock.as_mut() {
        Some(l) => l.still_held(false).map_err(CopyError::from),
        None => Ok(()),
    };
    let stats = pipeline::copy(source, sink.as_mut(), opts, &keys, &mut check_lock)?;
    if merge && stats.rows == 0 && used == SourceUsed::Primary {
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
            transform::ZeroDates::Keep => "copied as they are",
            transform::ZeroDates::Null => "written as NULL",
            transform::ZeroDates::Error => "refused",
        };
        log::warn!(
            "{} zero or partial dates in the source ({what}; [external_db] zero_dates)",
            stats.zero_dates
        );
    }
    let secs = t1.elapsed().as_secs_f64();
    if incremental {
        log::info!(
            "target: {} {action}: {} rows read, {} inserted, {} updated, in {secs:.2} s",
            sink.describe(),
            stats.rows,
            stats.applied.inserted,
            stats.applied.updated,
        );
        summary.inserted = Some(stats.applied.inserted);
        summary.updated = Some(stats.applied.updated);
    } else {
        log::info!(
            "target: {} replaced with {} rows in {secs:.2} s ({:.0} rows/s)",
            sink.describe(),
            stats.rows,
            stats.rows as f64 / secs.max(1e-9)
        );
    }
    summary.rows = stats.rows;
    summary.zero_dates = stats.zero_dates;
    summary.action = action;
    Ok(exit)
}

pub(crate) fn sink_error(e: sink::SinkError) -> Error {
    Error::Copy(CopyError::Sink(e))
}

/// A `[general]` setting that does not fit the query (exit 2).
pub(crate) fn invalid(key: &str, value: &str, expected: String) -> Error {
    Error::Config(ConfigError::Invalid {
        section: config::GENERAL.into(),
        key: key.into(),
        value: value.into(),
        expected,
    })
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
        println!("source:   fallback {t} (the primary is unreachable)");
        println!("target:   the same table: kept as it is ({rows} rows)");
    }
    log::warn!(
        "the target is the fallback table itself: kept as it is ({rows} rows), nothing copied"
    );
    Ok(Exit::Fallback)
}

fn log_keys(keys: &transform::keys::Keys) {
    for line in keys.lines() {
        log::info!("{line}");
    }
}

fn print_plan(
    plan: &Plan,
    source: &dyn Source,
    keys: &transform::keys::Keys,
    apply: &Apply,
    summary: &Summary,
) -> Result<(), Error> {
    println!("source:   {}", source.describe());
    match &plan.fallback {
        Some(f) => println!("fallback: {f} (if the source is unreachable)"),
        None => println!("fallback: none"),
    }
    let target = match &plan.target {
        Target::Sqlite(t) => t.to_string(),
        Target::MySql(t) => format!("MySQL {} table {}", t.endpoint.describe(), t.table),
    };
    let what = match apply {
        Apply::Replace => "replaced atomically".to_string(),
        Apply::Append => "rows appended, in one transaction".to_string(),
        Apply::Merge(k) => format!("rows merged by ({}), in one transaction", k.join(", ")),
    };
    println!("target:   {target} ({what})");
    println!("strategy: {}", summary.strategy);
    if let (Some(i), Some(from)) = (&plan.incremental, &summary.incremental_from) {
        let op = if i.merge { ">=" } else { ">" };
        println!("reads:    rows with `{}` {op} {from}", i.key);
        println!("server plan for the read (EXPLAIN):");
        for line in source.explain()? {
            println!("  {line}");
        }
    }
    println!("columns:");
    for c in source.columns() {
        let to = match &plan.target {
            Target::Sqlite(t) => match transform::sqlite_decl(&c.ty, t.decimal) {
                d if d.is_empty() => "(no declared type)".to_string(),
                d => d,
            },
            Target::MySql(_) => transform::mysql_target_type(c),
        };
        println!("  {:<30} {:<24} -> {}", c.name, c.ty.to_string(), to);
    }
    if keys.primary.is_none() {
        println!("primary key: none");
    }
    for line in keys.lines() {
        println!("{line}");
    }
    for warning in logfile::warnings() {
        println!("warning:  {warning}");
    }
    Ok(())
}
