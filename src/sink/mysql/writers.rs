//! The writer connections of the MySQL sink and the bounded channel that feeds them: either
//! prepared multi-row INSERTs (`Piece::Rows`) or one `LOAD DATA LOCAL INFILE` stream per
//! connection (`Piece::Text`). A writer records its own failure; the sink checks it
//! between batches and when it joins them.

use super::encode::Chunk;
use crate::connect::{Endpoint, Session};
use mysql::prelude::Queryable;
use mysql::{LocalInfileHandler, Params, Statement};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Work for a writer.
pub enum Piece {
    /// Rows of one INSERT.
    Rows(Chunk),
    /// Lines of the LOAD DATA stream.
    Text(Vec<u8>),
}

/// How the writers write.
#[derive(Debug, Clone)]
pub enum Statements {
    /// `INSERT INTO t VALUES ` and the number of columns.
    Insert { head: String, ncols: usize },
    /// The LOAD DATA statement each connection runs once.
    LoadData { sql: String },
}

pub struct Writers {
    tx: Option<SyncSender<Piece>>,
    handles: Vec<JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
    /// Set when the load is abandoned: writers stop at their next piece.
    stop: Arc<AtomicBool>,
    /// Rows the server reported stored by LOAD DATA streams that finished.
    loaded: Arc<AtomicU64>,
}

type Shared = Arc<Mutex<Receiver<Piece>>>;

impl Writers {
    /// Starts one thread per connection.
    pub fn start(conns: Vec<Session>, ep: &Endpoint, how: &Statements) -> Writers {
        let (tx, rx) = sync_channel::<Piece>(conns.len() * 2);
        let rx: Shared = Arc::new(Mutex::new(rx));
        let failure = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let loaded = Arc::new(AtomicU64::new(0));
        let handles = conns
            .into_iter()
            .enumerate()
            .map(|(i, conn)| {
                let (rx, failure, ep, how) = (
                    Arc::clone(&rx),
                    Arc::clone(&failure),
                    ep.clone(),
                    how.clone(),
                );
                let stop = Arc::clone(&stop);
                let loaded = Arc::clone(&loaded);
                std::thread::Builder::new()
                    .name(format!("dbsync-writer-{i}"))
                    .spawn(move || {
                        let r = match &how {
                            Statements::Insert { head, ncols } => {
                                insert(conn, &rx, &failure, &stop, head, *ncols)
                            }
                            Statements::LoadData { sql } => {
                                load(conn, rx, &stop, sql).map(|rows| {
                                    loaded.fetch_add(rows, Ordering::SeqCst);
                                })
                            }
                        };
                        if let Err(e) = r {
                            let message = crate::report::redact(&e, &ep);
                            failure
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(message);
                        }
                    })
                    .expect("spawning a writer thread")
            })
            .collect();
        Writers {
            tx: Some(tx),
            handles,
            failure,
            stop,
            loaded,
        }
    }

    /// Rows stored by the LOAD DATA streams, as the server counted them.
    pub fn loaded(&self) -> u64 {
        self.loaded.load(Ordering::SeqCst)
    }

    /// The load is abandoned: writers drop what is queued instead of writing it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Hands a piece to the writers; `false` when they have stopped.
    pub fn send(&self, piece: Piece) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(piece).is_ok())
    }

    pub fn failed(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Closes the channel and waits for the writers; the first failure, if any.
    pub fn join(&mut self) -> Option<String> {
        self.tx = None;
        for h in self.handles.drain(..) {
            if let Err(p) = h.join() {
                let message = crate::fence::panic_message(p.as_ref());
                self.failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(message);
            }
        }
        self.failed()
    }
}

/// Executes INSERT chunks until the channel closes or one fails (or another writer did).
/// The statement for a full chunk is prepared once; odd sizes (a batch's tail) are
/// prepared, used and closed.
fn insert(
    mut conn: Session,
    rx: &Mutex<Receiver<Piece>>,
    failure: &Mutex<Option<String>>,
    stop: &AtomicBool,
    head: &str,
    ncols: usize,
) -> Result<(), String> {
    let sql = |rows: usize| {
        let one = format!("({})", vec!["?"; ncols].join(","));
        format!("{head}{}", vec![one.as_str(); rows].join(","))
    };
    let mut prepared: HashMap<usize, Statement> = HashMap::new();
    let mut run = |conn: &mut Session, chunk: Chunk| -> Result<(), mysql::Error> {
        let stmt = match prepared.get(&chunk.rows) {
            Some(s) => s.clone(),
            None => {
                let s = conn.prep(sql(chunk.rows))?;
                if prepared.len() < 4 {
                    prepared.insert(chunk.rows, s.clone());
                }
                s
            }
        };
        conn.exec_drop(&stmt, Params::Positional(chunk.params))?;
        if !prepared.contains_key(&chunk.rows) {
            conn.close(stmt)?;
        }
        Ok(())
    };
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(piece) = next else { return Ok(()) };
        if stop.load(Ordering::SeqCst)
            || failure.lock().unwrap_or_else(|p| p.into_inner()).is_some()
        {
            return Ok(());
        }
        let Piece::Rows(chunk) = piece else {
            return Err("internal: a LOAD DATA piece reached an INSERT writer".into());
        };
        run(&mut conn, chunk).map_err(|e| e.to_string())?;
    }
}

/// Runs the LOAD DATA statement once; its "file" is the channel's text until it closes.
/// The handler ignores the file name the server asks for: it only ever serves this stream.
fn load(mut conn: Session, rx: Shared, stop: &Arc<AtomicBool>, sql: &str) -> Result<u64, String> {
    let stop = Arc::clone(stop);
    let handler = LocalInfileHandler::new(move |_requested, out| loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        if stop.load(Ordering::SeqCst) {
            // Abandoned: end the stream; the staging table it fills is dropped.
            return out.flush();
        }
        match next {
            // Sent as its own packet at once: the crate would otherwise buffer up to
            // max_allowed_packet (64 MiB here) before the server sees a byte, and the
            // server would sit idle while each buffer crosses the link.
            Ok(Piece::Text(bytes)) => {
                out.write_all(&bytes)?;
                out.flush()?
            }
            Ok(Piece::Rows(_)) => {
                return Err(std::io::Error::other(
                    "internal: an INSERT piece reached a LOAD DATA writer",
                ))
            }
            Err(_) => return out.flush(),
        }
    });
    conn.set_local_infile_handler(Some(handler));
    conn.query_drop(sql).map_err(|e| e.to_string())?;
    let warnings = conn.warnings();
    if warnings == 0 {
        return Ok(conn.affected_rows());
    }
    // Under LOCAL the server turns data errors into warnings: any is a failed load.
    let first: Vec<(String, u32, String)> = conn.query("SHOW WARNINGS LIMIT 3").unwrap_or_default();
    let shown: Vec<String> = first
        .iter()
        .map(|(level, code, msg)| format!("{level} {code}: {msg}"))
        .collect();
    Err(format!(
        "LOAD DATA reported {warnings} warning(s), which under LOCAL stand for values the \
         server bent or dropped, so the load is refused: {}",
        shown.join("; ")
    ))
}
