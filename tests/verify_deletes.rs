//! `[general] deletes = apply`: a merge also deletes the target's rows whose key the source
//! no longer has, in its own transaction, found by key checksums; max_shrink_percent
//! refuses a merge that would delete too many; `keep` stays today's behaviour.

mod common;
use common::app::summary_of;
use common::jobs::either_config;
use common::*;
use mysql::prelude::Queryable;

const ROWS: u32 = 20_000;

fn source(db: &str) {
    let mut c = fresh_db(
        db,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), updated_at DATETIME(6) NOT NULL)",
    );
    c.query_drop(format!(
        "INSERT INTO t SELECT seq, CONCAT('v', seq), '2024-01-01' + INTERVAL seq SECOND \
         FROM seq_1_to_{ROWS}"
    ))
    .unwrap();
}

/// 1% of the rows updated, 0.1% added, 0.1% deleted, spread over the table.
fn churn(db: &str) {
    run_all(
        &mut root(Some(db)),
        &format!(
            "UPDATE t SET v = 'changed', updated_at = NOW(6) WHERE id % 100 = 3;
             DELETE FROM t WHERE id % 1000 = 7;
             INSERT INTO t SELECT {ROWS} + seq, 'new', NOW(6) FROM seq_1_to_20;"
        ),
    );
}

const MERGE: &str = "strategy = merge\nincremental_key = updated_at\ndeletes = apply";

fn config(db: &str, azure: bool, general: &str) -> String {
    either_config(db, "SELECT * FROM t", azure, general)
}

fn target_ids(job: &Job, db: &str, azure: bool) -> Vec<Vec<Option<String>>> {
    match azure {
        true => mysql_rows(&mut tls_root(Some(db)), "SELECT id, v FROM t ORDER BY id"),
        false => {
            let rows = sqlite_rows(&job.path("data/out.db"), "t", "id");
            rows.into_iter().map(|r| r[..2].to_vec()).collect()
        }
    }
}

fn merge_applies_deletes(db: &str, azure: bool) {
    source(db);
    let job = Job::new(&config(db, azure, MERGE));
    job.run(&[]).expect(0);
    churn(db);
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    assert_eq!(s["action"], "merged", "{s}");
    assert_eq!(s["deleted"], 20, "{s}");
    assert_eq!(s["inserted"], 20, "{s}");
    // The target equals the source: by --verify, and row by row.
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
    assert_eq!(v["verify"]["equal"], true, "{v}");
    let want = mysql_rows(&mut root(Some(db)), "SELECT id, v FROM t ORDER BY id");
    assert_eq!(target_ids(&job, db, azure), want);
    // Nothing gone: nothing deleted.
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    assert_eq!(s["deleted"], 0, "{s}");
}

#[test]
fn a_merge_deletes_what_the_source_lost_in_sqlite() {
    merge_applies_deletes("vf_del_sqlite", false);
}

#[test]
fn a_merge_deletes_what_the_source_lost_in_mysql() {
    merge_applies_deletes("vf_del_mysql", true);
}

fn shrink_refused(db: &str, azure: bool) {
    source(db);
    let job = Job::new(&config(
        db,
        azure,
        &format!("{MERGE}\nmax_shrink_percent = 20"),
    ));
    job.run(&[]).expect(0);
    root(Some(db))
        .query_drop("DELETE FROM t WHERE id % 2 = 0")
        .unwrap();
    let out = job.run(&[]).expect(1);
    assert!(
        out.stderr().contains("max_shrink_percent = 20"),
        "{}",
        out.stderr()
    );
    assert_eq!(target_ids(&job, db, azure).len(), ROWS as usize);
}

#[test]
fn a_merge_that_would_delete_too_much_is_refused_in_sqlite() {
    shrink_refused("vf_shrink_sqlite", false);
}

#[test]
fn a_merge_that_would_delete_too_much_is_refused_in_mysql() {
    shrink_refused("vf_shrink_mysql", true);
}

#[test]
fn keep_leaves_deleted_rows_and_apply_needs_a_merge() {
    let db = "vf_keep";
    source(db);
    let general = "strategy = merge\nincremental_key = updated_at";
    let job = Job::new(&config(db, false, general));
    job.run(&[]).expect(0);
    churn(db);
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    assert_eq!(s["deleted"], serde_json::Value::Null, "{s}");
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(5));
    assert_eq!(v["verify"]["extra"], 20, "{v}");
    let bad = Job::new(&config(db, false, "deletes = apply"));
    let out = bad.run(&[]).expect(2);
    assert!(
        out.stderr().contains("strategy = merge"),
        "{}",
        out.stderr()
    );
}

