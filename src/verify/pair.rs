//! Into SQLite, the two sides' rows are first paired off by their canonical texts as they
//! stream: a copy's file lists its rows in the order the source gave them, so the rows of
//! an equal table meet their twins in step and are compared byte for byte, without
//! hashing. A row that does not meet its twin in step waits, with up to `WAITING` others,
//! for it to come on the other side. What is left unpaired is hashed, key and row, for the
//! sorted merge. Only byte-equal texts are paired, so the outcome is the merge's over
//! every row, and an equal table holds no list of its rows.

use super::canon::hashes;
use super::sorted::Row;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender};

/// Unpaired rows kept waiting for their twins, both sides together, and their texts'
/// bytes, before they are all hashed.
const WAITING: usize = 32_768;
const WAITING_BYTES: usize = 32 << 20;

/// Rows of texts sent at a time, or fewer once they fill this many bytes; a buffer grown
/// past `RECYCLED` (by a row of many MB) is let go rather than reused.
const BATCH: usize = 4096;
const BATCH_BYTES: usize = 1 << 20;
const RECYCLED: usize = 4 << 20;

/// The canonical texts of consecutive rows, in one buffer.
#[derive(Default)]
struct Texts {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Texts {
    fn push(&mut self, text: &[u8]) {
        self.bytes.extend_from_slice(text);
        self.ends.push(self.bytes.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
        &self.bytes[start..self.ends[i]]
    }
}

/// Batches of texts on their way from a reader's thread, and back, emptied, to be filled
/// again (fresh buffers would be fresh pages to fault in, each batch).
pub(super) fn channel() -> (Batches, Stream) {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let (back_tx, back_rx) = std::sync::mpsc::sync_channel(4);
    let batches = Batches {
        tx,
        back: back_rx,
        texts: Texts::default(),
    };
    let stream = Stream {
        rx,
        back: back_tx,
        batch: Texts::default(),
        at: 0,
    };
    (batches, stream)
}

/// The reader's end: texts are pushed, and sent a batch at a time.
pub(super) struct Batches {
    tx: SyncSender<Texts>,
    back: Receiver<Texts>,
    texts: Texts,
}

impl Batches {
    /// Adds a row's text; false once the comparison no longer takes them.
    pub(super) fn push(&mut self, text: &[u8]) -> bool {
        self.texts.push(text);
        (self.texts.len() < BATCH && self.texts.bytes.len() < BATCH_BYTES) || self.send()
    }

    fn send(&mut self) -> bool {
        let empty = self.back.try_recv().unwrap_or_default();
        self.tx
            .send(std::mem::replace(&mut self.texts, empty))
            .is_ok()
    }

    /// Sends the last rows; dropping `self` then tells the comparison there are no more.
    pub(super) fn finish(mut self) {
        self.send();
    }
}

/// One side's texts as they arrive from its reader's thread, one row at a time.
pub(super) struct Stream {
    rx: Receiver<Texts>,
    back: SyncSender<Texts>,
    batch: Texts,
    at: usize,
}

impl Stream {
    /// The next row's text; None once the reader is done (or gave up).
    pub(super) fn next(&mut self) -> Option<&[u8]> {
        while self.at == self.batch.len() {
            let mut done = std::mem::replace(&mut self.batch, self.rx.recv().ok()?);
            if done.bytes.capacity() <= RECYCLED {
                done.clear();
                let _ = self.back.try_send(done);
            }
            self.at = 0;
        }
        self.at += 1;
        Some(self.batch.get(self.at - 1))
    }
}

/// An unpaired text's count, and whether it is newer than the load (source rows).
#[derive(Clone, Copy)]
struct Waiting {
    count: u64,
    newer: bool,
}

/// The rows that found no twin: hashed, as the sorted merge takes them.
pub(super) struct Pairing {
    key: Vec<usize>,
    key_text: Vec<u8>,
    source_waiting: HashMap<Vec<u8>, Waiting>,
    target_waiting: HashMap<Vec<u8>, Waiting>,
    /// The waiting texts' bytes, and the bounds (rows, bytes) past which all are hashed.
    waiting_bytes: usize,
    limits: (usize, usize),
    source: Vec<Row>,
    target: Vec<(u64, u64)>,
}

impl Pairing {
    /// Pairing rows whose key columns are at the `key` positions (none: a multiset).
    pub(super) fn new(key: &[usize]) -> Pairing {
        Pairing::within(key, (WAITING, WAITING_BYTES))
    }

