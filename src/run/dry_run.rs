//! `--dry-run`: what the run would do, printed, with nothing changed.

use crate::error::Error;
use crate::incremental::Apply;
use crate::logfile;
use crate::plan::Plan;
use crate::report::Summary;
use crate::source::Source;
use crate::transform::keys::Keys;
use std::sync::atomic::{AtomicBool, Ordering};

/// The plan goes to stderr when the summary goes to stdout (`--summary-json -`), so that
/// stdout holds the JSON alone.
static TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Where the plan's lines go: stderr when `summary_on_stdout`, else stdout.
pub(super) fn send_plan_to_stderr(summary_on_stdout: bool) {
    TO_STDERR.store(summary_on_stdout, Ordering::Relaxed);
}

/// One line of the plan (`plan_line!`).
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    // A reader that stopped reading (`dbsync --dry-run | head`) ends the plan, not the run.
    let _ = match TO_STDERR.load(Ordering::Relaxed) {
        true => writeln!(std::io::stderr(), "{args}"),
        false => writeln!(std::io::stdout(), "{args}"),
    };
}

/// Whether the run could write its target (see `Target::check_writable`): a line per
/// check; a refusal (exit 1) naming what fails.
pub(super) fn check_target(plan: &Plan, apply: &Apply) -> Result<(), Error> {
    let checks = plan.target.check_writable(matches!(apply, Apply::Merge(_)));
    plan_line!("could write:");
    for c in &checks {
        plan_line!("  {} {}", if c.ok { "ok  " } else { "FAIL" }, c.line);
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.line.as_str())
        .collect();
    if failed.is_empty() {
        log::info!("--dry-run: the run could write {}", plan.target.describe());
        return Ok(());
    }
    Err(crate::error::refused(
        plan.target.describe(),
        format!(
            "--dry-run: the run could not write it: {}",
            failed.join("; ")
        ),
    ))
}

pub(super) fn print(
    plan: &Plan,
    source: &dyn Source,
    keys: &Keys,
    apply: &Apply,
    summary: &Summary,
) -> Result<(), Error> {
    plan_line!("source:   {}", source.describe());
    match &plan.fallback {
        Some(f) => plan_line!("fallback: {f} (if the source is unreachable)"),
        None => plan_line!("fallback: none"),
    }
    let target = plan.target.describe();
    let what = match apply {
        Apply::Replace => "replaced atomically".to_string(),
        Apply::Append => "rows appended, in one transaction".to_string(),
        Apply::Merge(k) => format!("rows merged by ({}), in one transaction", k.join(", ")),
    };
    plan_line!("target:   {target} ({what})");
    plan_line!("strategy: {}", summary.strategy);
    if let (Some(i), Some(from)) = (&plan.incremental, &summary.incremental_from) {
        let op = if i.merge { ">=" } else { ">" };
        plan_line!("reads:    rows with `{}` {op} {from}", i.key);
        plan_line!("server plan for the read (EXPLAIN):");
        for line in source.explain()? {
            plan_line!("  {line}");
        }
    }
    plan_line!("columns:");
    for c in source.columns() {
        let to = plan.target.column_type(c);
        plan_line!("  {:<30} {:<24} -> {}", c.name, c.ty.to_string(), to);
    }
    if keys.primary.is_none() {
        plan_line!("primary key: none");
    }
    for line in keys.lines() {
        plan_line!("{line}");
    }
    for warning in logfile::warnings() {
        plan_line!("warning:  {warning}");
    }
    Ok(())
}
