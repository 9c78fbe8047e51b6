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

/// Unpaired rows kept waiting for their twins, both sides together, before they are all
/// hashed: a few MB of texts.
const WAITING: usize = 32_768;

/// Rows of texts sent at a time.
const BATCH: usize = 4096;

/// The canonical texts of consecutive rows, in one buffer.
#[derive(Default)]
pub(super) struct Texts {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Texts {
    pub(super) fn push(&mut self, text: &[u8]) {
        self.bytes.extend_from_slice(text);
        self.ends.push(self.bytes.len());
    }

    pub(super) fn len(&self) -> usize {
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
        self.texts.len() < BATCH || self.send()
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
            done.clear();
            let _ = self.back.try_send(done);
            self.at = 0;
        }
        self.at += 1;
        Some(self.batch.get(self.at - 1))
    }
}

/// An unpaired text's count, and whether it is newer than the load (source rows).
#[derive(Clone, Copy)]
struct Waiting {
    count: u32,
    newer: bool,
}

/// The rows that found no twin: hashed, as the sorted merge takes them.
pub(super) struct Pairing {
    key: Vec<usize>,
    key_text: Vec<u8>,
    source_waiting: HashMap<Vec<u8>, Waiting>,
    target_waiting: HashMap<Vec<u8>, Waiting>,
    pub(super) source: Vec<Row>,
    pub(super) target: Vec<(u64, u64)>,
}

impl Pairing {
    /// Pairing rows whose key columns are at the `key` positions (none: a multiset).
    pub(super) fn new(key: &[usize]) -> Pairing {
        Pairing {
            key: key.to_vec(),
            key_text: Vec::new(),
            source_waiting: HashMap::new(),
            target_waiting: HashMap::new(),
            source: Vec::new(),
            target: Vec::new(),
        }
    }

    /// A source row's text beside the target's in the same place (None past its end).
    pub(super) fn step(&mut self, source: &[u8], newer: bool, target: Option<&[u8]>) {
        if target == Some(source) {
            return;
        }
        if !take(&mut self.target_waiting, source) {
            wait(&mut self.source_waiting, source, newer);
        }
        if let Some(t) = target {
            self.target_row(t);
        }
        self.bound();
    }

    /// A target row with no source row beside it.
    pub(super) fn target_row(&mut self, text: &[u8]) {
        if !take(&mut self.source_waiting, text) {
            wait(&mut self.target_waiting, text, false);
        }
        self.bound();
    }

    /// Past `WAITING` rows, every waiting row is hashed.
    fn bound(&mut self) {
        if self.source_waiting.len() + self.target_waiting.len() > WAITING {
            self.hash_waiting();
        }
    }

    fn hash_waiting(&mut self) {
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
fn take(waiting: &mut HashMap<Vec<u8>, Waiting>, text: &[u8]) -> bool {
    let Some(w) = waiting.get_mut(text) else {
        return false;
    };
    w.count -= 1;
    if w.count == 0 {
        waiting.remove(text);
    }
    true
}

fn wait(waiting: &mut HashMap<Vec<u8>, Waiting>, text: &[u8], newer: bool) {
    match waiting.get_mut(text) {
        Some(w) => w.count += 1,
        None => {
            waiting.insert(text.to_vec(), Waiting { count: 1, newer });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::sorted;

    /// Pairs the sides as the verification streams them, then merges what is left.
    fn compare(source: &[&str], target: &[&str]) -> (sorted::Differences, usize) {
        let mut p = Pairing::new(&[0]);
        let mut t = target.iter();
        for s in source {
            p.step(s.as_bytes(), false, t.next().map(|t| t.as_bytes()));
        }
        for rest in t {
            p.target_row(rest.as_bytes());
        }
        let (mut s, mut t) = p.finish();
        let hashed = s.len() + t.len();
        (sorted::merge(&mut s, &mut t), hashed)
    }

    fn row(key: &str, value: &str) -> String {
        format!("{}:{key}{}:{value}", key.len(), value.len())
    }

    #[test]
    fn rows_in_step_are_paired_without_hashing() {
        let rows: Vec<String> = (0..100).map(|i| row(&i.to_string(), "x")).collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let (d, hashed) = compare(&rows, &rows);
        assert_eq!((d, hashed), (sorted::Differences::default(), 0));
    }

    #[test]
    fn a_row_out_of_step_waits_for_its_twin() {
        let rows: Vec<String> = (0..100).map(|i| row(&i.to_string(), "x")).collect();
        let all: Vec<&str> = rows.iter().map(String::as_str).collect();
        // The source lost row 3 and gained one at the end; the target's row 50 changed.
        let mut source: Vec<&str> = all.iter().copied().filter(|r| *r != all[3]).collect();
        let new = row("100", "x");
        source.push(&new);
        let changed = row("50", "y");
        let mut target = all.clone();
        target[50] = &changed;
        let (d, hashed) = compare(&source, &target);
        let key = |k: &str| {
            let mut key_text = Vec::new();
            crate::verify::canon::key_hash(row(k, "").as_bytes(), &[0], &mut key_text)
        };
        assert_eq!(d.extra, vec![key("3")]);
        assert_eq!(d.missing, vec![key("100")]);
        assert_eq!(d.changed, vec![key("50")]);
        // Only those rows were hashed, not the 96 after the shift.
        assert_eq!(hashed, 4);
    }

    #[test]
    fn sides_in_other_orders_agree_and_repeats_pair_one_for_one() {
        let source = ["1:a1:x", "1:b1:x", "1:b1:x", "1:c1:x"];
        let target = ["1:c1:x", "1:b1:x", "1:a1:x"];
        let (d, _) = compare(&source, &target);
        assert_eq!(d.changed.len() + d.extra.len(), 0);
        assert_eq!(d.missing.len(), 1);
    }
}
