//! A job of many tables (`[general] tables`): which tables it copies, and each one's plan,
//! which is the one-table plan of the config with that table's settings laid over it
//! (`SELECT *` from it, into a table of its name, and its `[table.NAME]` keys).

use super::Plan;
use crate::config::known::TABLE_KEYS;
use crate::config::{ConfigError, RawConfig, EXTERNAL_DB, GENERAL};
use crate::connect::{Endpoint, TlsMode};
use crate::target::TargetKind;
use crate::transform::quote_mysql;

/// How a job's tables are read and put in place (`[general] consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// One snapshot of the source for every table, all swapped in at once.
    Snapshot,
    /// Each table on its own: a failed table leaves the others loaded.
    PerTable,
}

/// One entry of `tables`: a name or glob (`*`, `?`), or one that excludes (`!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub include: bool,
    pub glob: String,
}

/// What a job is, before the source tells which tables it has.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub patterns: Vec<Pattern>,
    pub consistency: Consistency,
    /// Tables in flight at once under `per_table`.
    pub parallel_tables: usize,
    /// The source, whose database's base tables `patterns` select from.
    pub source: Endpoint,
    /// The config every table's plan is made from, and the target asked for.
    raw: RawConfig,
    cli_target: Option<TargetKind>,
    /// The plan of a table with no settings of its own: the job's settings, checked.
    pub template: Box<Plan>,
}

/// The `[general]` keys only a job has: not a table's.
const JOB_KEYS: [&str; 3] = ["tables", "consistency", "parallel_tables"];

impl JobPlan {
    /// The job the config describes, if `[general] tables` is set; every setting checked
    /// before any connection (each `[table.NAME]`'s too).
    pub fn from_config(
        raw: &RawConfig,
        cli_target: Option<TargetKind>,
    ) -> Result<Option<JobPlan>, ConfigError> {
        let Some(tables) = raw.get(GENERAL, "tables").filter(|t| !t.trim().is_empty()) else {
            if let Some(name) = raw.table_sections().into_iter().next() {
                return Err(ConfigError::UnknownSection {
                    name: crate::config::table_section(&name),
                    hint: ": a [table.NAME] section sets one table of a job of many tables, \
                           which [general] tables = PATTERN[, PATTERN...] makes"
                        .into(),
                });
            }
            return Ok(None);
        };
        if raw.get(EXTERNAL_DB, "query").is_some() {
            return Err(ConfigError::Invalid {
                section: EXTERNAL_DB.into(),
                key: "query".into(),
                value: "...".into(),
                expected: "absent with [general] tables, which copies each table with SELECT *: \
                           a table's own query goes in its [table.NAME] section"
                    .into(),
            });
        }
        let consistency = consistency(raw)?;
        let job = JobPlan {
            patterns: patterns(&tables)?,
            consistency,
            parallel_tables: crate::config::connections(
                raw,
                GENERAL,
                "parallel_tables",
                default_parallel(consistency),
            )?,
            source: Endpoint::from_config(raw, EXTERNAL_DB, TlsMode::Preferred)?,
            raw: raw.clone(),
            cli_target,
            // The job's own settings, as a table without any of its own reads them.
            template: Box::new(plan_for(raw, cli_target, "t")?),
        };
        for name in raw.table_sections() {
            job.table_plan(&name)?;
        }
        for name in raw.table_variables() {
            job.table_plan(&name.to_ascii_lowercase())?;
        }
        Ok(Some(job))
    }

    /// Whether `name` is a table the config gives a query of its own (it need not be a
    /// base table of the source).
    pub fn has_own_query(&self, name: &str) -> bool {
        self.raw.table_get(name, "query").is_some()
    }

    /// The tables `[table.NAME]` sections name.
    pub fn sections(&self) -> Vec<String> {
        self.raw.table_sections()
    }

    /// Table `name`'s plan: the config's one-table plan, reading `SELECT *` from it (or its
    /// own `query`) into a table of its name (or its `target_table`), with its settings.
    pub fn table_plan(&self, name: &str) -> Result<Plan, ConfigError> {
        plan_for(&self.raw, self.cli_target, name)
    }

    /// The tables of the job among the source's `base` tables, in their order: those the
    /// patterns select, and those `[table.NAME]` gives a query; `only` keeps some of them.
    pub fn select(
        &self,
        base: &[String],
        only: Option<&[String]>,
    ) -> Result<Vec<String>, ConfigError> {
        self.refuse_unknown_names(base)?;
        let mut chosen: Vec<String> = base
            .iter()
            .filter(|t| selected(&self.patterns, t))
            .cloned()
            .collect();
        for name in self.sections() {
            let known = chosen.iter().any(|t| t.eq_ignore_ascii_case(&name));
            if !known && self.has_own_query(&name) {
                chosen.push(name);
            } else if !known {
                return Err(ConfigError::Invalid {
                    section: crate::config::table_section(&name),
                    key: "query".into(),
                    value: String::new(),
                    expected: format!(
                        "a query of its own: `{name}` is not a base table that [general] tables \
                         selects"
                    ),
                });
            }
        }
        if chosen.is_empty() {
            return Err(ConfigError::Invalid {
                section: GENERAL.into(),
                key: "tables".into(),
                value: self.patterns_text(),
                expected: format!(
                    "patterns that select some of the source's base tables ({})",
                    base.join(", ")
                ),
            });
        }
        match only {
            None => Ok(chosen),
            Some(only) => keep_only(chosen, only),
        }
    }

