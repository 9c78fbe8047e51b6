//! `--dry-run` on the MySQL target: whether a run could write it, found without changing
//! anything: the login, the database, the user's rights there, a view or foreign keys
//! under the table's name, the run's lock (one login, one round trip of lookups).

use super::{lock, obstacles, MySqlTarget};
use crate::connect::{self, redact, Setup};
use crate::target::Check;
use crate::transform::mysql_literal;

/// The rights a replace needs on the database (RENAME TABLE: ALTER and DROP on the old
/// table, CREATE and INSERT on the new one); a merge deletes too.
const NEEDED: [&str; 5] = ["SELECT", "INSERT", "CREATE", "DROP", "ALTER"];

/// The current user as `information_schema`'s GRANTEE spells it: `'user'@'host'`.
const GRANTEE: &str = "CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
                       SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')";

/// Every check, in the order a run meets them; `merge`: the run deletes rows too.
pub fn check(t: &MySqlTarget, merge: bool) -> Vec<Check> {
    let ep = &t.endpoint;
    let (mut conn, mode) = match ep.connect_with(false, None, &Setup::staying_open()) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::failed(format!(
                "login: {}",
                redact(&e.to_string(), ep)
            ))]
        }
    };
    let mut out = vec![Check::ok(format!(
        "login: {} (ssl_mode {})",
        ep.describe(),
        mode.as_str()
    ))];
    let db = mysql_literal(&ep.database);
    let name = lock::lock_name(&ep.database, &t.table);
    let [kind, referencing] = obstacles::lookups(&ep.database, &t.table);
    let statements = [
        format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {db}"),
        format!(
            "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = {GRANTEE} \
             UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES \
             WHERE GRANTEE = {GRANTEE} AND {db} LIKE TABLE_SCHEMA"
        ),
        kind,
        referencing,
        format!("SELECT IS_FREE_LOCK({})", mysql_literal(&name)),
    ];
    let (rows, failed) = connect::batch_until_error(&mut conn, &statements);
    if let Some(e) = failed {
        out.push(Check::failed(format!(
            "looking up the database, the rights and the table: {}",
            redact(&e.to_string(), ep)
        )));
        return out;
    }
    let texts = |i: usize| -> Vec<String> {
        rows[i]
            .iter()
            .filter_map(|r| r.get_opt::<String, _>(0).and_then(Result::ok))
            .collect()
    };
    let exists = !texts(0).is_empty();
    out.push(Check::ok(format!(
        "database `{}`: {}",
        ep.database,
        if exists {
            "exists"
        } else {
            "missing, would be created"
        }
    )));
    out.push(rights(&texts(1), exists, merge, &ep.database));
    let referencing: Vec<(String, String, String)> = rows[3]
        .iter()
        .cloned()
        .filter_map(|r| mysql::from_row_opt(r).ok())
        .collect();
    out.push(
        match obstacles::judge(&t.table, texts(2).pop(), &referencing) {
            (_, Some(why)) => Check::failed(format!("name `{}`: {why}", t.table)),
            (true, None) => Check::ok(format!("name `{}`: a table, replaced", t.table)),
            (false, None) => Check::ok(format!("name `{}`: free, created", t.table)),
        },
    );
    let free = rows[4]
        .first()
        .and_then(|r| r.get_opt::<Option<i64>, _>(0).and_then(Result::ok))
        .flatten();
    out.push(match free {
        Some(0) => Check::failed(format!(
            "lock: another run holds it ({})",
            lock::holder(&mut conn, &name)
        )),
        _ => Check::ok("lock: free".to_string()),
    });
    out
}

/// Whether the user's rights, as information_schema shows them (global and on the
/// database), cover what the run does; a database to create needs CREATE globally.
fn rights(granted: &[String], exists: bool, merge: bool, database: &str) -> Check {
    let has = |p: &str| granted.iter().any(|g| g.eq_ignore_ascii_case(p));
    // A user with no global rights still has a USAGE row: rights granted through a role,
    // or on single tables, are not shown here, so this cannot tell (a real run will).
    if granted.iter().all(|g| g.eq_ignore_ascii_case("USAGE")) {
        return Check::ok(format!(
            "rights: information_schema shows this user none on `{database}` itself (granted \
             through a role, or per table?); the run needs {} there",
            NEEDED.join(", ")
        ));
    }
    let mut needed: Vec<&str> = NEEDED.to_vec();
    if merge {
        needed.push("DELETE");
    }
    let missing: Vec<&str> = needed.into_iter().filter(|p| !has(p)).collect();
    if !missing.is_empty() {
        return Check::failed(format!(
            "rights: the user lacks {} on `{database}` (GRANT them, or use another \
             [azure_mysql_db] user)",
            missing.join(", ")
        ));
    }
    let create = if exists {
        ""
    } else {
        " (CREATE makes the database)"
    };
    Check::ok(format!(
        "rights: {} on `{database}`{create}",
        NEEDED.join(", ")
    ))
}
