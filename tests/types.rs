//! Every MySQL type, at its edges, into both targets, compared value by value with what
//! MySQL itself returns.

mod common;
use common::*;
use mysql::prelude::Queryable;

const ALL_TYPES: &str = r#"
SET SESSION sql_mode = '';
CREATE TABLE alltypes (
  k INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  d65 DECIMAL(65,30), d10 DECIMAL(10,0), du DECIMAL(5,2) UNSIGNED,
  f FLOAT, dbl DOUBLE,
  b1 BIT(1), b7 BIT(7), b64 BIT(64), bo BOOL,
  dt DATE, dtm0 DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL,
  tm TIME, tm6 TIME(6), yr YEAR,
  c CHAR(10), vc VARCHAR(255), tt TINYTEXT, tx TEXT, mt MEDIUMTEXT, lt LONGTEXT,
  l1 VARCHAR(20) CHARACTER SET latin1,
  bn BINARY(4), vb VARBINARY(300), tb TINYBLOB, bl BLOB, mb MEDIUMBLOB, lb LONGBLOB,
  j JSON, e ENUM('a','b c','ü'), st SET('x','y','z'), g GEOMETRY
) CHARACTER SET utf8mb4;
INSERT INTO alltypes VALUES
 (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
  '-99999999999999999999999999999999999.999999999999999999999999999999', -9999999999, 0,
  -3.40282e38, -1.7976931348623157e308, b'0', b'0', b'0', 0,
  '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000', '1000-01-01 00:00:00.000000',
  '1970-01-01 00:00:01.000000', '-838:59:59', '-838:59:59.000000', 1901,
  '', '', '', '', '', '', '', X'00000000', X'00', '', X'00', X'', '', '{}', 'a', '', POINT(0, 0)),
 (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,
  18446744073709551615,
  '99999999999999999999999999999999999.999999999999999999999999999999', 9999999999, 999.99,
  3.40282e38, 1.7976931348623157e308, b'1', b'1111111', b'1111111111111111111111111111111111111111111111111111111111111111', 1,
  '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999',
  '2038-01-19 03:14:07.999999', '838:59:59', '838:59:59.999999', 2155,
  'abcdefghij', REPEAT('🚗', 255), 'tab\there', 'line1\nline2\r\n"quoted" \'single\' back\\slash',
  CONCAT('𝄞 music ', REPEAT('é', 1000)), REPEAT('long text ', 120000), 'Ñandú café',
  X'FFFFFFFF', REPEAT(X'00FF', 150), X'000102', CONCAT(X'00', REPEAT('b', 60000), X'00'),
  REPEAT(X'00FE', 300000), REPEAT(X'0A00', 700000),
  '{"b": 1, "a": [1, 2, {"c": null}], "s": "ü\\"q"}', 'b c', 'x,y,z', POINT(1.5, -2.5)),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 0, 1, -1, 1, -1, 1, -1, 1, 9007199254740993, 9223372036854775808,
  '0.000000000000000000000000000001', 0, 0.01,
  1.17549e-38, 2.2250738585072014e-308, b'1', b'1010101', b'1000000000000000000000000000000000000000000000000000000000000001', 0,
  '0000-00-00', '0000-00-00 00:00:00', '2024-00-00 12:00:00.500', '2024-02-29 23:59:59.000001',
  '2024-02-29 12:00:00.123456', '00:00:00', '-00:00:00.000001', 0,
  ' lead', '  trailing  ', '0012', '1.10', '-0', '1e5', 'plain ASCII',
  X'00000001', X'', X'7F', X'FF00FF', X'00', X'00',
  '[]', 'ü', 'y', ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)')),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  'NULL', '\\N', 'N', CONCAT('nul', CHAR(0), 'byte\ttab\\'), NULL, '\\', 'latin é',
  NULL, CONCAT('\\N', X'09'), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

