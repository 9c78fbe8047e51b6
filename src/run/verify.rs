//! `--verify`: each table of the run compared with its source instead of copied, and
//! `[general] verify = after`: each table loaded from the primary compared right after.

use super::job::begin;
use crate::error::{chain, Error};
use crate::incremental::{Apply, Filter};
use crate::interrupt;
use crate::logfile;
use crate::plan::job::JobPlan;
use crate::plan::Plan;
use crate::report::{Exit, JobSummary, SourceUsed, Summary};
use crate::target::{Deletion, FindDeletion, SinkError};
use serde_json::json;
use std::sync::Arc;

/// Verifies one table into its summary: exit 0 equal, 5 differs, 1 could not run (or the
/// signal's code when one stopped it).
pub(super) fn one(plan: &Plan, summary: &mut Summary) {
    match crate::verify::table(plan) {
        Ok(verdict) => {
            verdict.log();
            if summary.action == "verified" {
                summary.source = SourceUsed::Primary;
                summary.rows = verdict.source_rows;
            }
            summary.verify = Some(verdict.to_json());
            summary.source_rows = Some(verdict.source_rows);
            summary.target_rows = Some(verdict.target_rows);
            summary.exit = match verdict.equal() {
                true => Exit::Ok,
                false => Exit::Differs,
            };
        }
        Err(e) => {
            let e = interrupt::check().map_or_else(Error::from, |()| Error::from(e));
            let text = chain(&e);
            log::error!("verify: could not run: {text}");
            summary.verify = Some(json!({ "error": text }));
            summary.exit = e.exit();
            summary.error = Some(text);
        }
    }
}

/// `verify = after`: a table just loaded from the primary is verified (exit 5 when it
/// differs); one the fallback served, or not loaded, says why it was not. A verification
/// that cannot run is a warning: the load itself stands.
pub(super) fn after(plan: &Plan, summary: &mut Summary) {
    if !plan.verify_after {
        return;
    }
    let skipped = match (summary.exit, summary.source) {
        (Exit::Ok, SourceUsed::Primary) => None,
        (Exit::Fallback, _) => Some("fallback"),
        _ => Some("not loaded"),
    };
    if let Some(why) = skipped {
        log::info!("verify: skipped ({why})");
        summary.verify = Some(json!({ "skipped": why }));
        return;
    }
    let loaded = summary.exit;
    one(plan, summary);
    // A stop during the verification stops the run (130/143), whatever the load did.
    let stopped = interrupt::stopping().is_some();
    if !stopped && summary.exit != Exit::Differs && summary.exit != Exit::Ok {
        let why = summary.error.take().unwrap_or_default();
        log::warn!("verify = after could not run; the load stands: {why}");
        summary.exit = loaded;
    }
}

/// `--verify` of a one-query config.
pub(super) fn single(plan: &Plan) -> Summary {
    let mut summary = Summary::new(plan.target.kind().as_str(), plan.target.table());
    summary.action = "verified";
    one(plan, &mut summary);
    summary
}

/// `--verify` of a job: every chosen table, one after the other.
pub(super) fn job(job: &JobPlan, only: Option<&[String]>) -> (JobSummary, Exit) {
    let (mut summary, chosen) = match begin(job, only) {
        Ok(begun) => begun,
        Err(ended) => return ended,
    };
    if chosen.fallback {
        let e = "the primary source is unreachable: there is nothing to verify against";
        summary.error = Some(e.to_string());
        return (summary, Exit::Failed);
    }
    let kind = job.template.target.kind().as_str();
    for plan in &chosen.plans {
        let mut table = Summary::new(kind, plan.target.table());
        table.action = "verified";
        if let Err(stop) = interrupt::check() {
            // Never left out silently: a table a stop came before says so.
            table.exit = Error::from(stop).exit();
            table.verify = Some(json!({ "skipped": "stopped" }));
        } else {
            logfile::for_table(plan.target.table(), || one(plan, &mut table));
        }
        summary.tables.push(table);
    }
    let own = interrupt::check().err().map(|i| {
        let e = Error::from(i);
        summary.error = Some(chain(&e));
        e.exit()
    });
    let exit = summary.exit(own);
    (summary, exit)
}