/// A text key (hashed, not numbers) on both targets.
#[test]
fn deletes_by_a_text_key() {
    for (db, azure) in [("vf_del_text_sqlite", false), ("vf_del_text_mysql", true)] {
        let mut c = fresh_db(
            db,
            "CREATE TABLE t (id VARCHAR(20) COLLATE utf8mb4_bin PRIMARY KEY, v INT,
                             updated_at DATETIME(6) NOT NULL);
             INSERT INTO t SELECT CONCAT('k-', seq), seq, '2024-01-01' + INTERVAL seq SECOND
             FROM seq_1_to_9000;",
        );
        let job = Job::new(&config(db, azure, MERGE));
        job.run(&[]).expect(0);
        c.query_drop("DELETE FROM t WHERE id IN ('k-17', 'k-4242', 'k-8999')")
            .unwrap();
        let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
        assert_eq!(s["deleted"], 3, "{s}");
        let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
        assert_eq!(v["verify"]["equal"], true, "{v}");
    }
}

/// Under `journal_mode = delete` too: the deletes are found while the merge's transaction
/// holds the file (its staged rows not yet applied).
#[test]
fn deletes_under_journal_mode_delete() {
    let db = "vf_del_journal";
    source(db);
    let cfg = config(db, false, MERGE) + "journal_mode = delete\n";
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    churn(db);
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    assert_eq!(s["deleted"], 20, "{s}");
    job.run(&["--verify"]).expect(0);
}

/// A single integer key at the edges of the groups of 64 values its bits are compared in
/// (either side of zero, of each group's bounds, of the type's range, a whole group), and
/// one too sparse for bits (compared by checksums): on both targets, exactly the rows the
/// source lost are deleted, and into MySQL by the way the log names.
#[test]
fn deletes_by_integer_keys_at_every_edge() {
    const BITS: &str = "compared by bits of the key's values";
    const SUMS: &str = "compared by checksums of the keys";
    let cases = [
        (
            "BIGINT",
            "CAST(seq AS SIGNED) - 600",
            1200,
            "id IN (-65, -64, -1, 0, 63, 64, 600)",
            7,
            BITS,
        ),
        (
            "BIGINT",
            "CAST(seq AS SIGNED) - 600",
            1200,
            "id BETWEEN -128 AND -65 OR id = 5",
            65,
            BITS,
        ),
        (
            "BIGINT",
            "CAST(seq AS SIGNED) - 9223372036854775807 - 1",
            1000,
            "id IN (-9223372036854775808, -9223372036854775745, -9223372036854775744)",
            3,
            BITS,
        ),
        (
            "BIGINT UNSIGNED",
            "18446744073709551615 - seq",
            1000,
            "id IN (18446744073709551615, 18446744073709551552, 18446744073709551551)",
            3,
            BITS,
        ),
        (
            "TINYINT",
            "CAST(seq AS SIGNED) - 128",
            255,
            "id IN (-128, -1, 0, 127)",
            4,
            BITS,
        ),
        (
            "INT",
            "seq * 1000",
            2000,
            "id IN (1000, 64000, 2000000)",
            3,
            SUMS,
        ),
    ];
    for (i, (ty, value, n, gone, count, how)) in cases.iter().enumerate() {
        for azure in [false, true] {
            let db = format!("vf_del_int_{i}_{}", u8::from(azure));
            let case = IntCase {
                ty,
                value,
                n: *n,
                gone,
                count: *count,
            };
            deletes_by_integer_key(&db, azure, &case, how);
        }
    }
}

/// A table keyed by `ty` (values `value` for seq 0..=n), loaded, `gone` deleted at the
/// source: a merge deletes `count` rows.
struct IntCase<'a> {
    ty: &'a str,
    value: &'a str,
    n: u32,
    gone: &'a str,
    count: u32,
}