/// The columns as MySQL renders them, GEOMETRY as WKB (what dbsync reads).
const SELECT_AS_READ: &str =
    "SELECT k, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, d65, d10, du, f, dbl, \
    b1, b7, b64, bo, dt, dtm0, dtm3, dtm6, ts, tm, tm6, yr, c, vc, tt, tx, mt, lt, l1, \
    bn, vb, tb, bl, mb, lb, j, e, st, ST_AsBinary(g) AS g FROM alltypes ORDER BY k";

/// Rows as raw bytes (None for NULL), for types that are not UTF-8.
type RawRows = Vec<Vec<Option<Vec<u8>>>>;

fn mysql_raw(c: &mut mysql::Conn, q: &str) -> (Vec<String>, RawRows) {
    let result = c.query_iter(q).unwrap();
    let names = result
        .columns()
        .as_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    let rows = result
        .map(|r| {
            r.unwrap()
                .unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql::Value::NULL => None,
                    mysql::Value::Bytes(b) => Some(b),
                    other => Some(other.as_sql(true).into_bytes()),
                })
                .collect()
        })
        .collect();
    (names, rows)
}

fn sqlite_raw(path: &std::path::Path, q: &str) -> Vec<Vec<Option<rusqlite::types::Value>>> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut stmt = c.prepare(q).unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                    rusqlite::types::Value::Null => None,
                    v => Some(v),
                })
                .collect::<Vec<_>>())
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// Does the SQLite value stand for what MySQL returned? Exact text or bytes; integers as
/// their decimal text; REAL by numeric value (the spelling of exponents differs).
fn same(mysql: &[u8], sqlite: &rusqlite::types::Value) -> bool {
    use rusqlite::types::Value;
    let text = String::from_utf8_lossy(mysql);
    match sqlite {
        // A whole DECIMAL (`0.0000`), which SQLite's NUMERIC affinity stores as an integer.
        Value::Integer(i) => {
            text.parse::<i64>() == Ok(*i)
                || (text.contains('.') && text.parse::<f64>() == Ok(*i as f64))
        }
        Value::Real(f) => text.parse::<f64>() == Ok(*f),
        Value::Text(t) => t.as_bytes() == mysql,
        Value::Blob(b) => b == mysql,
        Value::Null => false,
    }
}

