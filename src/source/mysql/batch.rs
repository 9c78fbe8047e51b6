//! Building Arrow batches from connectorx's MySQL parser, one bounded batch at a time.
//!
//! connectorx's own stream destination fills an unbounded channel from a thread of its
//! own, so a slow writer lets batches pile up. Reading through its parser here instead
//! keeps one batch in hand: the reader blocks on the pipeline's bounded channel.

use crate::source::MAX_BATCH_BYTES;
use crate::transform::temporal::{self, Temporal};
use arrow::array::{
    ArrayRef, BinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, Int8Builder, StringArray, UInt16Builder, UInt32Builder, UInt64Builder,
    UInt8Builder,
};
use arrow::datatypes::DataType;
use connectorx::sources::mysql::{MySQLSourceError, MySQLTypeSystem};
use connectorx::sources::{PartitionParser, Produce};
use std::fmt;
use std::sync::Arc;

/// Why a batch could not be filled.
pub enum ReadFailure {
    Source(MySQLSourceError),
    Panic(String),
    Value(String),
}

impl ReadFailure {
    /// The connection failed (lost, reset, timed out), as opposed to a value that could
    /// not be read.
    pub fn is_connection(&self) -> bool {
        match self {
            ReadFailure::Source(MySQLSourceError::MySQLError(
                mysql::Error::IoError(_) | mysql::Error::CodecError(_),
            )) => true,
            ReadFailure::Source(MySQLSourceError::MySQLError(mysql::Error::DriverError(_))) => true,
            ReadFailure::Source(MySQLSourceError::MySQLError(mysql::Error::MySqlError(e))) => {
                crate::retry::is_transient_code(e.code)
            }
            _ => false,
        }
    }
}

impl ReadFailure {
    /// How the connection broke, when it did (see `connect::wait`).
    pub fn broken(&self) -> Option<crate::connect::wait::Broken> {
        match self {
            ReadFailure::Source(MySQLSourceError::MySQLError(e)) => crate::connect::wait::broken(e),
            _ => None,
        }
    }
}

impl fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadFailure::Source(e) => write!(f, "{e}"),
            ReadFailure::Panic(m) | ReadFailure::Value(m) => f.write_str(m),
        }
    }
}

impl From<MySQLSourceError> for ReadFailure {
    fn from(e: MySQLSourceError) -> Self {
        ReadFailure::Source(e)
    }
}

/// The Arrow type each connectorx MySQL type is read into. DECIMAL and JSON are taken as
/// the text the binary protocol carries them in. Temporal columns are cast to text on the
/// server (see `transform::read_expr`); should one arrive anyway, it is rendered here.
pub fn arrow_type(t: MySQLTypeSystem) -> DataType {
    use MySQLTypeSystem as T;
    match t {
        T::Tiny(_) => DataType::Int8,
        T::Short(_) | T::Year(_) => DataType::Int16,
        T::Long(_) | T::Int24(_) => DataType::Int32,
        T::LongLong(_) => DataType::Int64,
        T::UTiny(_) => DataType::UInt8,
        T::UShort(_) => DataType::UInt16,
        T::ULong(_) | T::UInt24(_) => DataType::UInt32,
        T::ULongLong(_) => DataType::UInt64,
        T::Float(_) => DataType::Float32,
        T::Double(_) => DataType::Float64,
        T::TinyBlob(_) | T::Blob(_) | T::MediumBlob(_) | T::LongBlob(_) | T::Bit(_) => {
            DataType::Binary
        }
        T::Char(_)
        | T::VarChar(_)
        | T::Enum(_)
        | T::Json(_)
        | T::Date(_)
        | T::Time(_)
        | T::Datetime(_)
        | T::Timestamp(_)
        | T::Decimal(_) => DataType::Utf8,
    }
}

enum Col {
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    /// Text collected as bytes and checked as UTF-8 once per batch (`finish`), which
    /// measured cheaper than checking each value as it arrives.
    Text(BinaryBuilder),
    Bytes(BinaryBuilder),
}