fn deletes_by_integer_key(db: &str, azure: bool, case: &IntCase, how: &str) {
    let IntCase { ty, value, n, .. } = case;
    let mut c = fresh_db(
        db,
        &format!(
            "CREATE TABLE t (id {ty} PRIMARY KEY, updated_at DATETIME(6) NOT NULL);
             INSERT INTO t SELECT {value}, '2024-01-01' FROM seq_0_to_{n};"
        ),
    );
    let job = Job::new(&config(db, azure, MERGE));
    job.run(&[]).expect(0);
    c.query_drop(format!("DELETE FROM t WHERE {}", case.gone))
        .unwrap();
    let out = job.run(&["--summary-json", "-"]).expect(0);
    let s = summary_of(&out);
    assert_eq!(s["deleted"], case.count, "{ty} {value}: {s}");
    if azure {
        assert!(out.stderr().contains(how), "{}", out.stderr());
    }
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
    assert_eq!(v["verify"]["equal"], true, "{ty} {value}: {v}");
    let ids = mysql_rows(&mut c, "SELECT id FROM t ORDER BY id");
    let held = match azure {
        true => mysql_rows(&mut tls_root(Some(db)), "SELECT id FROM t ORDER BY id"),
        false => sqlite_rows(&job.path("data/out.db"), "t", "id")
            .into_iter()
            .map(|r| r[..1].to_vec())
            .collect(),
    };
    assert_eq!(held, ids, "{ty} {value}");
}

/// A source whose rows all have keys the target lacks (renumbered, or another key's
/// values) is not an emptied one: the merge is refused even with allow_empty = true, as
/// it would delete every row and keep only those the run read.
#[test]
fn a_source_whose_keys_match_none_of_the_targets_is_refused() {
    for (db, azure) in [("vf_del_none_sqlite", false), ("vf_del_none_mysql", true)] {
        source(db);
        let job = Job::new(&config(db, azure, &format!("{MERGE}\nallow_empty = true")));
        job.run(&[]).expect(0);
        root(Some(db))
            .query_drop("UPDATE t SET id = id + 1000000")
            .unwrap();
        let out = job.run(&[]).expect(1);
        assert!(
            out.stderr().contains(
                "none of the source's 20000 rows has a key the target's 20000 rows hold, and \
                 this run read 1 of them"
            ),
            "{}",
            out.stderr()
        );
        assert_eq!(target_ids(&job, db, azure).len(), ROWS as usize);
    }
}

/// Every row replaced at the source by rows this run reads (a table of current values, a
/// queue): applied, and judged as a replace by the rows the target ends with.
#[test]
fn a_full_turnover_this_run_reads_is_applied() {
    for (db, azure) in [("vf_turnover_sqlite", false), ("vf_turnover_mysql", true)] {
        let mut c = fresh_db(
            db,
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), updated_at DATETIME(6) NOT NULL);
             INSERT INTO t SELECT seq, 'old', '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_50;",
        );
        let general = format!("{MERGE}\nmax_shrink_percent = 20");
        let job = Job::new(&config(db, azure, &general));
        job.run(&[]).expect(0);
        c.query_drop(
            "DELETE FROM t; INSERT INTO t SELECT 100 + seq, 'new', '2025-01-01' + INTERVAL seq \
             SECOND FROM seq_1_to_45",
        )
        .unwrap();
        let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
        assert_eq!(
            (s["deleted"].as_u64(), s["inserted"].as_u64()),
            (Some(50), Some(45)),
            "{s}"
        );
        let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
        assert_eq!(v["verify"]["equal"], true, "{v}");
        // Fewer than max_shrink_percent allows: refused, as such a replace would be.
        c.query_drop(
            "DELETE FROM t; INSERT INTO t SELECT 200 + seq, 'few', '2026-01-01' + INTERVAL seq \
             SECOND FROM seq_1_to_30",
        )
        .unwrap();
        let out = job.run(&[]).expect(1);
        assert!(
            out.stderr().contains("replace all 45 rows"),
            "{}",
            out.stderr()
        );
        assert_eq!(target_ids(&job, db, azure).len(), 45, "the target is kept");
    }
}

