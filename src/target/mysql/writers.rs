//! The writer connections of the MySQL sink and the bounded channel that feeds them: either
//! prepared multi-row INSERTs (`Piece::Rows`) or one `LOAD DATA LOCAL INFILE` stream per
//! connection (`Piece::Text`). A writer records its own failure; the sink checks it
//! between batches and when it joins them.

use super::encode::Chunk;
use super::load;
use super::sink::SQL_MODE;
use super::LoadMethod;
use crate::connect::session::{StallWatch, Stalled};
use crate::connect::wait::{broken, Broken, Waiting};
use crate::connect::Setup;
use crate::connect::{Abandon, Endpoint, Session};
use crate::target::SinkError;
use crate::transform::{quote_mysql, SourceColumn};
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
    handles: Vec<JoinHandle<Option<Session>>>,
    /// The sessions of the writers that ended well, once joined (for the job's pool).
    idle: Vec<Session>,
    failure: Arc<Mutex<Option<String>>>,
    /// Set when the load is abandoned: writers stop at their next piece.
    stop: Arc<AtomicBool>,
    /// Rows the server reported stored by LOAD DATA streams that finished.
    loaded: Arc<AtomicU64>,
    /// The writers' sockets, to cut them when the load is abandoned after a failure.
    sockets: Abandon,
    /// Cuts a writer whose rows the server stopped acknowledging (see `StallWatch`).
    _watch: StallWatch,
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
        let n = conns.len();
        let sockets = Abandon::default();
        let watch = sockets.cut_stalled(ep.read_timeout);
        let handles = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut conn)| {
                conn.also_in(&sockets);
                let (rx, failure, ep, how) = (
                    Arc::clone(&rx),
                    Arc::clone(&failure),
                    ep.clone(),
                    how.clone(),
                );
                let stop = Arc::clone(&stop);
                let loaded = Arc::clone(&loaded);
                let me = Writer {
                    who: format!("writer {} of {n}", i + 1),
                    ep: ep.clone(),
                    stalled: watch.stalled(),
                };
                std::thread::Builder::new()
                    .name(format!("dbsync-writer-{i}"))
                    .spawn(move || {
                        let r = match &how {
                            Statements::Insert { head, ncols } => {
                                me.insert(&mut conn, &rx, &failure, &stop, head, *ncols)
                            }
                            Statements::LoadData { sql } => {
                                me.load(&mut conn, rx, &stop, sql).map(|rows| {
                                    loaded.fetch_add(rows, Ordering::SeqCst);
                                })
                            }
                        };
                        match r {
                            Ok(()) if !stop.load(Ordering::SeqCst) => {
                                conn.alone();
                                Some(conn)
                            }
                            Ok(()) => None,
                            Err(e) => {
                                let message = crate::connect::redact(&e, &ep);
                                failure
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .get_or_insert(message);
                                None
                            }
                        }
                    })
                    .expect("spawning a writer thread")
            })
            .collect();
        Writers {
            tx: Some(tx),
            handles,
            idle: Vec::new(),
            failure,
            stop,
            loaded,
            sockets,
            _watch: watch,
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

    /// The load is abandoned after a connection failed: the writers' connections may be as
    /// dead, so none waits for the server's answer; each is cut and given up.
    pub fn cut(&self) {
        self.stop();
        self.sockets.abandon();
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
            match h.join() {
                Ok(Some(session)) => self.idle.push(session),
                Ok(None) => {}
                Err(p) => {
                    let message = crate::fence::panic_message(p.as_ref());
                    self.failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(message);
                }
            }
        }
        self.failed()
    }

    /// The sessions of the writers that ended well, once joined.
    pub fn take_sessions(&mut self) -> Vec<Session> {
        std::mem::take(&mut self.idle)
    }
}

/// One writer connection: which one, to name it when it fails.
struct Writer {
    who: String,
    ep: Endpoint,
    stalled: Stalled,
}

impl Writer {
    /// Executes INSERT chunks until the channel closes or one fails (or another writer did).
    /// The statement for a full chunk is prepared once; odd sizes (a batch's tail) are
    /// prepared, used and closed.
    fn insert(
        &self,
        conn: &mut Session,
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
        let done = loop {
            let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok(piece) = next else { break Ok(()) };
            if stop.load(Ordering::SeqCst)
                || failure.lock().unwrap_or_else(|p| p.into_inner()).is_some()
            {
                break Ok(());
            }
            let Piece::Rows(chunk) = piece else {
                break Err("internal: a LOAD DATA piece reached an INSERT writer".into());
            };
            if let Err(e) = run(conn, chunk) {
                break Err(self.failure(conn, "inserting rows", e));
            }
        };
        // The session may serve a job's next table: its statements (up to 65,535
        // parameters each) are let go rather than left in the connection's cache.
        if done.is_ok() {
            for (_, stmt) in prepared.drain() {
                let _ = conn.close(stmt);
            }
        }
        done
    }