pub struct BatchReader {
    types: Vec<MySQLTypeSystem>,
    /// Columns read as numbers and rendered as MySQL's temporal text.
    temporal: Vec<Option<Temporal>>,
    scratch: Vec<u8>,
    cols: Vec<Col>,
    capacity: usize,
    rows: usize,
    col: usize,
    /// Called once, when the server has sent the first rows (or said there are none).
    on_first_rows: Option<Box<dyn FnOnce()>>,
}

impl BatchReader {
    pub fn new(types: &[MySQLTypeSystem], temporal: &[Option<Temporal>], capacity: usize) -> Self {
        let mut r = BatchReader {
            types: types.to_vec(),
            temporal: temporal.to_vec(),
            scratch: Vec::with_capacity(32),
            cols: Vec::new(),
            capacity,
            rows: 0,
            col: 0,
            on_first_rows: None,
        };
        r.cols = r.fresh();
        r
    }

    /// Runs `f` once the first rows (or the end) arrive.
    pub fn on_first_rows(&mut self, f: impl FnOnce() + 'static) {
        self.on_first_rows = Some(Box::new(f));
    }

    /// The Arrow type column `i` is built as.
    pub fn data_type(&self, i: usize) -> DataType {
        match self.temporal[i] {
            Some(_) => DataType::Utf8,
            None => arrow_type(self.types[i]),
        }
    }

    fn fresh(&self) -> Vec<Col> {
        let n = self.capacity;
        (0..self.types.len())
            .map(|i| match self.data_type(i) {
                DataType::Int8 => Col::I8(Int8Builder::with_capacity(n)),
                DataType::Int16 => Col::I16(Int16Builder::with_capacity(n)),
                DataType::Int32 => Col::I32(Int32Builder::with_capacity(n)),
                DataType::Int64 => Col::I64(Int64Builder::with_capacity(n)),
                DataType::UInt8 => Col::U8(UInt8Builder::with_capacity(n)),
                DataType::UInt16 => Col::U16(UInt16Builder::with_capacity(n)),
                DataType::UInt32 => Col::U32(UInt32Builder::with_capacity(n)),
                DataType::UInt64 => Col::U64(UInt64Builder::with_capacity(n)),
                DataType::Float32 => Col::F32(Float32Builder::with_capacity(n)),
                DataType::Float64 => Col::F64(Float64Builder::with_capacity(n)),
                DataType::Binary => Col::Bytes(BinaryBuilder::with_capacity(n, n * 16)),
                _ => Col::Text(BinaryBuilder::with_capacity(n, n * 16)),
            })
            .collect()
    }

    /// Bytes of text and binary values in the batch being built.
    fn var_bytes(&self) -> usize {
        self.cols
            .iter()
            .map(|c| match c {
                Col::Text(b) | Col::Bytes(b) => b.values_slice().len(),
                _ => 0,
            })
            .sum()
    }

    /// Rows in the batch being built.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// (row within the batch, column) being read, for error messages.
    pub fn position(&self) -> (usize, usize) {
        (self.rows, self.col)
    }