/// Keys the merge cannot read that the target lacks: rows written at the source with an
/// incremental key below the merge's start, under keys the target lost or never had, are
/// counted exactly (however many rows the run re-reads) and refuse the merge, the target
/// kept; `--full-refresh` brings them. By every way the keys are compared: a dense
/// integer key (SQLite: numbers; MySQL: bits, two values in one group of 64 and a group's
/// last bit), a sparse one (MySQL: checksums), a text key, a DATE key (a read that casts
/// it; MySQL: time chunks), and a TIMESTAMP incremental key (compared as instants).
#[test]
fn rows_below_the_merges_start_that_the_target_lacks_refuse_it() {
    let shapes = [
        ("INT", "seq", "dense", "DATETIME(6)"),
        ("INT", "seq * 1000", "sparse", "DATETIME(6)"),
        (
            "VARCHAR(20) COLLATE utf8mb4_bin",
            "CONCAT('k-', seq)",
            "text",
            "DATETIME(6)",
        ),
        (
            "DATE",
            "'2000-01-01' + INTERVAL seq DAY",
            "date",
            "DATETIME(6)",
        ),
        ("INT", "seq", "stamp", "TIMESTAMP(6)"),
        (
            "BIGINT",
            "CAST(seq AS SIGNED) - 1500",
            "negative",
            "DATETIME(6)",
        ),
    ];
    for (ty, key, name, inc) in shapes {
        for azure in [false, true] {
            let db = format!("vf_unread_{name}_{}", u8::from(azure));
            unread_rows_refused(&db, azure, (ty, key, inc));
        }
    }
}

fn unread_rows_refused(db: &str, azure: bool, (ty, key, inc): (&str, &str, &str)) {
    let mut c = fresh_db(
        db,
        &format!(
            "CREATE TABLE t (id {ty} PRIMARY KEY, v VARCHAR(20), updated_at {inc} NOT NULL);
             INSERT INTO t SELECT {key}, 'v', '2024-01-01' + INTERVAL seq SECOND
             FROM seq_1_to_3000;"
        ),
    );
    let job = Job::new(&config(db, azure, MERGE));
    job.run(&[]).expect(0);
    // 7 and 8: one group of 64 values; 127: a group's last bit (1 << 63).
    let lost = "seq IN (7, 8, 127, 1500, 2999)";
    c.query_drop(format!(
        "DELETE t FROM t JOIN seq_1_to_3000 ON t.id = {key} WHERE {lost}"
    ))
    .unwrap();
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    assert_eq!(s["deleted"], 5, "{db}: {s}");
    // The lost keys back, below the start, beside rows the run reads again and new ones.
    run_all(
        &mut c,
        &format!(
            "INSERT INTO t SELECT {key}, 'late', '2023-06-01' FROM seq_1_to_3000 WHERE {lost};
             UPDATE t SET v = 'changed', updated_at = NOW(6) WHERE updated_at > '2024-01-01 00:30';
             INSERT INTO t SELECT {key}, 'new', NOW(6) FROM seq_3001_to_3002;"
        ),
    );
    let why = "the source has 5 keys that the target's 2995 rows lack, on rows whose \
               `updated_at` is below";
    refused(&job, db, why);
    assert_eq!(
        target_count(&job, db, azure),
        2995,
        "{db}: the target is kept"
    );
    job.run(&["--full-refresh"]).expect(0);
    job.run(&[]).expect(0);
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
    assert_eq!(v["verify"]["equal"], true, "{db}: {v}");
}

/// The source table loaded into a target by a merge with `deletes = apply`.
fn loaded(db: &str, azure: bool) -> Job {
    source(db);
    let job = Job::new(&config(db, azure, MERGE));
    job.run(&[]).expect(0);
    job
}

/// The next run is refused, saying `why` and naming the fix.
fn refused(job: &Job, db: &str, why: &str) {
    let out = job.run(&[]).expect(1);
    assert!(out.stderr().contains(why), "{db}: {}", out.stderr());
    assert!(out.stderr().contains("--full-refresh"), "{}", out.stderr());
}

fn target_count(job: &Job, db: &str, azure: bool) -> i64 {
    common::jobs::either_count(job, db, azure)
}

/// The source renumbered but for a few keys, with as many other rows re-read: the rows
/// the run reads again do not hide the ones it cannot read (keys outside the target's
/// range, every other value, one run of values to ask the source about), and the
/// renumbered rows the run reads are not counted.
#[test]
fn a_source_renumbered_but_for_a_few_keys_is_refused() {
    for (db, azure) in [("vf_renum_sqlite", false), ("vf_renum_mysql", true)] {
        let job = loaded(db, azure);
        // MariaDB assigns in order: updated_at is set while id is still the old one.
        run_all(
            &mut root(Some(db)),
            "UPDATE t SET updated_at = IF(id <= 100, NOW(6), updated_at), id = id * 2 + 1000000
             WHERE id <= 5000;
             UPDATE t SET v = 'changed', updated_at = NOW(6) WHERE id > 15000 AND id < 1000000;",
        );
        refused(
            &job,
            db,
            "the source has 4900 keys that the target's 20000 rows lack",
        );
        assert_eq!(target_ids(&job, db, azure).len(), ROWS as usize);
    }
}

