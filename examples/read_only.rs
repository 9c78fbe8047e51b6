//! The "limits" row of scripts/bench.sh: reads the `[external_db]` query through the same
//! source dbsync uses (metadata probe + connectorx stream) and drops every batch.
//! Usage: read_only CONFIG.ini

use dbsync::config::RawConfig;
use dbsync::plan::Plan;
use dbsync::source::mysql::MySqlSource;
use dbsync::source::Source;
use std::time::Instant;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "config.ini".into());
    let known = dbsync::config::known::Known {
        targets: dbsync::target::SECTIONS,
    };
    let raw = RawConfig::load(path.as_ref(), known).expect("config");
    let plan = Plan::from_config(&raw, None).expect("plan");
    let t0 = Instant::now();
    let source = MySqlSource::open(
        &plan.source,
        &plan.query,
        plan.batch_rows,
        plan.partitioning.as_ref(),
        plan.statement_timeout,
        None,
    )
    .expect("source");
    let abandon = dbsync::connect::Abandon::default();
    let rows = Box::new(source)
        .read(&mut |_batch| true, &abandon)
        .expect("read");
    eprintln!("read {rows} rows in {:.2} s", t0.elapsed().as_secs_f64());
}