    fn within(key: &[usize], limits: (usize, usize)) -> Pairing {
        Pairing {
            key: key.to_vec(),
            key_text: Vec::new(),
            source_waiting: HashMap::new(),
            target_waiting: HashMap::new(),
            waiting_bytes: 0,
            limits,
            source: Vec::new(),
            target: Vec::new(),
        }
    }

    /// A source row's text beside the target's in the same place (None past its end).
    pub(super) fn step(&mut self, source: &[u8], newer: bool, target: Option<&[u8]>) {
        if target == Some(source) {
            return;
        }
        if !take(&mut self.target_waiting, source, &mut self.waiting_bytes) {
            wait(
                &mut self.source_waiting,
                source,
                newer,
                &mut self.waiting_bytes,
            );
        }
        // The target's row (if any) is held the same way, and the bounds checked once.
        match target {
            Some(t) => self.target_row(t),
            None => self.bound(),
        }
    }

    /// A target row with no source row beside it.
    pub(super) fn target_row(&mut self, text: &[u8]) {
        if !take(&mut self.source_waiting, text, &mut self.waiting_bytes) {
            wait(
                &mut self.target_waiting,
                text,
                false,
                &mut self.waiting_bytes,
            );
        }
        self.bound();
    }

    /// Past the bounds, every waiting row is hashed.
    fn bound(&mut self) {
        let rows = self.source_waiting.len() + self.target_waiting.len();
        if rows > self.limits.0 || self.waiting_bytes > self.limits.1 {
            self.hash_waiting();
        }
    }

    fn hash_waiting(&mut self) {
        self.waiting_bytes = 0;
        for (text, w) in std::mem::take(&mut self.source_waiting) {
            let (key, hash) = hashes(&text, &self.key, &mut self.key_text);
            let row = Row {
                key,
                hash,
                newer: w.newer,
            };
            self.source
                .extend(std::iter::repeat_n(row, w.count as usize));
        }
        for (text, w) in std::mem::take(&mut self.target_waiting) {
            let pair = hashes(&text, &self.key, &mut self.key_text);
            self.target
                .extend(std::iter::repeat_n(pair, w.count as usize));
        }
    }