/// Lost keys come back all over the target's range, below the merge's start, but for a
/// hundred the run reads: each lies between keys the target holds, too many runs of
/// values to ask the source about one by one, so they are asked by a pass over its rows.
#[test]
fn keys_back_all_over_the_range_are_counted_by_a_pass() {
    for (db, azure) in [("vf_back_sqlite", false), ("vf_back_mysql", true)] {
        let job = loaded(db, azure);
        let mut c = root(Some(db));
        c.query_drop("DELETE FROM t WHERE id % 10 = 3").unwrap();
        let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
        assert_eq!(s["deleted"], 2000, "{s}");
        c.query_drop(
            "INSERT INTO t SELECT seq, 'back', IF(seq <= 1000, NOW(6), '2023-01-01')
             FROM seq_1_to_20000 WHERE seq % 10 = 3",
        )
        .unwrap();
        refused(
            &job,
            db,
            "the source has 1900 keys that the target's 18000 rows lack",
        );
    }
}

/// A query whose key repeats (a table without a primary key, a join): a key the target
/// lacks that the run reads on one row is in the target after the merge, however old its
/// other rows are; not refused. By each way the keys are compared.
#[test]
fn a_key_read_on_one_row_and_not_on_another_is_not_lacking() {
    let shapes = [
        ("INT", "seq", "dense"),
        ("INT", "seq * 1000", "sparse"),
        (
            "VARCHAR(20) COLLATE utf8mb4_bin",
            "CONCAT('k-', seq)",
            "text",
        ),
    ];
    for ((ty, key, name), azure) in shapes.into_iter().flat_map(|s| [(s, false), (s, true)]) {
        let db = &format!("vf_dup_{name}_{}", u8::from(azure));
        let mut c = fresh_db(
            db,
            &format!(
                "CREATE TABLE t (id {ty} NOT NULL, v VARCHAR(20), updated_at DATETIME(6) NOT NULL);
                 INSERT INTO t SELECT {key}, 'v', '2024-01-01' + INTERVAL seq SECOND
                 FROM seq_1_to_3000;"
            ),
        );
        let general = format!("{MERGE}\nprimary_key = id");
        let job = Job::new(&config(db, azure, &general));
        job.run(&[]).expect(0);
        // 1500 and the new 3001 come again, each on a row the run reads and an old one.
        run_all(
            &mut c,
            &format!(
                "UPDATE t JOIN seq_1500_to_1500 ON t.id = {key} SET v = 'changed', updated_at = NOW(6);
                 INSERT INTO t SELECT {key}, 'new', NOW(6) FROM seq_3001_to_3001;
                 INSERT INTO t SELECT {key}, 'old', '2023-01-01' FROM seq_1_to_3001
                 WHERE seq IN (1500, 3001);"
            ),
        );
        let out = job.run(&["--summary-json", "-"]).expect(0);
        let s = summary_of(&out);
        assert_eq!(
            (s["inserted"].as_u64(), s["deleted"].as_u64()),
            (Some(1), Some(0)),
            "{db}: {s}"
        );
    }
}

/// A query holding the server's outer-only hints (SQL_NO_CACHE, HIGH_PRIORITY): the
/// statements that find its deletes and verify it nest it, so without them (the server
/// refuses them there, ER 1234).
#[test]
fn a_query_with_cache_hints_is_merged_and_verified() {
    for (db, azure) in [("vf_hint_sqlite", false), ("vf_hint_mysql", true)] {
        source(db);
        let query = "SELECT SQL_NO_CACHE HIGH_PRIORITY * FROM t";
        let job = Job::new(&either_config(db, query, azure, MERGE));
        job.run(&[]).expect(0);
        churn(db);
        let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
        assert_eq!(s["deleted"], 20, "{db}: {s}");
        let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
        assert_eq!(v["verify"]["equal"], true, "{db}: {v}");
    }
}
