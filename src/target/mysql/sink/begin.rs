//! Preparing the load: what the server and the target are (one round trip), then the
//! database, leftovers of an earlier run dropped and the staging table created (another).

use super::super::failure::Bound;
use super::super::{ddl, obstacles, swap};
use super::{MySqlSink, MAX_STATEMENT_BYTES};
use crate::connect;
use crate::incremental::Apply;
use crate::target::schema::OnSchemaChange;
use crate::target::staging::{self, MYSQL};
use crate::target::{Load, Sink, SinkError};
use crate::transform::keys::Keys;
use crate::transform::{mysql_literal, quote_mysql, SourceColumn};

/// What the first round trip told that the rest of `begin` needs.
struct Looked {
    /// Tables an earlier run left (its staging or old table).
    left: Vec<String>,
    /// The answers of `ddl::Server::lookups`.
    server_rows: Vec<Vec<mysql::Row>>,
    /// Whether the server took the request for explicit TIMESTAMP defaults.
    explicit_set: bool,
}

/// The lookups' answers, in their order.
type Answers = (
    Option<String>,
    Option<(u64, i64)>,
    Option<String>,
    Vec<(String, String, String)>,
    Vec<String>,
);

const ACTIONS: [&str; 5] = [
    "looking up the database",
    "reading max_allowed_packet and local_infile",
    "looking up the target table",
    "looking up the target table's foreign keys",
    "looking up tables left by an earlier run",
];

impl MySqlSink {
    /// `Sink::begin`: the staging table made, the writers started.
    pub(super) fn prepare(
        &mut self,
        columns: &[SourceColumn],
        load: &Load,
    ) -> Result<(), SinkError> {
        self.apply = load.apply.clone();
        self.keep_definitions = load.from_fallback;
        self.staged_apart = load.staged_apart;
        self.connect()?;
        let looked = self.look_up(columns)?;
        let mut setup = self.setup(&looked.left);
        let (columns, kept) = self.definitions(columns)?;
        let keys = match kept {
            true => self.kept_keys(&columns, &load.keys)?,
            false => load.keys.clone(),
        };
        let ddl = self.staging_ddl(&columns, &looked, &keys, load.expected_rows)?;
        setup.push((ddl, "creating the staging table".to_string()));
        // A replace's schema check reads both tables' columns in the same round trip.
        let policy = load.on_schema_change;
        let judge = self.apply == Apply::Replace
            && policy != OnSchemaChange::Allow
            && self.target_exists()?;
        if judge {
            setup.push((
                self.columns_lookup(),
                "reading the tables' columns".to_string(),
            ));
        }
        // A dead run's session may still hold a leftover: its DROP waits a little longer.
        let answer = self.ep().read_timeout + self.ep().read_timeout.min(swap::LOCK_WAIT);
        let statements: Vec<String> = setup.iter().map(|(sql, _)| sql.clone()).collect();
        let r = self
            .control()
            .with_timeout(answer, |c| connect::batch(c, &statements));
        let rows = match r {
            Ok(rows) => rows,
            Err((i, e)) => {
                let action = setup.get(i).map_or("creating the staging table", |s| &s.1);
                return Err(self.fail(action, e, Bound::Read));
            }
        };
        self.database_known = true;
        self.column_names = columns.iter().map(|c| c.name.clone()).collect();
        if self.apply != Apply::Replace {
            self.check_types()?;
        } else if judge {
            self.judge_schema_change(policy, rows.last().map_or(&[][..], Vec::as_slice))?;
        }
        self.start_writers(&columns)
    }