    /// A table named outright (no `*` or `?`) that is not one of `base` is a config error,
    /// not a table left out without a word (a typo, a table renamed upstream).
    fn refuse_unknown_names(&self, base: &[String]) -> Result<(), ConfigError> {
        let unknown = self.patterns.iter().find(|p| {
            p.include
                && !p.glob.contains(['*', '?'])
                && !base.iter().any(|t| t.eq_ignore_ascii_case(&p.glob))
        });
        let Some(p) = unknown else { return Ok(()) };
        let hint = crate::config::known::nearest(&p.glob, base.iter().map(String::as_str))
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        Err(ConfigError::Invalid {
            section: GENERAL.into(),
            key: "tables".into(),
            value: self.patterns_text(),
            expected: format!(
                "base tables of the source: `{}` is none of them{hint}",
                p.glob
            ),
        })
    }

    fn patterns_text(&self) -> String {
        let shown: Vec<String> = self
            .patterns
            .iter()
            .map(|p| format!("{}{}", if p.include { "" } else { "!" }, p.glob))
            .collect();
        shown.join(", ")
    }
}

/// Table `name`'s plan from `raw` (see `JobPlan::table_plan`).
fn plan_for(
    raw: &RawConfig,
    cli_target: Option<TargetKind>,
    name: &str,
) -> Result<Plan, ConfigError> {
    let own = |key: &str| raw.table_get(name, key);
    let target = own("target_table").unwrap_or_else(|| name.to_string());
    let query = own("query").unwrap_or_else(|| format!("SELECT * FROM {}", quote_mysql(name)));
    let mut values = vec![
        (EXTERNAL_DB, "query", query),
        (
            crate::target::sqlite::LOCAL_DB,
            "table_name",
            target.clone(),
        ),
        (crate::target::mysql::AZURE_DB, "table_name", target),
    ];
    let overridden: Vec<&str> = TABLE_KEYS
        .iter()
        .copied()
        .filter(|k| !matches!(*k, "query" | "target_table"))
        .filter(|k| own(k).is_some())
        .collect();
    for key in &overridden {
        let section = if *key == "zero_dates" {
            EXTERNAL_DB
        } else {
            GENERAL
        };
        values.push((section, key, own(key).unwrap_or_default()));
    }
    let dropped: Vec<(&str, &str)> = JOB_KEYS.iter().map(|k| (GENERAL, *k)).collect();
    let raw = raw.overlaid(&values, &dropped);
    Plan::from_config(&raw, cli_target).map_err(|e| named(e, name, &overridden))
}

/// `--only`: the named tables of the job, each of which must be one.
fn keep_only(chosen: Vec<String>, only: &[String]) -> Result<Vec<String>, ConfigError> {
    if let Some(missing) = only
        .iter()
        .find(|o| !chosen.iter().any(|t| t.eq_ignore_ascii_case(o)))
    {
        return Err(ConfigError::Invalid {
            section: "command line".into(),
            key: "--only".into(),
            value: missing.clone(),
            expected: format!("tables of the job: {}", chosen.join(", ")),
        });
    }
    Ok(chosen
        .into_iter()
        .filter(|t| only.iter().any(|o| o.eq_ignore_ascii_case(t)))
        .collect())
}

/// A setting's error, named after the table's section when the table set it.
fn named(e: ConfigError, table: &str, overridden: &[&str]) -> ConfigError {
    match e {
        ConfigError::Invalid {
            key,
            value,
            expected,
            ..
        } if overridden.contains(&key.as_str()) => ConfigError::Invalid {
            section: crate::config::table_section(table),
            key,
            value,
            expected,
        },
        other => other,
    }
}

fn patterns(text: &str) -> Result<Vec<Pattern>, ConfigError> {
    let patterns: Vec<Pattern> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('!') {
            Some(glob) => Pattern {
                include: false,
                glob: glob.trim().to_string(),
            },
            None => Pattern {
                include: true,
                glob: p.to_string(),
            },
        })
        .collect();
    if patterns.iter().any(|p| p.include) {
        return Ok(patterns);
    }
    Err(ConfigError::Invalid {
        section: GENERAL.into(),
        key: "tables".into(),
        value: text.to_string(),
        expected: "names or globs of tables, e.g. * or fact_*, with !PATTERN to leave some out"
            .into(),
    })
}

