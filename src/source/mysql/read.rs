//! Reading the rows: on the job's snapshot in its turn, on a connection of its own, or on
//! one connection per partition.

use super::super::{Emit, SourceError};
use super::lost::read_error;
use super::{batch, MySqlSource};
use crate::connect::session::set_read_timeout;
use crate::connect::Abandon;
use crate::fence::guarded;
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use connectorx::sources::mysql::{MySQLBinarySourceParser, MySQLTypeSystem};
use mysql::prelude::Queryable;
use std::sync::Arc;

impl MySqlSource {
    /// Reads the partitions on as many connections, one thread each, into `emit`.
    pub(super) fn read_partitions(
        &self,
        emit: &mut Emit<'_>,
        abandon: &Abandon,
    ) -> Result<u64, SourceError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RecordBatch, SourceError>>(2);
        std::thread::scope(|scope| {
            for query in &self.read_queries {
                let tx = tx.clone();
                scope.spawn(move || {
                    let r = self.read_one(query, &mut |b| tx.send(Ok(b)).is_ok(), abandon);
                    if let Err(e) = r {
                        let _ = tx.send(Err(e));
                    }
                });
            }
            drop(tx);
            let mut rows = 0u64;
            let result = loop {
                match rx.recv() {
                    Ok(Ok(b)) => {
                        rows += b.num_rows() as u64;
                        if !emit(b) {
                            break Ok(rows);
                        }
                    }
                    Ok(Err(e)) => break Err(e),
                    Err(_) => break Ok(rows),
                }
            };
            // Dropping the receiver stops the other partitions' readers at their next send;
            // after a failure they are not waited for, nor their results drained.
            if result.is_err() {
                abandon.abandon();
            }
            drop(rx);
            result
        })
    }

    pub(super) fn read_one(
        &self,
        query: &str,
        emit: &mut Emit<'_>,
        abandon: &Abandon,
    ) -> Result<u64, SourceError> {
        if let Some(turn) = &self.snapshot {
            let mut session = turn.wait();
            let fd = session.fd();
            let registered = abandon.register(fd);
            let read = self.read_on(&mut session, fd, query, emit, abandon);
            // The snapshot's connection keeps its ordinary read timeout for the next table.
            set_read_timeout(fd, Some(self.endpoint.read_timeout));
            drop((registered, session));
            turn.end();
            return read;
        }
        let redact = |m: &str| crate::connect::redact(m, &self.endpoint);
        let failed = |e: &dyn std::fmt::Display| read_error(0, 0, redact(&e.to_string()));
        let session = self
            .endpoint
            .session(self.mode, true, &Default::default())
            .map_err(|e| failed(&e))?;
        let (mut conn, fd, _everywhere) = session.into_parts();
        // Dropped before `conn` (declared later), and after the result that borrows it.
        let _registered = abandon.register(fd);
        self.read_on(&mut conn, fd, query, emit, abandon)
    }

    /// Reads `query` on `conn` (whose socket is `fd`) through `emit`.
    fn read_on(
        &self,
        conn: &mut mysql::Conn,
        fd: Option<std::os::fd::RawFd>,
        query: &str,
        emit: &mut Emit<'_>,
        abandon: &Abandon,
    ) -> Result<u64, SourceError> {
        let ep = &self.endpoint;
        let id = conn.connection_id();
        // Until the first rows arrive the server may rightly compute for long (a sort).
        set_read_timeout(fd, Some(self.statement_timeout));
        let stmt = conn
            .prep(query)
            .map_err(|e| self.start_failure("preparing the query", e))?;
        let types: Vec<MySQLTypeSystem> = stmt
            .columns()
            .iter()
            .map(|c| MySQLTypeSystem::from((&c.column_type(), &c.flags(), c.character_set())))
            .collect();
        // A stop ends the statement on the server too (not only the read here).
        let _running = crate::connect::cleanup::running(ep, id, query);
        let result = match conn.exec_iter(stmt, ()) {
            Ok(iter) => {
                let mut parser = MySQLBinarySourceParser::new(iter, &types);
                let result = self.pump(&mut parser, &types, fd, emit);
                // Ended early (a failure here or elsewhere): the rest of the result is
                // abandoned, not drained, when the parser is dropped.
                if !matches!(result, Ok((_, true))) {
                    abandon.abandon();
                }
                result
            }
            Err(e) => Err(self.start_failure("running the query", e)),
        };
        // A stop abandons the read, not the statement: a long sort would go on on the
        // server after the run ended.
        if !matches!(result, Ok((_, true))) && crate::interrupt::stopping().is_some() {
            abandon.abandon();
            crate::connect::cleanup::kill_query(ep, id, query);
        }
        result.map(|(rows, _)| rows)
    }

    /// Moves rows from the parser into batches and through `emit`; the rows read, and
    /// whether the result was read to its end.
    fn pump<'a>(
        &self,
        parser: &mut MySQLBinarySourceParser<'a>,
        types: &[MySQLTypeSystem],
        fd: Option<std::os::fd::RawFd>,
        emit: &mut Emit<'_>,
    ) -> Result<(u64, bool), SourceError> {
        let ep = &self.endpoint;
        let temporal: Vec<_> = self
            .columns
            .iter()
            .map(|c| crate::transform::temporal_kind(&c.ty))
            .collect();
        let mut reader = batch::BatchReader::new(types, &temporal, self.batch_rows);
        // Rows are streaming: from then on, silence means a dead link.
        let read_timeout = ep.read_timeout;
        reader.on_first_rows(move || set_read_timeout(fd, Some(read_timeout)));
        let schema = Arc::new(Schema::new(
            self.columns
                .iter()
                .enumerate()
                .map(|(i, c)| Field::new(&c.name, reader.data_type(i), true))
                .collect::<Vec<_>>(),
        ));
        let (mut rows, mut batches) = (0u64, 0u64);
        loop {
            // The parser reports a value it cannot convert by panicking; the fence turns
            // that into an error naming the column and row it was on.
            let filled = guarded(|| reader.fill(parser))
                .unwrap_or_else(|m| Err(batch::ReadFailure::Panic(m)));
            let done = match filled {
                Ok(done) => done,
                Err(f) => {
                    let (row, col) = reader.position();
                    return Err(self.fill_failure(&f, rows, batches, row, col));
                }
            };
            let n = reader.len();
            if n > 0 {
                batches += 1;
                rows += n as u64;
                let arrays = reader.finish().map_err(|(col, e)| {
                    let column = self.column_name(col);
                    let message = format!(
                        "column `{column}` holds text that is not valid UTF-8 ({e}); select it as bytes instead (CAST(`{column}` AS BINARY))"
                    );
                    read_error(rows - n as u64, batches, message)
                })?;
                let b =
                    RecordBatch::try_new(schema.clone(), arrays).expect("arrays match the schema");
                if !emit(b) {
                    return Ok((rows, false));
                }
            }
            if done {
                return Ok((rows, true));
            }
        }
    }
}
