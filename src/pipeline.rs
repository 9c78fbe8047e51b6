//! Moving batches from a source to a sink: a reader thread, a bounded channel (the
//! backpressure that keeps memory flat), and the writer on the calling thread.

use crate::connect::Abandon;
use crate::error::{Error, Guard};
use crate::plan::Guards;
use crate::source::{Source, SourceError};
use crate::target::{Load, Sink};
use crate::transform::SourceColumn;
use crate::transform::{self, ZeroDates};
use arrow::record_batch::RecordBatch;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Batches in flight between reader and writer.
const CHANNEL_BATCHES: usize = 2;

#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// How to show progress (the caller knows whether stderr is a terminal).
    pub progress: ProgressMode,
    pub zero_dates: ZeroDates,
    pub guards: Guards,
    /// About how many rows will come (the source's estimate), for percent and ETA.
    pub expected_rows: Option<u64>,
}

/// What a finished copy counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyStats {
    pub rows: u64,
    /// Zero or partial dates seen (kept, nulled, or the first one refused).
    pub zero_dates: u64,
    /// What the commit changed in the target.
    pub applied: crate::incremental::Applied,
}

/// A copy that failed or was stopped: why, and how many rows it had read by then (for the
/// summary: an interrupted copy of a million rows tells how far it got).
#[derive(Debug)]
pub struct Stopped {
    pub error: Error,
    pub rows: u64,
}

impl From<Stopped> for Error {
    fn from(s: Stopped) -> Error {
        s.error
    }
}

/// Copies every row of `source` into `sink` as `load` says, all or nothing.
/// `before_commit` runs last before the target is replaced (the run's lock is checked
/// there).
pub fn copy(
    source: Box<dyn Source>,
    sink: &mut dyn Sink,
    opts: CopyOptions,
    load: &Load,
    before_commit: &mut dyn FnMut() -> Result<(), Error>,
) -> Result<CopyStats, Stopped> {
    let columns = transform::target_columns(source.columns(), opts.zero_dates);
    begin(sink, &columns, load)?;
    finish(
        Reading::start(source, opts.zero_dates),
        sink,
        opts,
        load,
        before_commit,
    )
}

/// As `copy`, from a reading already under way (a job reads the next table while the
/// previous one is written).
pub fn copy_read(
    reading: Reading,
    sink: &mut dyn Sink,
    opts: CopyOptions,
    load: &Load,
    before_commit: &mut dyn FnMut() -> Result<(), Error>,
) -> Result<CopyStats, Stopped> {
    begin(sink, &reading.columns, load)?;
    finish(reading, sink, opts, load, before_commit)
}

/// The sink begun for these columns, or aborted (nothing read yet).
fn begin(sink: &mut dyn Sink, columns: &[SourceColumn], load: &Load) -> Result<(), Stopped> {
    sink.begin(columns, load).map_err(|e| {
        sink.abort();
        Stopped {
            error: e.into(),
            rows: 0,
        }
    })
}

/// The rows written, the guards checked, and the load committed (or staged).
fn finish(
    reading: Reading,
    sink: &mut dyn Sink,
    opts: CopyOptions,
    load: &Load,
    before_commit: &mut dyn FnMut() -> Result<(), Error>,
) -> Result<CopyStats, Stopped> {
    let t0 = Instant::now();
    let result = stream(reading, sink, opts).and_then(|(mut stats, meter)| {
        let rows = stats.rows;
        let mut put_in = || -> Result<CopyStats, Error> {
            let t1 = Instant::now();
            log::debug!(
                "all {} rows written in {:.2} s",
                stats.rows,
                (t1 - t0).as_secs_f64()
            );
            check_guards(opts.guards, stats.rows, sink)?;
            if let Some(find) = &load.deletes {
                sink.delete_too((find.0)(rows)?);
            }
            before_commit()?;
            crate::interrupt::check()?;
            meter.done();
            if load.staged_apart {
                sink.stage(stats.rows)?;
                return Ok(stats);
            }
            log::debug!("committing");
            stats.applied = sink.commit(stats.rows)?;
            log::debug!("committed in {:.2} s", t1.elapsed().as_secs_f64());
            Ok(stats)
        };
        put_in().map_err(|error| Stopped { error, rows })
    });
    if result.is_err() {
        sink.abort();
    }
    result
}

