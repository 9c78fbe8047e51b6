//! `--dry-run`: what the run would do, printed, with nothing changed.

use crate::error::Error;
use crate::incremental::Apply;
use crate::logfile;
use crate::plan::Plan;
use crate::report::Summary;
use crate::source::Source;
use crate::transform::keys::Keys;

pub(super) fn print(
    plan: &Plan,
    source: &dyn Source,
    keys: &Keys,
    apply: &Apply,
    summary: &Summary,
) -> Result<(), Error> {
    println!("source:   {}", source.describe());
    match &plan.fallback {
        Some(f) => println!("fallback: {f} (if the source is unreachable)"),
        None => println!("fallback: none"),
    }
    let target = plan.target.describe();
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
        let to = plan.target.column_type(c);
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