    /// Every lookup in one round trip (a remote link makes each felt); the request for
    /// explicit TIMESTAMP defaults last, as the server may refuse it.
    fn look_up(&mut self, columns: &[SourceColumn]) -> Result<Looked, SinkError> {
        let (db_name, table) = (self.ep().database.clone(), self.target.table.clone());
        let db = mysql_literal(&db_name);
        let lookup = |name: &str| {
            format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db} AND TABLE_NAME = {}",
                mysql_literal(name)
            )
        };
        let [kind, referencing] = obstacles::lookups(&db_name, &table);
        let mut statements = vec![
            format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {db}"),
            "SELECT @@max_allowed_packet, @@local_infile".to_string(),
            kind,
            referencing,
            format!("{} UNION ALL {}", lookup(&self.staging), lookup(&self.old)),
        ];
        let server_from = statements.len();
        statements.extend(ddl::Server::lookups(columns));
        statements.push(ddl::EXPLICIT_DEFAULTS.to_string());
        let (rows, failed) = connect::batch_until_error(self.control(), &statements);
        let explicit_set = match failed {
            None => true,
            // The server refused the SET (an error of its own, not a lost connection).
            Some(mysql::Error::MySqlError(_)) if rows.len() == statements.len() - 1 => false,
            Some(e) => {
                let action = ACTIONS
                    .get(rows.len())
                    .unwrap_or(&"reading the server's settings");
                return Err(self.fail(action, e, Bound::Read));
            }
        };
        let left = self.take_answers(&rows)?;
        Ok(Looked {
            left,
            server_rows: rows[server_from..].to_vec(),
            explicit_set,
        })
    }

    /// What the lookups told about the server and the target; refuses a target that is not
    /// a table this run may replace. The leftovers of an earlier run.
    fn take_answers(&mut self, rows: &[Vec<mysql::Row>]) -> Result<Vec<String>, SinkError> {
        let answers = || -> Result<Answers, mysql::FromRowError> {
            fn all<T: mysql::prelude::FromRow>(
                rows: &[mysql::Row],
            ) -> Result<Vec<T>, mysql::FromRowError> {
                rows.iter().cloned().map(mysql::from_row_opt).collect()
            }
            let first =
                |i: usize| all::<Option<String>>(&rows[i]).map(|v| v.into_iter().flatten().next());
            Ok((
                first(0)?,
                all(&rows[1])?.into_iter().next(),
                first(2)?,
                all(&rows[3])?,
                all(&rows[4])?,
            ))
        };
        let (schema, vars, kind, referencing, left) =
            answers().map_err(|e| self.err("reading the server's answers", e))?;
        self.database_known = schema.is_some();
        let (packet, local_infile) = vars.unwrap_or((4 << 20, 0));
        self.max_packet = packet as usize;
        self.local_infile = Some(local_infile);
        // Room for the packet header and the statement's own overhead.
        self.statement_limit = MAX_STATEMENT_BYTES
            .min(self.max_packet.saturating_sub(1024))
            .max(1024);
        let (exists, obstacle) = obstacles::judge(&self.target.table, kind, &referencing);
        self.target_exists = Some(exists);
        if let Some(why) = obstacle {
            return Err(SinkError::Refused {
                target: self.describe(),
                why,
            });
        }
        Ok(left)
    }

    /// The database (created if missing) and the leftovers dropped, each with what it does
    /// in words: they go in one round trip with the staging table's creation.
    fn setup(&self, left: &[String]) -> Vec<(String, String)> {
        let db_name = self.ep().database.clone();
        let mut setup: Vec<(String, String)> = Vec::new();
        if !self.database_known {
            setup.push((
                format!(
                    "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4",
                    quote_mysql(&db_name)
                ),
                format!(
                    "database `{db_name}` does not exist and could not be created (create it, or check [azure_mysql_db] database)"
                ),
            ));
        }
        setup.push((
            format!("USE {}", quote_mysql(&db_name)),
            "selecting the database".to_string(),
        ));
        let mut drops = Vec::new();
        for leftover in [self.staging.clone(), self.old.clone()] {
            // Without case: under lower_case_table_names the server lists them in lower case.
            if left.iter().any(|l| l.eq_ignore_ascii_case(&leftover)) {
                log::warn!("dropping `{leftover}`, left by an earlier run");
                // IF EXISTS: a dead run's session may still drop it as its last act.
                let sql = format!("DROP TABLE IF EXISTS {}", quote_mysql(&leftover));
                let action = format!(
                    "dropping `{leftover}`, left by an earlier run (drop it by hand: {sql}; \
                     the target itself is intact)"
                );
                drops.push((sql, action));
            }
        }
        if !drops.is_empty() {
            // A dead run's session may still hold a leftover (its flow dropped, the server
            // not told): each DROP waits briefly for it, then fails naming the lock wait.
            let secs = self.ep().read_timeout.min(swap::LOCK_WAIT).as_secs().max(1);
            let limit = format!("SET SESSION lock_wait_timeout = {secs}");
            setup.push((limit, "limiting the lock wait".into()));
            setup.append(&mut drops);
            let reset = "SET SESSION lock_wait_timeout = DEFAULT".to_string();
            setup.push((reset, "resetting the lock wait".into()));
        }
        setup
    }

    /// `CREATE TABLE` of the staging table, with the columns as this server declares them
    /// and the primary key; the secondary indexes are kept for before the swap.
    fn staging_ddl(
        &mut self,
        columns: &[SourceColumn],
        looked: &Looked,
        keys: &Keys,
        expected_rows: Option<u64>,
    ) -> Result<String, SinkError> {
        let server = ddl::Server::settle(
            self.control(),
            columns,
            &looked.server_rows,
            looked.explicit_set,
        )
        .map_err(|e| self.fail("reading the server's settings", e, Bound::Read))?;
        let mut defs: Vec<String> = columns.iter().map(|c| server.column_def(c)).collect();
        self.primary = keys.primary.clone();
        match MYSQL.primary_key(keys) {
            Some(pk) => defs.push(pk),
            None if server.requires_primary_key => {
                return Err(SinkError::Refused {
                    target: self.describe(),
                    why: "the server requires a primary key on every table \
                          (sql_require_primary_key / innodb_force_primary_key) and none is known \
                          for this query: set [general] primary_key = column[, column]"
                        .into(),
                });
            }
            None => {}
        }
        self.indexes = staging::indexes(&self.apply, keys);
        let small = expected_rows.is_some_and(|n| n <= ddl::INDEXES_WITH_THE_TABLE);
        if small && !self.indexes.is_empty() {
            log::debug!(
                "{} indexes declared with the table (about {} rows)",
                self.indexes.len(),
                expected_rows.unwrap_or(0)
            );
            defs.extend(self.indexes.drain(..).map(|i| ddl::index_def(&i)));
        }
        Ok(format!(
            "CREATE TABLE {} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            quote_mysql(&self.staging),
            defs.join(", ")
        ))
    }
}
