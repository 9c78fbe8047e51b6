//! Sink throughput without a server: Arrow batches shaped like the benchmark fixture into
//! a SQLite file (rows/s), and into prepared-INSERT parameter sets for MySQL (MB/s).
//! `cargo bench` (scripts/bench.sh does the end-to-end copies against real servers).

use arrow::array::{ArrayRef, Float64Array, Int8Array, StringArray, UInt32Array};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dbsync::target::mysql::encode::{wire_bytes, Encoding};
use dbsync::target::sqlite::SqliteSink;
use dbsync::target::Sink;
use dbsync::transform::{ColumnView, SourceColumn, SqlType};
use std::sync::Arc;

const ROWS: usize = 4096;
const BATCHES: usize = 25;

fn text(max_chars: u64) -> SqlType {
    SqlType::Text {
        max_chars,
        fixed: false,
    }
}

/// The fixture's columns: vehicles_stock as dbsync reads it.
fn columns() -> Vec<SourceColumn> {
    let col = |name: &str, ty| SourceColumn {
        name: name.into(),
        ty,
        nullable: true,
        exact_mysql_type: None,
        collation: None,
    };
    vec![
        col(
            "id",
            SqlType::Int {
                bytes: 4,
                unsigned: true,
            },
        ),
        col("marca", text(40)),
        col("modelo", text(60)),
        col("color", text(30)),
        col("tipo_transmision", text(20)),
        col("kms", SqlType::Double),
        col(
            "pvp_api",
            SqlType::Decimal {
                precision: 12,
                scale: 2,
                unsigned: false,
            },
        ),
        col("fecha_matriculacion", SqlType::DateTime { fsp: 0 }),
        col(
            "vin",
            SqlType::Text {
                max_chars: 17,
                fixed: true,
            },
        ),
        col("disponible", SqlType::Bool),
        col(
            "notas",
            SqlType::Text {
                max_chars: 65535,
                fixed: false,
            },
        ),
    ]
}

fn batch(offset: usize) -> RecordBatch {
    let ids: Vec<u32> = (offset..offset + ROWS).map(|i| i as u32).collect();
    let s = |f: &dyn Fn(usize) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            (0..ROWS).map(|i| f(offset + i)).collect::<Vec<_>>(),
        ))
    };
    let makes = [
        "Seat",
        "Renault",
        "Peugeot",
        "Volkswagen",
        "Toyota",
        "Citroën",
        "Škoda",
        "BMW",
    ];
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from(ids)),
        s(&|i| Some(makes[i % makes.len()].to_string())),
        s(&|i| Some(format!("Modelo {} Xcellence", i % 97))),
        s(&|i| (i % 17 != 0).then(|| "Blanco".to_string())),
        s(&|i| (i % 23 != 0).then(|| "Automática".to_string())),
        Arc::new(Float64Array::from(
            (0..ROWS)
                .map(|i| Some((i * 7919 % 250000) as f64 + 0.5))
                .collect::<Vec<_>>(),
        )),
        s(&|i| Some(format!("{}.{:02}", 4990 + i % 60000, i % 100))),
        s(&|i| {
            Some(format!(
                "2005-01-{:02} 10:{:02}:{:02}",
                1 + i % 28,
                i % 60,
                i % 60
            ))
        }),
        s(&|i| Some(format!("{:017X}", i * 2654435761))),
        Arc::new(Int8Array::from(
            (0..ROWS)
                .map(|i| Some((i % 5 != 0) as i8))
                .collect::<Vec<_>>(),
        )),
        s(&|i| (i % 3 != 0).then(|| format!("Revisión {} — garantía 12 meses 🚗", i % 1000))),
    ];
    let fields: Vec<Field> = columns()
        .iter()
        .zip(&arrays)
        .map(|(c, a)| Field::new(&c.name, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn to_sqlite(c: &mut Criterion) {
    let batches: Vec<RecordBatch> = (0..BATCHES).map(|b| batch(b * ROWS)).collect();
    let cols = columns();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let mut g = c.benchmark_group("batches_to_sqlite");
    g.sample_size(10)
        .throughput(Throughput::Elements((ROWS * BATCHES) as u64));
    g.bench_function("replace_table_100k_rows", |b| {
        b.iter_batched(
            || SqliteSink::new(&path, "vehicles_stock"),
            |mut sink| {
                sink.begin(&cols, &Default::default()).unwrap();
                for batch in &batches {
                    sink.write(batch).unwrap();
                }
                sink.commit((ROWS * BATCHES) as u64).unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn to_insert_params(c: &mut Criterion) {
    let batch = batch(0);
    let names: Vec<String> = columns().into_iter().map(|c| c.name).collect();
    let views: Vec<ColumnView<'_>> = batch
        .columns()
        .iter()
        .map(|a| ColumnView::new(a).unwrap())
        .collect();
    let enc = Encoding {
        limit: 4 << 20,
        max_rows: 2048,
        max_packet: 64 << 20,
        batch: 1,
        names: &names,
    };
    let bytes: usize = enc
        .encode(&views, 0, ROWS)
        .unwrap()
        .iter()
        .map(wire_bytes)
        .sum();
    let mut g = c.benchmark_group("batches_to_mysql_insert_params");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("encode_4096_rows", |b| {
        b.iter(|| enc.encode(&views, 0, ROWS).unwrap())
    });
    g.finish();
}

criterion_group!(benches, to_sqlite, to_insert_params);
criterion_main!(benches);
