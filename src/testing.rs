//! In-memory stand-ins for a source and a sink, for unit tests of what moves rows between
//! them (the pipeline, the incremental decision, retries) without a server. Integration
//! tests in `tests/` use the real servers.

use crate::connect::Abandon;
use crate::incremental::{Applied, Apply, Filter, TargetState};
use crate::source::{Emit, Source, SourceError};
use crate::target::{Load, Sink, SinkError};
use crate::transform::{SourceColumn, SqlType};
use arrow::array::{ArrayRef, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// A one-column (`id BIGINT`) source of these batches of ids; it fails after `fail_after`
/// batches when set.
pub struct FakeSource {
    pub columns: Vec<SourceColumn>,
    pub batches: Vec<RecordBatch>,
    pub fail_after: Option<usize>,
    pub filter: Option<Filter>,
}

impl FakeSource {
    pub fn ids(batches: &[std::ops::Range<i64>]) -> FakeSource {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let batches = batches
            .iter()
            .map(|r| {
                let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(r.clone()));
                RecordBatch::try_new(schema.clone(), vec![ids]).expect("one column")
            })
            .collect();
        FakeSource {
            columns: vec![SourceColumn {
                name: "id".into(),
                ty: SqlType::Int {
                    bytes: 8,
                    unsigned: false,
                },
                nullable: false,
                exact_mysql_type: None,
                collation: None,
            }],
            batches,
            fail_after: None,
            filter: None,
        }
    }
}

impl Source for FakeSource {
    fn describe(&self) -> String {
        "fake source".into()
    }

    fn columns(&self) -> &[SourceColumn] {
        &self.columns
    }

    fn restrict(&mut self, filter: &Filter) {
        self.filter = Some(filter.clone());
    }

    fn read(self: Box<Self>, emit: &mut Emit<'_>, _abandon: &Abandon) -> Result<u64, SourceError> {
        let mut rows = 0;
        for (i, b) in self.batches.into_iter().enumerate() {
            if self.fail_after == Some(i) {
                return Err(SourceError::Read {
                    rows,
                    batch: i as u64 + 1,
                    message: "the fake source fails here".into(),
                });
            }
            rows += b.num_rows() as u64;
            if !emit(b) {
                break;
            }
        }
        Ok(rows)
    }
}

/// A sink that keeps what it is given and says what happened to it.
#[derive(Default)]
pub struct FakeSink {
    pub state: Option<TargetState>,
    /// Rows the target holds before the run (`None`: no table).
    pub held: Option<u64>,
    pub apply: Option<Apply>,
    pub began: Option<Vec<SourceColumn>>,
    pub written: u64,
    /// Fails the write of this batch (1 = the first).
    pub fail_write: Option<u64>,
    pub batches: u64,
    pub staged: Option<u64>,
    pub committed: Option<u64>,
    pub aborted: bool,
}

impl Sink for FakeSink {
    fn describe(&self) -> String {
        "fake target".into()
    }

    fn inspect(&mut self, _key: &str, _read_max: bool) -> Result<Option<TargetState>, SinkError> {
        Ok(self.state.clone())
    }

    fn begin(&mut self, columns: &[SourceColumn], load: &Load) -> Result<(), SinkError> {
        self.apply = Some(load.apply.clone());
        self.began = Some(columns.to_vec());
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.batches += 1;
        if self.fail_write == Some(self.batches) {
            return Err(SinkError::Value {
                batch: self.batches,
                row: 0,
                column: "id".into(),
                message: "the fake sink refuses this batch".into(),
            });
        }
        self.written += batch.num_rows() as u64;
        Ok(())
    }

    fn target_rows(&mut self) -> Result<Option<u64>, SinkError> {
        Ok(self.held)
    }

    fn stage(&mut self, rows_read: u64) -> Result<(), SinkError> {
        if rows_read != self.written {
            return Err(SinkError::Count {
                staged: self.written,
                read: rows_read,
            });
        }
        self.staged = Some(rows_read);
        Ok(())
    }

    fn swap(&mut self) -> Result<Applied, SinkError> {
        self.committed = self.staged;
        Ok(Applied {
            inserted: self.staged.unwrap_or(0),
            ..Applied::default()
        })
    }

    fn delete_too(&mut self, _deletion: crate::target::Deletion) {}

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn abort(&mut self) {
        self.aborted = true;
    }
}
