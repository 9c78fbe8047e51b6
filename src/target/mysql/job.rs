//! A job's tables put in place at once: one `RENAME TABLE` of every replaced table, which
//! MySQL does all or nothing. A merge's or append's rows were applied (committed) when
//! they were staged: DDL commits on its own, so no transaction could hold both.

use super::MySqlSink;
use crate::incremental::{Applied, Apply};
use crate::target::{Sink, SinkError};

/// Swaps every staged table of `sinks` (all this target's) in at once.
pub fn swap_all(sinks: &mut [Box<dyn Sink>]) -> Result<Vec<Applied>, SinkError> {
    let mut typed: Vec<&mut MySqlSink> = sinks
        .iter_mut()
        .map(|s| {
            s.as_any_mut()
                .downcast_mut::<MySqlSink>()
                .expect("a MySQL target's sinks are MySqlSinks")
        })
        .collect();
    let (mut parts, mut olds, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for sink in typed.iter_mut().filter(|s| s.apply == Apply::Replace) {
        let (part, old) = sink.rename_part()?;
        parts.push(part);
        olds.extend(old);
        names.push(sink.target.table.clone());
    }
    if let Some(first) = typed.iter_mut().find(|s| s.apply == Apply::Replace) {
        let t0 = std::time::Instant::now();
        first.rename_together(&parts, &olds, &names.join(", "))?;
        log::info!(
            "{} tables swapped in at once in {:.2} s",
            parts.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(typed
        .iter()
        .map(|s| s.applied.unwrap_or_default())
        .collect())
}