#[test]
fn every_type_into_sqlite_exactly() {
    let db = "dbsync_t_types_sqlite";
    let mut c = fresh_db(db, ALL_TYPES);
    let job = Job::new(&sqlite_config(db, "SELECT * FROM alltypes", "alltypes"));
    let run = job.run(&["--summary-json", "-"]).expect(0);
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(
        summary["zero_dates"], 3,
        "row 4 holds three zero or partial dates"
    );
    let (names, want) = mysql_raw(&mut c, SELECT_AS_READ);
    let got = sqlite_raw(
        &job.path("data/out.db"),
        "SELECT * FROM alltypes ORDER BY k",
    );
    assert_eq!(want.len(), 5);
    assert_eq!(got.len(), 5);
    for (r, (w, g)) in want.iter().zip(&got).enumerate() {
        for (i, name) in names.iter().enumerate() {
            let ok = match (&w[i], &g[i]) {
                (None, None) => true,
                (Some(m), Some(s)) => match name.as_str() {
                    // FLOAT: the value MySQL shows; YEAR: an integer (0000 → 0).
                    "f" | "yr" => {
                        String::from_utf8_lossy(m).parse::<f64>().ok() == sqlite_number(s)
                    }
                    // DECIMAL(p,s), p <= 15: a number that prints back at its scale.
                    "d10" => at_scale(s, 0).as_deref() == Some(&*String::from_utf8_lossy(m)),
                    "du" => at_scale(s, 2).as_deref() == Some(&*String::from_utf8_lossy(m)),
                    _ => same(m, s),
                },
                _ => false,
            };
            assert!(
                ok,
                "row {} column {name}: MySQL {:?}, SQLite {:?}",
                r + 1,
                w[i].as_ref().map(|b| String::from_utf8_lossy(b)
                    .chars()
                    .take(80)
                    .collect::<String>()),
                g[i].as_ref()
                    .map(|v| format!("{v:?}").chars().take(80).collect::<String>())
            );
        }
    }
    // Affinity never rewrote text that looks like a number.
    let conn = rusqlite::Connection::open(job.path("data/out.db")).unwrap();
    let kinds: String = conn
        .query_row("SELECT typeof(tt) || typeof(tx) || typeof(d65) || typeof(biu) FROM alltypes WHERE k = 4", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kinds, "texttexttexttext");
    // DECIMAL up to 15 digits is a number (whole values an integer); wider ones exact text.
    let kinds: String = conn
        .query_row(
            "SELECT typeof(d10) || typeof(du) || typeof(d65) FROM alltypes WHERE k = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kinds, "integerrealtext");
}

/// A SQLite number printed at a DECIMAL's scale.
fn at_scale(v: &rusqlite::types::Value, scale: usize) -> Option<String> {
    sqlite_number(v).map(|f| format!("{f:.scale$}"))
}

fn sqlite_number(v: &rusqlite::types::Value) -> Option<f64> {
    match v {
        rusqlite::types::Value::Integer(i) => Some(*i as f64),
        rusqlite::types::Value::Real(f) => Some(*f),
        _ => None,
    }
}

#[test]
fn every_type_into_mysql_exactly_by_load_data() {
    every_type_into_mysql_exactly("dbsync_t_types_mysql", "load_data");
}

#[test]
fn every_type_into_mysql_exactly_by_insert() {
    every_type_into_mysql_exactly("dbsync_t_types_mysql_ins", "insert");
}

fn every_type_into_mysql_exactly(db: &str, method: &str) {
    let mut c = fresh_db(db, ALL_TYPES);
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    let job = Job::new(&azure_config(
        db,
        "SELECT * FROM alltypes",
        db,
        "alltypes",
        &format!("{}\nload_method = {method}", verified("ca.pem")),
    ));
    let run = job.run(&[]).expect(0);
    assert!(
        run.stderr().contains(match method {
            "insert" => "prepared multi-row INSERTs",
            _ => "LOAD DATA LOCAL INFILE",
        }),
        "{}",
        run.stderr()
    );
    let (names, want) = mysql_raw(&mut c, SELECT_AS_READ);
    let (_, got) = mysql_raw(
        &mut tls_root(Some(db)),
        &SELECT_AS_READ.replace("ST_AsBinary(g) AS g", "g"),
    );
    assert_eq!(got.len(), 5);
    for (r, (w, g)) in want.iter().zip(&got).enumerate() {
        for (i, name) in names.iter().enumerate() {
            assert!(
                w[i] == g[i],
                "row {} column {name}: source {:?}, target {:?}",
                r + 1,
                w[i].as_ref()
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned()),
                g[i].as_ref()
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned())
            );
        }
    }
    // The target keeps the source's column types.
    let types: Vec<(String, String)> = tls_root(None)
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'alltypes' ORDER BY ORDINAL_POSITION",
            (db,),
        )
        .unwrap();
    let source: Vec<(String, String)> = c
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'alltypes' ORDER BY ORDINAL_POSITION",
            (db,),
        )
        .unwrap();
    for (t, s) in types.iter().zip(&source) {
        if t.0 == "g" {
            assert_eq!(t.1, "longblob", "GEOMETRY travels as WKB");
        } else {
            assert_eq!(t, s);
        }
    }
}

const COMPUTED: &str = "SELECT a.k AS `id with space`, CONCAT(a.c, '✓') AS `ünïcode näme`, \
    CAST(a.iu AS CHAR) AS iu_text, a.d65 * 2 AS twice, a.dbl / 3 AS third, \
    COUNT(*) AS n, SUM(a.d10) AS total, AVG(a.tiu) AS mean, GROUP_CONCAT(b.e ORDER BY b.k) AS es, \
    DATE_ADD(a.dt, INTERVAL 1 DAY) AS next_day, NULL AS nothing, 1 = 1 AS truth \
    FROM alltypes a JOIN alltypes b ON b.k <= a.k WHERE a.k NOT IN (4, 5) GROUP BY a.k ORDER BY a.k";