fn consistency(raw: &RawConfig) -> Result<Consistency, ConfigError> {
    Ok(raw
        .parsed(GENERAL, "consistency", "snapshot or per_table", |s| match s
            .to_ascii_lowercase()
            .replace('-', "_")
            .as_str()
        {
            "snapshot" => Some(Consistency::Snapshot),
            "per_table" => Some(Consistency::PerTable),
            _ => None,
        })?
        .unwrap_or(Consistency::Snapshot))
}

/// Whether the patterns select `table`: some including one matches and no excluding one.
pub fn selected(patterns: &[Pattern], table: &str) -> bool {
    patterns.iter().any(|p| p.include && glob(&p.glob, table))
        && !patterns.iter().any(|p| !p.include && glob(&p.glob, table))
}

/// Tables written at once into MySQL unless `parallel_tables` says: 2 under `per_table`
/// (each table reads on its own connections too); 4 under `snapshot`, whose one connection
/// reads for all, so that the round trips of a schema's many small tables overlap (through
/// a 20 ms link, 28 tables: 5.2 s with 2, 4.6 s with 4; one table of the same rows 4.5 s).
fn default_parallel(consistency: Consistency) -> usize {
    match consistency {
        Consistency::PerTable => 2,
        Consistency::Snapshot => 4,
    }
}

/// `*` for any run of characters, `?` for one; letters compared without case.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    // Positions in the name each pattern prefix can reach.
    let mut reach = vec![false; n.len() + 1];
    reach[0] = true;
    for c in p {
        let mut next = vec![false; n.len() + 1];
        for i in 0..=n.len() {
            if !reach[i] {
                continue;
            }
            match c {
                '*' => next[i..].iter_mut().for_each(|r| *r = true),
                '?' if i < n.len() => next[i + 1] = true,
                c if i < n.len() && n[i] == c => next[i + 1] = true,
                _ => {}
            }
        }
        reach = next;
    }
    reach[n.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const BASE: &str = "[general]\ndefault_target = local_sqlite\ntables = *, !tmp_*\n\
        [external_db]\nhost = h\nuser = u\npassword = p\ndatabase = d\n\
        [local_db]\ndb_path = data/x.db\n";

    fn job(text: &str) -> Result<JobPlan, ConfigError> {
        let raw = RawConfig::parse(text, HashMap::new()).unwrap();
        JobPlan::from_config(&raw, None).map(Option::unwrap)
    }

    #[test]
    fn globs_select_and_exclude() {
        assert!(glob("*", "orders"));
        assert!(glob("fact_*", "FACT_sales"));
        assert!(glob("t?", "t1") && !glob("t?", "t12"));
        assert!(glob("a*b*c", "axxbyyc") && !glob("a*b*c", "axxbyy"));
        let p = patterns("*, !tmp_*").unwrap();
        assert!(selected(&p, "orders") && !selected(&p, "tmp_x"));
        assert!(patterns("!x").is_err());
    }

    #[test]
    fn each_table_gets_its_own_plan() {
        let text = format!(
            "{BASE}[table.rental]\nstrategy = merge\nincremental_key = last_update\n\
             [table.active]\nquery = SELECT * FROM customer WHERE active = 1\ntarget_table = active_customer\n"
        );
        let j = job(&text).unwrap();
        assert_eq!(j.consistency, Consistency::Snapshot);
        let film = j.table_plan("film").unwrap();
        assert_eq!(film.query, "SELECT * FROM `film`");
        assert_eq!(film.target.table(), "film");
        assert!(film.incremental.is_none());
        let rental = j.table_plan("rental").unwrap();
        assert!(rental.incremental.as_ref().is_some_and(|i| i.merge));
        let active = j.table_plan("active").unwrap();
        assert_eq!(active.target.table(), "active_customer");
        assert_eq!(active.query, "SELECT * FROM customer WHERE active = 1");
        let base = ["film".to_string(), "rental".into(), "tmp_x".into()];
        assert_eq!(j.select(&base, None).unwrap(), ["film", "rental", "active"]);
        assert_eq!(
            j.select(&base, Some(&["RENTAL".to_string()])).unwrap(),
            ["rental"]
        );
        let e = j.select(&base, Some(&["films".to_string()])).unwrap_err();
        assert!(e.to_string().contains("film, rental, active"), "{e}");
    }

    #[test]
    fn a_tables_setting_error_names_its_section() {
        let e = job(&format!("{BASE}[table.rental]\nstrategy = mrege\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[table.rental] strategy = \"mrege\""), "{e}");
        let e = job(&BASE.replace("database = d\n", "database = d\nquery = SELECT 1\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[external_db] query") && e.contains("[table.NAME]"),
            "{e}"
        );
        let e = job(&BASE
            .replace("tables = *, !tmp_*\n", "")
            .replace("[local_db]", "[table.x]\nquery = SELECT 1\n[local_db]"))
        .unwrap_err()
        .to_string();
        assert!(e.contains("[general] tables"), "{e}");
    }
}