    /// Runs the LOAD DATA statement once; its "file" is the channel's text until it closes.
    /// The handler ignores the file name the server asks for: it only ever serves this stream.
    fn load(
        &self,
        conn: &mut Session,
        rx: Shared,
        stop: &Arc<AtomicBool>,
        sql: &str,
    ) -> Result<u64, String> {
        let stop = Arc::clone(stop);
        // Once set, the server holds every row and the wait is for its answer.
        let sent_all = Arc::new(AtomicBool::new(false));
        let sent = Arc::clone(&sent_all);
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
                Err(_) => {
                    out.flush()?;
                    sent.store(true, Ordering::SeqCst);
                    return Ok(());
                }
            }
        });
        conn.set_local_infile_handler(Some(handler));
        if let Err(e) = conn.query_drop(sql) {
            let what = if sent_all.load(Ordering::SeqCst) {
                "waiting for the server to store the rows, after all rows were sent (LOAD DATA)"
            } else {
                "streaming rows (LOAD DATA)"
            };
            return Err(self.failure(conn, what, e));
        }
        let warnings = conn.warnings();
        if warnings == 0 {
            return Ok(conn.affected_rows());
        }
        // Under LOCAL the server turns data errors into warnings: any is a failed load.
        let first: Vec<(String, u32, String)> =
            conn.query("SHOW WARNINGS LIMIT 3").unwrap_or_default();
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

    /// The failure in words; a broken connection is given up first, so that dropping it
    /// (the driver says goodbye, closes its statements) does not wait on it again.
    fn failure(&self, conn: &mut Session, what: &str, e: mysql::Error) -> String {
        let how = match self.stalled.cut(conn.fd()) {
            true => Some(Broken::Silent),
            false => broken(&e),
        };
        let Some(how) = how else {
            return e.to_string();
        };
        conn.give_up();
        Waiting {
            who: &self.who,
            what,
            bound: self.ep.read_timeout,
            setting: &self.ep.read_timeout_setting(),
        }
        .failed(how)
    }
}

impl super::MySqlSink {
    fn connect_writer(&self) -> Result<Session, SinkError> {
        if let Some(session) = self.target.pool.as_ref().and_then(|p| p.take_writer()) {
            return Ok(session);
        }
        // Not `unique_checks = 0, foreign_key_checks = 0`: together they put MariaDB's
        // InnoDB into its bulk-insert mode for an empty table, which measured twice the
        // server's CPU of a plain load (6.0 s against 2.7 s for 1M rows, LOAD DATA).
        let setup = Setup {
            settings: vec![format!("SESSION sql_mode = '{SQL_MODE}'")],
            // Read in `begin`; a LOAD DATA stream is cut into packets of at most this.
            max_packet: Some(self.max_packet),
        };
        self.ep()
            .session(self.mode, true, &setup)
            .map_err(|e| self.err("opening a writer connection", e))
    }

    /// Starts the writers: one LOAD DATA stream per connection when the server allows it
    /// (and `load_method` does), prepared multi-row INSERTs otherwise.
    pub(super) fn start_writers(&mut self, columns: &[SourceColumn]) -> Result<(), SinkError> {
        let allowed = self.local_infile == Some(1);
        let load = match self.target.load_method {
            LoadMethod::Insert => false,
            LoadMethod::Auto => allowed,
            LoadMethod::LoadData if allowed => true,
            LoadMethod::LoadData => {
                return Err(self.err(
                    "loading rows",
                    "the server does not allow LOAD DATA LOCAL INFILE (@@local_infile = 0): \
                     set [azure_mysql_db] load_method = auto or insert, or turn local_infile on",
                ))
            }
        };
        self.fields = columns
            .iter()
            .map(|c| load::Field::for_type(&c.ty))
            .collect();
        // Two streams measured no faster than one, even through a 20 ms link; INSERTs,
        // which each wait for their answer, gain from a second connection.
        let connections = self.target.writers.unwrap_or(if load { 1 } else { 2 });
        let how = if load {
            log::info!(
                "loading with LOAD DATA LOCAL INFILE, streamed ({} connections)",
                connections
            );
            Statements::LoadData {
                sql: load::statement(&self.staging, &self.column_names, &self.fields),
            }
        } else {
            log::info!(
                "loading with prepared multi-row INSERTs ({} connections)",
                connections
            );
            Statements::Insert {
                head: format!("INSERT INTO {} VALUES ", quote_mysql(&self.staging)),
                ncols: self.column_names.len(),
            }
        };
        let conns = (0..connections)
            .map(|_| self.connect_writer())
            .collect::<Result<Vec<_>, _>>()?;
        self.writers = Some(Writers::start(conns, self.ep(), &how));
        self.statements = Some(how);
        Ok(())
    }
}
