//! Moving batches from a source to a sink: a reader thread, a bounded channel (the
//! backpressure that keeps memory flat), and the writer on the calling thread.

use crate::sink::{Sink, SinkError};
use crate::source::{Source, SourceError};
use arrow::record_batch::RecordBatch;
use std::io::Write;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

/// Batches in flight between reader and writer.
const CHANNEL_BATCHES: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Copies every row of `source` into `sink`, all or nothing. Returns the rows copied.
pub fn copy(
    source: Box<dyn Source>,
    sink: &mut dyn Sink,
    progress: bool,
) -> Result<u64, CopyError> {
    let columns = source.columns().to_vec();
    if let Err(e) = sink.begin(&columns) {
        sink.abort();
        return Err(e.into());
    }
    let result = stream(source, sink, progress);
    let result = result.and_then(|rows| {
        sink.commit(rows)?;
        Ok(rows)
    });
    if result.is_err() {
        sink.abort();
    }
    result
}

fn stream(source: Box<dyn Source>, sink: &mut dyn Sink, progress: bool) -> Result<u64, CopyError> {
    let (tx, rx) = sync_channel::<RecordBatch>(CHANNEL_BATCHES);
    let reader = std::thread::Builder::new()
        .name("dbsync-reader".into())
        .spawn(move || source.read(&mut |batch| tx.send(batch).is_ok()))
        .expect("spawning the reader thread");
    let mut meter = Progress::new(progress);
    let mut written = Ok(());
    for batch in &rx {
        if let Err(e) = sink.write(&batch) {
            written = Err(e);
            break;
        }
        meter.add(batch.num_rows() as u64);
    }
    // Dropping the receiver makes the reader's next send fail, so it stops early.
    drop(rx);
    meter.finish();
    let read = reader.join().unwrap_or_else(|panic| {
        let message = crate::source::mysql::panic_message(panic.as_ref());
        Err(SourceError::Read {
            rows: 0,
            batch: 0,
            message,
        })
    });
    written?;
    Ok(read?)
}

/// A single updating line on a terminal: rows, rows/s, elapsed.
struct Progress {
    enabled: bool,
    start: Instant,
    last: Instant,
    rows: u64,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Progress {
            enabled,
            start: now,
            last: now,
            rows: 0,
        }
    }

    fn add(&mut self, rows: u64) {
        self.rows += rows;
        if self.enabled && self.last.elapsed() >= Duration::from_millis(250) {
            self.last = Instant::now();
            let secs = self.start.elapsed().as_secs_f64();
            let rate = self.rows as f64 / secs.max(1e-9);
            eprint!("\r{} rows, {:.0} rows/s, {:.1} s   ", self.rows, rate, secs);
            let _ = std::io::stderr().flush();
        }
    }

    fn finish(&self) {
        if self.enabled && self.last != self.start {
            eprint!("\r\x1b[2K");
        }
    }
}
