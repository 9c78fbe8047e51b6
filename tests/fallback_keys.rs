//! A fallback load into an existing MySQL table (the TLS server standing in for Azure)
//! keeps that table's primary key and indexes, as it keeps its column definitions.

mod common;
use common::*;
use mysql::prelude::Queryable;

/// The table's keys as the server lists them: index, column, uniqueness, prefix.
fn statistics(db: &str, table: &str) -> Vec<(String, String, i64, Option<u64>)> {
    tls_root(None)
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE, SUB_PART FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (db, table),
        )
        .unwrap()
}

#[test]
fn a_fallback_load_into_an_existing_table_keeps_its_keys_and_indexes() {
    let db = "i24_fallback_keys";
    let (job, _local) = fallback_to_azure(
        db,
        "stock",
        "CREATE TABLE stock (id INTEGER, shop INTEGER, code TEXT, name TEXT, price REAL);
         INSERT INTO stock VALUES (1, 10, 'A1', 'Seat Ibiza', 12.5), (2, 10, 'A2', 'Seat Leon', 20),
                                  (3, 11, 'B1', 'Kia Ceed', 7.25);",
    );
    let mut root = tls_root(None);
    root.query_drop(format!("CREATE DATABASE `{db}`")).unwrap();
    root.query_drop(format!(
        "CREATE TABLE `{db}`.stock (id INT NOT NULL, shop INT NOT NULL, code VARCHAR(8) NOT NULL, \
         name VARCHAR(40), price DECIMAL(10,2), PRIMARY KEY (id, shop), UNIQUE KEY by_code (code), \
         KEY by_shop_name (shop, name(10)), KEY by_price (price))"
    ))
    .unwrap();
    root.query_drop(format!(
        "INSERT INTO `{db}`.stock VALUES (9, 9, 'Z9', 'old', 1)"
    ))
    .unwrap();
    let before = statistics(db, "stock");
    assert_eq!(before.len(), 6, "{before:?}");
    let run = job.run(&[]).expect(3);
    assert_eq!(
        statistics(db, "stock"),
        before,
        "the keys after the fallback load; stderr:\n{}",
        run.stderr()
    );
    let rows = mysql_rows(
        &mut tls_root(Some(db)),
        "SELECT id, shop, code, name, price FROM stock ORDER BY id",
    );
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[2],
        ["3", "11", "B1", "Kia Ceed", "7.25"].map(|v| Some(v.to_string()))
    );
    assert!(run.stderr().contains("keeps the keys"), "{}", run.stderr());
}

#[test]
fn an_index_on_an_invisible_column_is_left_out_and_the_load_goes_on() {
    // Azure's generated primary key (`my_row_id`, invisible) is the common case; MariaDB
    // stands in with an invisible column of its own under an index.
    let db = "i24_fallback_invisible";
    let (job, _local) = fallback_to_azure(
        db,
        "stock",
        "CREATE TABLE stock (id INTEGER, code TEXT);
         INSERT INTO stock VALUES (1, 'A1'), (2, 'A2');",
    );
    let mut root = tls_root(None);
    root.query_drop(format!("CREATE DATABASE `{db}`")).unwrap();
    root.query_drop(format!(
        "CREATE TABLE `{db}`.stock (id INT NOT NULL, code VARCHAR(8) NOT NULL, \
         row_id BIGINT INVISIBLE NOT NULL DEFAULT 0, KEY by_row (row_id), KEY by_code (code))"
    ))
    .unwrap();
    let run = job.run(&[]).expect(3);
    let keys: Vec<String> = statistics(db, "stock").into_iter().map(|k| k.0).collect();
    assert_eq!(keys, ["by_code"], "{}", run.stderr());
    assert!(run.stderr().contains("`by_row`"), "{}", run.stderr());
    assert_eq!(
        mysql_rows(
            &mut tls_root(Some(db)),
            "SELECT id, code FROM stock ORDER BY id"
        )
        .len(),
        2
    );
}