    /// The batch's arrays; the reader starts a new batch. `Err` names the column whose
    /// text is not valid UTF-8.
    pub fn finish(&mut self) -> Result<Vec<ArrayRef>, (usize, String)> {
        let fresh = self.fresh();
        let cols = std::mem::replace(&mut self.cols, fresh);
        self.rows = 0;
        cols.into_iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(match c {
                    Col::I8(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Col::I16(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Col::I32(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Col::I64(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Col::U8(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Col::U16(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Col::U32(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Col::U64(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Col::F32(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Col::F64(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Col::Text(mut b) => Arc::new(
                        StringArray::try_from_binary(b.finish()).map_err(|e| (i, e.to_string()))?,
                    ) as ArrayRef,
                    Col::Bytes(mut b) => Arc::new(b.finish()) as ArrayRef,
                })
            })
            .collect()
    }

    /// Reads rows until the batch is full or the result ends; `Ok(true)` at the end.
    pub fn fill<'a, P>(&mut self, parser: &mut P) -> Result<bool, ReadFailure>
    where
        P: PartitionParser<'a, TypeSystem = MySQLTypeSystem, Error = MySQLSourceError>,
        P: for<'r> Produce<'r, Option<i8>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<i16>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<i32>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<i64>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<u8>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<u16>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<u32>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<u64>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<f32>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<f64>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<Vec<u8>>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<chrono::NaiveDate>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<chrono::NaiveTime>, Error = MySQLSourceError>
            + for<'r> Produce<'r, Option<chrono::NaiveDateTime>, Error = MySQLSourceError>,
    {
        use MySQLTypeSystem as T;
        while self.rows < self.capacity {
            let (n, last) = parser.fetch_next()?;
            if let Some(f) = self.on_first_rows.take() {
                f();
            }
            let take = n.min(self.capacity - self.rows);
            for _ in 0..take {
                for c in 0..self.cols.len() {
                    self.col = c;
                    match (&mut self.cols[c], self.types[c]) {
                        (Col::I8(b), _) => b.append_option(parser.produce()?),
                        (Col::I16(b), _) => b.append_option(parser.produce()?),
                        (Col::I32(b), _) => b.append_option(parser.produce()?),
                        (Col::I64(b), _) => b.append_option(parser.produce()?),
                        (Col::U8(b), _) => b.append_option(parser.produce()?),
                        (Col::U16(b), _) => b.append_option(parser.produce()?),
                        (Col::U32(b), _) => b.append_option(parser.produce()?),
                        (Col::U64(b), _) => b.append_option(parser.produce()?),
                        (Col::F32(b), _) => b.append_option(parser.produce()?),
                        (Col::F64(b), _) => b.append_option(parser.produce()?),
                        (Col::Bytes(b), _) => {
                            b.append_option(Produce::<Option<Vec<u8>>>::produce(parser)?)
                        }

                        (Col::Text(b), t) if self.temporal[c].is_some() => {
                            let kind = self.temporal[c].expect("checked");
                            let number: Option<Vec<u8>> = match t {
                                T::LongLong(_)
                                | T::Long(_)
                                | T::Int24(_)
                                | T::Short(_)
                                | T::Tiny(_) => {
                                    let v: Option<i64> = parser.produce()?;
                                    v.map(|v| itoa::Buffer::new().format(v).as_bytes().to_vec())
                                }
                                _ => Produce::<Option<Vec<u8>>>::produce(parser)?,
                            };
                            match number {
                                None => b.append_null(),
                                Some(num) => {
                                    temporal::render(kind, &num, &mut self.scratch).ok_or_else(
                                        || {
                                            ReadFailure::Value(format!(
                                                "{:?} is not a {kind:?} value",
                                                String::from_utf8_lossy(&num)
                                            ))
                                        },
                                    )?;
                                    b.append_value(&self.scratch)
                                }
                            }
                        }
                        (Col::Text(b), T::Date(_)) => {
                            let v: Option<chrono::NaiveDate> = parser.produce()?;
                            b.append_option(v.map(|v| v.format("%Y-%m-%d").to_string()))
                        }
                        (Col::Text(b), T::Time(_)) => {
                            let v: Option<chrono::NaiveTime> = parser.produce()?;
                            b.append_option(v.map(|v| v.format("%H:%M:%S%.f").to_string()))
                        }
                        (Col::Text(b), T::Datetime(_) | T::Timestamp(_)) => {
                            let v: Option<chrono::NaiveDateTime> = parser.produce()?;
                            b.append_option(v.map(|v| v.format("%Y-%m-%d %H:%M:%S%.f").to_string()))
                        }
                        (Col::Text(b), _) => {
                            b.append_option(Produce::<Option<Vec<u8>>>::produce(parser)?)
                        }
                    }
                }
                self.col = 0;
                self.rows += 1;
                if self.var_bytes() >= MAX_BATCH_BYTES {
                    // Full by size; the parser keeps the rows not taken for the next batch.
                    return Ok(false);
                }
            }
            if last && take == n {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