/// A source being read on its own thread into a bounded channel (the backpressure that
/// keeps memory flat). Dropped unfinished, its reading is abandoned.
pub struct Reading {
    /// The columns as the target gets them.
    columns: Vec<SourceColumn>,
    rx: Option<Receiver<RecordBatch>>,
    reader: Option<JoinHandle<Result<CopyStats, SourceError>>>,
    abandon: Abandon,
}

impl Reading {
    /// The reader thread started; its log lines name the table the caller's name.
    pub fn start(source: Box<dyn Source>, zero_dates: ZeroDates) -> Reading {
        let columns = transform::target_columns(source.columns(), zero_dates);
        let (tx, rx) = sync_channel::<RecordBatch>(CHANNEL_BATCHES);
        let abandon = Abandon::default();
        let reader_abandon = abandon.clone();
        let table = crate::logfile::table();
        let reader = std::thread::Builder::new()
            .name("dbsync-reader".into())
            .spawn(move || {
                crate::logfile::set_table(table);
                read_and_transform(source, &tx, zero_dates, &reader_abandon)
            })
            .expect("spawning the reader thread");
        Reading {
            columns,
            rx: Some(rx),
            reader: Some(reader),
            abandon,
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        // Not read to its end: the source's result is abandoned, and the reader stops at
        // its next send (it is not waited for: it may be blocked on the server).
        if self.reader.is_some() {
            self.abandon.abandon();
        }
    }
}

/// Refuses a load that would empty the target, or shrink it by more than allowed.
fn check_guards(guards: Guards, rows: u64, sink: &mut dyn Sink) -> Result<(), Error> {
    let empty_check = rows == 0 && !guards.allow_empty;
    let shrink_check = guards
        .max_shrink_percent
        .filter(|_| rows > 0 || !guards.allow_empty);
    if !empty_check && shrink_check.is_none() {
        return Ok(());
    }
    let current = sink.target_rows()?.unwrap_or(0);
    if current == 0 || rows >= current {
        return Ok(());
    }
    if empty_check {
        return Err(Guard::Empty {
            target: sink.describe(),
            current,
        }
        .into());
    }
    let lost = (current - rows) as f64 * 100.0 / current as f64;
    match shrink_check {
        Some(max) if lost > max => Err(Guard::Shrunk {
            target: sink.describe(),
            rows,
            current,
            lost,
            max,
        }
        .into()),
        _ => Ok(()),
    }
}

/// Every row from the reader thread into `sink`; the meter is handed back to say when the
/// commit starts.
fn stream(
    mut reading: Reading,
    sink: &mut dyn Sink,
    opts: CopyOptions,
) -> Result<(CopyStats, Progress), Stopped> {
    let rx = reading.rx.take().expect("a reading is streamed once");
    // Rows the reader handed over, for a copy that stops short.
    let mut received = 0u64;
    let mut meter = Progress::new(opts.progress, opts.expected_rows);
    let mut written: Result<(), Error> = Ok(());
    // Time spent waiting for the reader: tells which side limits the copy (-v).
    let mut waited = Duration::ZERO;
    loop {
        if let Err(e) = crate::interrupt::check() {
            written = Err(e.into());
            break;
        }
        let t = Instant::now();
        let batch = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => {
                // A slow first row or a stalled source still shows in the log.
                meter.tick();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        waited += t.elapsed();
        received += batch.num_rows() as u64;
        if let Err(e) = sink.write(&batch) {
            written = Err(e.into());
            break;
        }
        meter.add(batch.num_rows() as u64);
    }
    log::debug!(
        "the writer waited {:.2} s for the reader",
        waited.as_secs_f64()
    );
    drop(rx);
    meter.finish();
    // After a failure the reading is dropped unfinished (abandoned, not waited for).
    let stopped = |error: Error| Stopped {
        error,
        rows: received,
    };
    written.map_err(stopped)?;
    let reader = reading.reader.take().expect("the reader is joined once");
    let read = reader.join().unwrap_or_else(|panic| {
        let message = crate::fence::panic_message(panic.as_ref());
        Err(SourceError::Read {
            rows: 0,
            batch: 0,
            message,
        })
    });
    match read {
        Ok(stats) => Ok((stats, meter)),
        Err(e) => Err(stopped(e.into())),
    }
}

/// The reader thread: source batches, through the transform, into the channel.
fn read_and_transform(
    source: Box<dyn Source>,
    tx: &std::sync::mpsc::SyncSender<RecordBatch>,
    zero_dates: ZeroDates,
    abandon: &Abandon,
) -> Result<CopyStats, SourceError> {
    let columns = source.columns().to_vec();
    let mut stats = CopyStats::default();
    let mut refused = None;
    let mut batches = 0u64;
    let rows = source.read(
        &mut |batch| {
            batches += 1;
            let offset = stats.rows;
            stats.rows += batch.num_rows() as u64;
            match transform::apply_zero_dates(batch, &columns, zero_dates) {
                Ok((batch, zeros)) => {
                    stats.zero_dates += zeros;
                    tx.send(batch).is_ok()
                }
                Err(r) => {
                    refused = Some(SourceError::Value {
                        column: r.column,
                        row: offset + r.row as u64 + 1,
                        batch: batches,
                        value: r.value,
                        fix: "set [external_db] zero_dates = keep (copy as is) or null".into(),
                    });
                    false
                }
            }
        },
        abandon,
    )?;
    if let Some(e) = refused {
        return Err(e);
    }
    stats.rows = rows;
    Ok(stats)
}

/// How a copy shows where it is (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Off,
    /// A progress bar on a terminal: percent and ETA when the rows can be estimated, rows,
    /// rows/s and elapsed otherwise.
    Terminal,
    /// A plain log line every few seconds, for cron logs and `log_file`.
    Log,
}

struct Progress {
    mode: ProgressMode,
    start: Instant,
    last: Instant,
    rows: u64,
    expected: Option<u64>,
    bar: Option<indicatif::ProgressBar>,
    /// How long the reading took, once it ended.
    read_in: Duration,
}

impl Progress {
    fn new(mode: ProgressMode, expected: Option<u64>) -> Self {
        let now = Instant::now();
        let bar = (mode == ProgressMode::Terminal).then(|| {
            let (bar, template) = match expected {
                Some(n) => (
                    indicatif::ProgressBar::new(n.max(1)),
                    "{bar:20} {percent:>3}% {human_pos}/~{human_len} rows {rate} ETA {eta}",
                ),
                None => (
                    indicatif::ProgressBar::new_spinner(),
                    "{spinner} {human_pos} rows {rate} {elapsed}",
                ),
            };
            let style = indicatif::ProgressStyle::with_template(template)
                .expect("a valid template")
                .with_key(
                    "rate",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} rows/s", s.per_sec());
                    },
                )
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
            bar
        });
        Progress {
            mode,
            start: now,
            last: now,
            rows: 0,
            expected,
            bar,
            read_in: Duration::ZERO,
        }
    }

    fn add(&mut self, rows: u64) {
        self.rows += rows;
        if let Some(bar) = &self.bar {
            // The estimate may be short: the bar grows rather than passing 100%.
            if bar.length().is_some_and(|n| self.rows > n) {
                bar.set_length(self.rows);
            }
            bar.set_position(self.rows);
            return;
        }
        self.tick();
    }

    /// A log line when the last is a few seconds old (`--progress log`).
    fn tick(&mut self) {
        if self.mode != ProgressMode::Log || self.last.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64();
        let rate = self.rows as f64 / secs.max(1e-9);
        let done = match self.expected {
            Some(n) if n > self.rows && rate > 0.0 => format!(
                " (~{:.0}%, about {:.0} s left)",
                self.rows as f64 * 100.0 / n as f64,
                (n - self.rows) as f64 / rate
            ),
            _ => String::new(),
        };
        log::info!(
            "progress: {} rows{done}, {rate:.0} rows/s, {secs:.0} s",
            self.rows
        );
    }

    fn finish(&mut self) {
        self.read_in = self.start.elapsed();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// After every row was read and written and the checks before the commit passed: the
    /// commit (indexes, the swap or the apply) may take a while too, and a failed run says
    /// so instead.
    fn done(&self) {
        if self.mode == ProgressMode::Log && self.read_in >= Duration::from_secs(5) {
            log::info!(
                "progress: all {} rows read in {:.0} s; committing",
                self.rows,
                self.read_in.as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests;