#[test]
fn computed_and_joined_queries_into_both_targets() {
    let db = "dbsync_t_types_computed";
    let mut c = fresh_db(db, ALL_TYPES);
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    let (names, want) = mysql_raw(&mut c, COMPUTED);
    assert_eq!(want.len(), 3);

    let job = Job::new(&sqlite_config(db, COMPUTED, "computed"));
    job.run(&[]).expect(0);
    let got = sqlite_raw(
        &job.path("data/out.db"),
        "SELECT * FROM computed ORDER BY 1",
    );
    for (w, g) in want.iter().zip(&got) {
        for (i, name) in names.iter().enumerate() {
            let ok = match (&w[i], &g[i]) {
                (None, None) => true,
                (Some(m), Some(s)) => same(m, s),
                _ => false,
            };
            assert!(
                ok,
                "column {name}: MySQL {:?} SQLite {:?}",
                w[i].as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
                g[i]
            );
        }
    }
    let cols: Vec<String> = rusqlite::Connection::open(job.path("data/out.db"))
        .unwrap()
        .prepare("SELECT name FROM pragma_table_info('computed')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(cols, names);

    let job = Job::new(&azure_config(
        db,
        COMPUTED,
        db,
        "computed",
        &verified("ca.pem"),
    ));
    job.run(&[]).expect(0);
    let (tnames, got) = mysql_raw(&mut tls_root(Some(db)), "SELECT * FROM computed ORDER BY 1");
    assert_eq!(tnames, names);
    assert_eq!(got, want);
}

#[test]
fn zero_dates_follow_the_setting() {
    let db = "dbsync_t_types_zero";
    fresh_db(db, "SET SESSION sql_mode = ''; CREATE TABLE z (k INT, d DATE, t DATETIME);
        INSERT INTO z VALUES (1, '2024-01-02', '0000-00-00 00:00:00'), (2, '2024-00-00', '2024-01-01 10:00:00'), (3, NULL, NULL);");
    let base = sqlite_config(db, "SELECT * FROM z", "z");

    let job = Job::new(&base.replace("[local_db]", "zero_dates = error\n\n[local_db]"));
    let run = job.run(&[]).expect(1);
    let err = run.stderr();
    assert!(
        err.contains("row 2 (batch 1), column `d`")
            && err.contains("\"2024-00-00\"")
            && err.contains("zero_dates = keep"),
        "{err}"
    );
    assert!(
        !job.path("data/out.db").exists()
            || sqlite_count_opt(&job.path("data/out.db"), "z").is_none()
    );

    let job = Job::new(&base.replace("[local_db]", "zero_dates = null\n\n[local_db]"));
    let run = job.run(&["--summary-json", "-"]).expect(0);
    assert!(
        run.stdout().contains("\"zero_dates\":2"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "z", "k"),
        vec![
            vec![Some("1".into()), Some("2024-01-02".into()), None],
            vec![Some("2".into()), None, Some("2024-01-01 10:00:00".into())],
            vec![Some("3".into()), None, None],
        ]
    );

    let job = Job::new(&base);
    job.run(&[]).expect(0);
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "z", "k")[1][1].as_deref(),
        Some("2024-00-00")
    );
}

fn sqlite_count_opt(path: &std::path::Path, table: &str) -> Option<i64> {
    let c = rusqlite::Connection::open(path).ok()?;
    c.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
        r.get(0)
    })
    .ok()
}

#[test]
fn mariadb_only_types_arrive_as_text() {
    // INET6 and UUID are MariaDB types that the protocol reports as plain strings.
    let db = "dbsync_t_types_odd";
    let mut c = fresh_db(db, "CREATE TABLE o (k INT, ip INET6, u UUID); INSERT INTO o VALUES (1, '::1', '123e4567-e89b-12d3-a456-426655440000');");
    let job = Job::new(&sqlite_config(db, "SELECT * FROM o", "o"));
    job.run(&[]).expect(0);
    let want = mysql_rows(&mut c, "SELECT * FROM o");
    assert_eq!(sqlite_rows(&job.path("data/out.db"), "o", "k"), want);
}