    /// Both sides' unpaired rows, hashed: (source, target).
    pub(super) fn finish(mut self) -> (Vec<Row>, Vec<(u64, u64)>) {
        self.hash_waiting();
        (self.source, self.target)
    }
}

/// Takes one waiting row of this text, if there is one.
fn take(waiting: &mut HashMap<Vec<u8>, Waiting>, text: &[u8], bytes: &mut usize) -> bool {
    let Some(w) = waiting.get_mut(text) else {
        return false;
    };
    w.count -= 1;
    if w.count == 0 {
        waiting.remove(text);
        *bytes -= text.len();
    }
    true
}

fn wait(waiting: &mut HashMap<Vec<u8>, Waiting>, text: &[u8], newer: bool, bytes: &mut usize) {
    match waiting.get_mut(text) {
        Some(w) => w.count += 1,
        None => {
            waiting.insert(text.to_vec(), Waiting { count: 1, newer });
            *bytes += text.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::canon::key_hash;
    use crate::verify::sorted::{self, Differences};

    /// A side's row: its text, and whether it is newer than the load (source).
    type Side<'a> = &'a [(String, bool)];

    /// Pairs the sides as the verification streams them, then merges what is left; the
    /// differences and the rows hashed.
    fn paired(source: Side, target: Side, key: &[usize], limit: usize) -> (Differences, usize) {
        let mut p = Pairing::within(key, (limit, usize::MAX));
        let mut t = target.iter();
        for (s, newer) in source {
            p.step(s.as_bytes(), *newer, t.next().map(|t| t.0.as_bytes()));
        }
        for rest in t {
            p.target_row(rest.0.as_bytes());
        }
        let (mut s, mut t) = p.finish();
        let hashed = s.len() + t.len();
        (sorted::merge(&mut s, &mut t), hashed)
    }

    /// Every row hashed and merged, as without pairing.
    fn merged(source: Side, target: Side, key: &[usize]) -> Differences {
        let mut key_text = Vec::new();
        let mut s: Vec<Row> = (source.iter())
            .map(|(text, newer)| {
                let (key, hash) = hashes(text.as_bytes(), key, &mut key_text);
                Row {
                    key,
                    hash,
                    newer: *newer,
                }
            })
            .collect();
        let mut t: Vec<(u64, u64)> = (target.iter())
            .map(|(text, _)| hashes(text.as_bytes(), key, &mut key_text))
            .collect();
        sorted::merge(&mut s, &mut t)
    }

    fn row(key: &str, value: &str) -> (String, bool) {
        (format!("{}:{key}{}:{value}", key.len(), value.len()), false)
    }

    fn key(k: &str) -> u64 {
        key_hash(row(k, "").0.as_bytes(), &[0], &mut Vec::new())
    }

    fn rows(n: usize) -> Vec<(String, bool)> {
        (0..n).map(|i| row(&i.to_string(), "x")).collect()
    }

    #[test]
    fn rows_in_step_are_paired_without_hashing() {
        let all = rows(100);
        assert_eq!(paired(&all, &all, &[0], 10), (Differences::default(), 0));
    }

    #[test]
    fn a_row_out_of_step_waits_for_its_twin() {
        let all = rows(100);
        // The source lost row 3 and gained one at the end; the target's row 50 changed.
        let mut source: Vec<_> = all.iter().filter(|r| **r != all[3]).cloned().collect();
        source.push(row("100", "x"));
        let mut target = all.clone();
        target[50] = row("50", "y");
        let (d, hashed) = paired(&source, &target, &[0], WAITING);
        assert_eq!(d.extra, vec![key("3")]);
        assert_eq!(d.missing, vec![key("100")]);
        assert_eq!(d.changed, vec![key("50")]);
        // Only those rows were hashed, not the 96 after the shift.
        assert_eq!(hashed, 4);
    }

    #[test]
    fn a_longer_file_and_newer_rows_are_told_apart() {
        let all = rows(20);
        let mut source = all[..15].to_vec();
        // Newer than the load: row 2 changed since, row 99 added since.
        source[2] = (row("2", "z").0, true);
        source.insert(0, (row("99", "x").0, true));
        let (d, _) = paired(&source, &all, &[0], WAITING);
        assert_eq!(d.newer, vec![key("2")]);
        assert_eq!(d.newer_added, vec![key("99")]);
        let mut extra: Vec<u64> = (15..20).map(|i| key(&i.to_string())).collect();
        extra.sort_unstable();
        assert_eq!(d.extra, extra);
        assert!(d.missing.is_empty() && d.changed.is_empty());
    }

    #[test]
    fn without_a_key_repeated_rows_count_one_for_one() {
        let a = row("1", "a");
        let b = row("2", "b");
        let source = [a.clone(), b.clone(), a.clone(), a.clone()];
        let target = [b.clone(), a.clone()];
        let (d, _) = paired(&source, &target, &[], 1);
        assert_eq!((d.missing.len(), d.extra.len()), (2, 0));
    }

    /// Random sides (repeated keys, repeated rows, newer rows, any order), paired with
    /// bounds small enough to hash waiting rows often: the same differences as every row
    /// hashed, with a key and without.
    #[test]
    fn pairing_never_changes_the_outcome() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for case in 0..3000 {
            let mut side = |len: u64| -> Vec<(String, bool)> {
                (0..next(len))
                    .map(|_| {
                        let k = next(8);
                        let mut r = row(&k.to_string(), &next(3).to_string());
                        // Newer rows: the source's rows of keys 6 and 7.
                        r.1 = k >= 6;
                        r
                    })
                    .collect()
            };
            let source = side(12);
            let target: Vec<_> = side(12).into_iter().map(|(t, _)| (t, false)).collect();
            let limit = 1 + case % 5;
            for key in [&[0][..], &[]] {
                let (d, _) = paired(&source, &target, key, limit);
                assert_eq!(d, merged(&source, &target, key), "{source:?} {target:?}");
            }
        }
    }
}