/// `deletes = apply` on a merge from the primary: how the sink learns, once the rows are
/// read, which of the target's rows the source no longer has.
/// `filter`: the rows the merge reads (the source's restriction).
pub(super) fn deletes_of(
    plan: &Plan,
    apply: &Apply,
    used: SourceUsed,
    filter: Option<&Filter>,
) -> Option<FindDeletion> {
    let Apply::Merge(key) = apply else {
        return None;
    };
    if !plan.deletes_apply || used != SourceUsed::Primary {
        return None;
    }
    let (plan, key, filter) = (plan.clone(), key.clone(), filter.cloned());
    Some(FindDeletion(Arc::new(move |read| {
        find_deletion(&plan, &key, read, filter.as_ref())
    })))
}

/// The target's rows whose key the source no longer has, refused by max_shrink_percent
/// as a replace that lost as many would be, or when the source has rows the target lacks
/// that the merge did not read (`filter`); `read`: the rows this run read.
fn find_deletion(
    plan: &Plan,
    key: &[String],
    read: u64,
    filter: Option<&Filter>,
) -> Result<Deletion, SinkError> {
    let refused = |why: String| SinkError::Refused {
        target: plan.target.describe(),
        why,
    };
    let gone = crate::verify::vanished(plan, key, filter).map_err(|e| {
        refused(format!(
            "deletes = apply could not find the rows the source no longer has: {e}"
        ))
    })?;
    // None of the target's keys left at the source: every row goes.
    let turnover = gone.target_rows > 0 && gone.rows == gone.target_rows;
    if turnover && gone.source_rows > read {
        // Rows this run did not read would be missing: the keys likely differ in form.
        return Err(refused(format!(
            "none of the source's {} rows has a key the target's {} rows hold, and this run \
             read {read} of them, so deletes = apply would leave the target without the others: \
             check that the key's column has the same type and values on both sides, or load \
             it whole once with --full-refresh",
            gone.source_rows, gone.target_rows
        )));
    }
    if let (Some(f), n @ 1..) = (filter, gone.unread_lacking) {
        return Err(refused(unread_lacking(f, n, gone.target_rows)));
    }
    // A source that answers with no rows is refused as an empty replace is (a truncated
    // table, an emptied lookup the query joins): the target is kept.
    let emptied = turnover && gone.source_rows == 0;
    if emptied && !plan.guards.allow_empty {
        return Err(refused(format!(
            "the source no longer has any of the {} rows the target holds, so deletes = apply \
             would empty it; [general] allow_empty = true allows it",
            gone.target_rows
        )));
    }
    // A turnover (every row replaced by the rows this run read) is judged as a replace: by
    // the rows the target will hold; an allowed emptying is not also a shrink.
    let lost = match turnover {
        true => gone.target_rows.saturating_sub(gone.source_rows),
        false => gone.rows,
    };
    let lost = lost as f64 * 100.0 / gone.target_rows.max(1) as f64;
    let max_shrink = plan.guards.max_shrink_percent.filter(|_| !emptied);
    if let Some(max) = max_shrink.filter(|max| lost > *max) {
        let what = match turnover {
            true => format!(
                "replace all {} rows the target holds with the source's {} ({lost:.1}% fewer)",
                gone.target_rows, gone.source_rows
            ),
            false => format!(
                "delete {} of the {} rows the target holds ({lost:.1}%)",
                gone.rows, gone.target_rows
            ),
        };
        return Err(refused(format!(
            "the merge would {what}, more than [general] max_shrink_percent = {max} (raise it \
             if the drop is expected)"
        )));
    }
    log::info!(
        "deletes = apply: {} of the target's {} rows are gone from the source (compared by {}: \
         {} of {} key chunks differ, in {:.2} s)",
        gone.rows,
        gone.target_rows,
        gone.how,
        gone.differing_chunks,
        gone.chunks,
        gone.seconds
    );
    Ok(Deletion {
        conditions: gone.conditions,
    })
}

/// Why a merge is refused whose source holds `n` keys the target lacks only on rows below
/// its read's start (`f`): no incremental run would ever read them.
fn unread_lacking(f: &Filter, n: u64, target_rows: u64) -> String {
    format!(
        "the source has {n} keys that the target's {target_rows} rows lack, on rows whose `{}` \
         is below {}, which this merge does not read, nor will any later one: rows committed \
         late with an older `{0}` (widen incremental_lookback), rows that came into the \
         query's result without a newer one, or keys renumbered at the source; load it whole \
         once with --full-refresh",
        f.column,
        f.bound.text()
    )
}
