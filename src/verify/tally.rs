//! What a verification found: counts, and a few keys of each kind, for the log and the
//! summary's `verify` object.

use super::SAMPLE_KEYS;
use serde_json::json;
use std::collections::HashMap;

/// Differences found so far, with a sample of keys of each kind.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
    pub missing_keys: Vec<String>,
    pub extra_keys: Vec<String>,
    pub changed_keys: Vec<String>,
    /// Source rows missing or changed in the target whose incremental key is above the
    /// target's largest: written at the source after the load (the next run copies them).
    pub newer: u64,
    pub newer_keys: Vec<String>,
    /// Of those, the rows the target does not hold at all.
    pub newer_added: u64,
}

/// Keys kept per kind before the sample is sorted and cut to `SAMPLE_KEYS`.
const KEPT: usize = 1000;

fn keep(keys: &mut Vec<String>, key: impl FnOnce() -> String) {
    if keys.len() < KEPT {
        keys.push(key());
    }
}

impl Tally {
    pub fn missing(&mut self, key: impl FnOnce() -> String) {
        self.missing += 1;
        keep(&mut self.missing_keys, key);
    }
    pub fn extra(&mut self, key: impl FnOnce() -> String) {
        self.extra += 1;
        keep(&mut self.extra_keys, key);
    }
    pub fn changed(&mut self, key: impl FnOnce() -> String) {
        self.changed += 1;
        keep(&mut self.changed_keys, key);
    }
    pub fn newer(&mut self, key: impl FnOnce() -> String) {
        self.newer += 1;
        keep(&mut self.newer_keys, key);
    }

    /// A source row whose key the target lacks (`None`) or holds with another hash.
    pub fn source_row(
        &mut self,
        target: Option<u64>,
        hash: u64,
        newer: bool,
        key: impl FnOnce() -> String,
    ) {
        match target {
            Some(t) if t == hash => {}
            None if newer => {
                self.newer_added += 1;
                self.newer(key)
            }
            _ if newer => self.newer(key),
            None => self.missing(key),
            Some(_) => self.changed(key),
        }
    }

    /// Rows by key on each side (key → row hash): what is missing, extra, changed.
    pub fn keyed(
        &mut self,
        source: HashMap<Vec<u8>, (u64, bool)>,
        mut target: HashMap<Vec<u8>, (u64, bool)>,
        show: &dyn Fn(&[u8]) -> String,
    ) {
        for (k, (h, newer)) in source {
            let t = target.remove(&k).map(|t| t.0);
            self.source_row(t, h, newer, || show(&k));
        }
        for k in target.keys() {
            self.extra(|| show(k));
        }
    }

    /// Rows as a multiset (row hash → count) on each side.
    pub fn multiset(&mut self, source: HashMap<u64, i64>, mut target: HashMap<u64, i64>) {
        for (h, n) in source {
            let t = target.remove(&h).unwrap_or(0);
            if n > t {
                self.missing += (n - t) as u64;
            } else {
                self.extra += (t - n) as u64;
            }
        }
        self.extra += target.values().map(|&n| n.max(0) as u64).sum::<u64>();
    }

    fn sorted(keys: &[String]) -> Vec<String> {
        let mut keys = keys.to_vec();
        // Numbers in numeric order, then text.
        keys.sort_by(|a, b| match (a.parse::<i128>(), b.parse::<i128>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        });
        keys.truncate(SAMPLE_KEYS);
        keys
    }
}

/// A table's verification.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub source_rows: u64,
    pub target_rows: u64,
    pub found: Tally,
    /// Compared by key (else as a multiset of row hashes).
    pub keyed: bool,
    /// Chunks compared, and the ones whose checksums differed (as the log names them).
    pub chunks: u64,
    pub differing_chunks: Vec<String>,
    pub seconds: f64,
}

impl Verdict {
    pub fn equal(&self) -> bool {
        let f = &self.found;
        f.missing == 0
            && f.extra == 0
            && f.changed == 0
            && self.source_rows == self.target_rows + f.newer_added
    }

    /// The log's lines about it.
    pub fn log(&self) {
        let f = &self.found;
        if f.newer > 0 {
            log::info!(
                "verify: {} source rows are newer than the target's largest incremental key \
                 (written at the source after the load; the next run copies them), not counted \
                 as differences: {}",
                f.newer,
                Tally::sorted(&f.newer_keys).join(", ")
            );
        }
        let how = match self.chunks {
            0 | 1 => "row by row".to_string(),
            n => format!("{} of {n} chunks differ", self.differing_chunks.len()),
        };
        if self.equal() {
            log::info!(
                "verify: equal: {} rows on both sides ({how}, in {:.2} s)",
                self.source_rows,
                self.seconds
            );
            return;
        }
        log::warn!(
            "verify: differs: source {} rows, target {} rows: {} missing from the target, {} extra \
             in it, {} changed ({how}; in {:.2} s)",
            self.source_rows,
            self.target_rows,
            f.missing,
            f.extra,
            f.changed,
            self.seconds
        );
        let some = |v: &[String]| v.iter().take(SAMPLE_KEYS).cloned().collect::<Vec<_>>();
        if !self.differing_chunks.is_empty() {
            log::warn!(
                "verify: key ranges that differ: {}",
                some(&self.differing_chunks).join("; ")
            );
        }
        for (what, keys) in [
            ("missing", &f.missing_keys),
            ("extra", &f.extra_keys),
            ("changed", &f.changed_keys),
        ] {
            if !keys.is_empty() {
                log::warn!("verify: {what} keys: {}", Tally::sorted(keys).join(", "));
            }
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let f = &self.found;
        json!({
            "equal": self.equal(),
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "missing": f.missing,
            "extra": f.extra,
            "changed": f.changed,
            "missing_keys": Tally::sorted(&f.missing_keys),
            "extra_keys": Tally::sorted(&f.extra_keys),
            "changed_keys": Tally::sorted(&f.changed_keys),
            "newer": f.newer,
            "newer_keys": Tally::sorted(&f.newer_keys),
            "by": if self.keyed { "key" } else { "row_hash" },
            "chunks": self.chunks,
            "differing_chunks": self.differing_chunks.len(),
            "ranges": self.differing_chunks.iter().take(SAMPLE_KEYS).collect::<Vec<_>>(),
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
        })
    }
}
