//! What one run will do, decided once from the config and the command line: the source,
//! the fallback, the target and its table.

pub mod job;

use crate::config::{parse_age, parse_duration, ConfigError, RawConfig, EXTERNAL_DB, GENERAL};
use crate::connect::{Endpoint, TlsMode};
use crate::incremental::{Incremental, Lookback};
use crate::target::schema::OnSchemaChange;
use crate::target::{self, SqliteTable, Target, TargetKind};
use crate::transform::keys::{IndexPolicy, PrimaryKey};
use crate::transform::ZeroDates;
use std::path::PathBuf;
use std::time::Duration;

/// Checks on the number of rows before a load replaces the target (`[general] allow_empty`,
/// `max_shrink_percent`): a source that suddenly returns nothing, or far less, is more
/// often a broken query or an emptied upstream table than real news.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Guards {
    pub allow_empty: bool,
    pub max_shrink_percent: Option<f64>,
}

/// Read the query as ranges of an integer column on several connections
/// (`[external_db] partition_column`, `partitions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitioning {
    pub column: String,
    pub partitions: usize,
}

/// `[general] log_level`: the log file's level (info when unset, or not valid: the plan
/// reports that).
pub fn log_level(raw: &RawConfig) -> log::LevelFilter {
    parsed_log_level(raw)
        .ok()
        .flatten()
        .unwrap_or(log::LevelFilter::Info)
}

fn parsed_log_level(raw: &RawConfig) -> Result<Option<log::LevelFilter>, ConfigError> {
    raw.parsed(
        GENERAL,
        "log_level",
        "error, warn, info, debug or trace",
        |s| match s.to_ascii_lowercase().as_str() {
            "error" => Some(log::LevelFilter::Error),
            "warn" => Some(log::LevelFilter::Warn),
            "info" => Some(log::LevelFilter::Info),
            "debug" => Some(log::LevelFilter::Debug),
            "trace" => Some(log::LevelFilter::Trace),
            _ => None,
        },
    )
}

/// `[general] log_file`, if set.
pub fn log_file(raw: &RawConfig) -> Option<PathBuf> {
    raw.get(GENERAL, "log_file")
        .map(|p| PathBuf::from(p.trim()))
        .filter(|p| !p.as_os_str().is_empty())
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub source: Endpoint,
    pub query: String,
    pub batch_rows: usize,
    pub zero_dates: ZeroDates,
    /// Split the read into ranges of an integer column (`partition_column`, `partitions`).
    pub partitioning: Option<Partitioning>,
    /// The `[local_db]` table, read when the primary is unreachable (if enabled).
    pub fallback: Option<SqliteTable>,
    /// Refuse fallback rows older than this (`[general] fallback_max_age`).
    pub fallback_max_age: Option<Duration>,
    /// A job found the primary unreachable: read the fallback without trying it again.
    pub primary_down: bool,
    pub guards: Guards,
    /// `[general] primary_key` and `indexes`: the target table's keys.
    pub primary_key: PrimaryKey,
    pub indexes: IndexPolicy,
    /// Whole-copy retries after a transient failure (`[general] retries`).
    pub retries: u32,
    /// How long a run waits for another run on the same target (`[general] lock_wait`).
    pub lock_wait: Duration,
    /// A bound on the whole run, retries and pauses included (`[general] run_timeout`).
    pub run_timeout: Option<Duration>,
    /// Bound for statements that rightly compute long before answering: the first row of
    /// a sorted query, partition bounds, staging counts (`[general] statement_timeout`).
    pub statement_timeout: Duration,
    /// `[general] strategy = append | merge` with its key; `None`: replace.
    pub incremental: Option<Incremental>,
    /// What a replace does when the query's columns change (`[general] on_schema_change`).
    pub on_schema_change: OnSchemaChange,
    /// `[general] verify = after`: each load is verified against its source right after.
    pub verify_after: bool,
    /// `[general] deletes = apply`: a merge also removes the target's rows whose key the
    /// source no longer has.
    pub deletes_apply: bool,
    pub target: Target,
}

impl Plan {
    /// The servers the run connects to.
    pub fn endpoints(&self) -> Vec<&Endpoint> {
        std::iter::once(&self.source)
            .chain(self.target.endpoint())
            .collect()
    }

    /// Resolves the config (and `--target`, if given) into a plan.
    pub fn from_config(
        raw: &RawConfig,
        cli_target: Option<TargetKind>,
    ) -> Result<Plan, ConfigError> {
        parsed_log_level(raw)?;
        let kind = target::kind(raw, cli_target)?;
        let incremental = incremental(raw)?;
        let deletes_apply = deletes(raw, incremental.as_ref())?;
        let query = query(raw, incremental.as_ref())?;
        let fallback_enabled = raw.bool(GENERAL, "fallback_to_local_source_on_failure", false)?;
        let target = Target::from_config(raw, kind, statement_timeout(raw)?)?;
        Ok(Plan {
            source: Endpoint::from_config(raw, EXTERNAL_DB, TlsMode::Preferred)?,
            query,
            batch_rows: raw.positive(EXTERNAL_DB, "batch_rows", 4_096)?,
            partitioning: partitioning(raw)?,
            zero_dates: raw
                .parsed(
                    EXTERNAL_DB,
                    "zero_dates",
                    "keep, null or error",
                    ZeroDates::parse,
                )?
                .unwrap_or(ZeroDates::Keep),
            fallback: match fallback_enabled {
                true => Some(SqliteTable::from_config(raw)?),
                false => None,
            },
            fallback_max_age: raw.parsed(
                GENERAL,
                "fallback_max_age",
                "an age with a unit, e.g. 36h, 2d, 90m or 1d12h",
                parse_age,
            )?,
            primary_down: false,
            guards: guards(raw)?,
            statement_timeout: statement_timeout(raw)?,
            primary_key: raw
                .parsed(
                    GENERAL,
                    "primary_key",
                    "column names separated by commas, or none",
                    PrimaryKey::parse,
                )?
                .unwrap_or(PrimaryKey::Source),
            indexes: raw
                .parsed(
                    GENERAL,
                    "indexes",
                    "all, primary or none",
                    IndexPolicy::parse,
                )?
                .unwrap_or(IndexPolicy::All),
            retries: raw
                .parsed(GENERAL, "retries", "a whole number from 0 to 10", |s| {
                    s.parse::<u32>().ok().filter(|n| *n <= 10)
                })?
                .unwrap_or(2),
            lock_wait: lock_wait(raw)?,
            run_timeout: raw.parsed(
                GENERAL,
                "run_timeout",
                "a duration: seconds, or with units, e.g. 90m, 2h, 1h30m",
                parse_duration,
            )?,
            incremental,
            on_schema_change: raw
                .parsed(
                    GENERAL,
                    "on_schema_change",
                    "allow, warn or fail",
                    OnSchemaChange::parse,
                )?
                .unwrap_or_default(),
            verify_after: choice(raw, "verify", ("off", "after"))?,
            deletes_apply,
            target,
        })
    }
}

/// A `[general]` setting of two words: false for the first (the default), true for the
/// second.
fn choice(raw: &RawConfig, key: &str, (no, yes): (&str, &str)) -> Result<bool, ConfigError> {
    let expected = format!("{no} or {yes}");
    let value = raw.parsed(GENERAL, key, &expected, |s| {
        let s = s.to_ascii_lowercase();
        (s == no || s == yes).then_some(s == yes)
    })?;
    Ok(value.unwrap_or(false))
}

/// `[general] deletes`: `apply` only where a merge can apply it.
fn deletes(raw: &RawConfig, incremental: Option<&Incremental>) -> Result<bool, ConfigError> {
    let apply = choice(raw, "deletes", ("keep", "apply"))?;
    let merge = incremental.is_some_and(|i| i.strategy() == "merge");
    if apply && !merge {
        return Err(ConfigError::Invalid {
            section: GENERAL.into(),
            key: "deletes".into(),
            value: "apply".into(),
            expected: "keep: deletes = apply is for strategy = merge (a replace already \
                       removes what the source no longer has)"
                .into(),
        });
    }
    Ok(apply)
}

/// `[external_db] query`; one holding `{incremental_value}` needs an incremental strategy.
fn query(raw: &RawConfig, incremental: Option<&Incremental>) -> Result<String, ConfigError> {
    let query = raw.require(EXTERNAL_DB, "query")?;
    if incremental.is_none() && query.contains(crate::incremental::PLACEHOLDER) {
        return Err(ConfigError::Invalid {
            section: GENERAL.into(),
            key: "strategy".into(),
            value: raw.get(GENERAL, "strategy").unwrap_or_default(),
            expected: format!(
                "append or merge: the query holds {}, which only they fill in (with the \
                 target's largest incremental_key)",
                crate::incremental::PLACEHOLDER
            ),
        });
    }
    Ok(query)
}

fn guards(raw: &RawConfig) -> Result<Guards, ConfigError> {
    Ok(Guards {
        allow_empty: raw.bool(GENERAL, "allow_empty", false)?,
        max_shrink_percent: raw.parsed(
            GENERAL,
            "max_shrink_percent",
            "a percentage from 0 to 100, e.g. 20",
            |s| {
                s.trim_end_matches('%')
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
            },
        )?,
    })
}

fn lock_wait(raw: &RawConfig) -> Result<Duration, ConfigError> {
    let secs = raw.parsed(
        GENERAL,
        "lock_wait",
        "a whole number of seconds (0 or more)",
        |s| s.parse::<u64>().ok(),
    )?;
    Ok(Duration::from_secs(secs.unwrap_or(0)))
}

fn incremental(raw: &RawConfig) -> Result<Option<Incremental>, ConfigError> {
    let strategy = raw
        .parsed(GENERAL, "strategy", "replace, append or merge", |s| match s
            .to_ascii_lowercase()
            .as_str()
        {
            "replace" => Some(None),
            "append" => Some(Some(false)),
            "merge" => Some(Some(true)),
            _ => None,
        })?
        .flatten();
    let key = raw
        .get(GENERAL, "incremental_key")
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    let lookback = raw
        .parsed(
            GENERAL,
            "incremental_lookback",
            "0, a number of key values (e.g. 1000) or a span with a unit (e.g. 2h, 1d)",
            Lookback::parse,
        )?
        .unwrap_or(Lookback::None);
    let Some(merge) = strategy else {
        if key.is_some() {
            log::warn!("[general] incremental_key is set but strategy is replace: it is not used");
        }
        return Ok(None);
    };
    let Some(key) = key else {
        return Err(ConfigError::MissingKey {
            section: GENERAL.into(),
            key: "incremental_key".into(),
            env: crate::config::env_name(GENERAL, "incremental_key"),
        });
    };
    if !merge && lookback != Lookback::None {
        return Err(ConfigError::Invalid {
            section: GENERAL.into(),
            key: "incremental_lookback".into(),
            value: raw.get(GENERAL, "incremental_lookback").unwrap_or_default(),
            expected: "0 with strategy = append (rows read again would be added twice; \
                       use strategy = merge to re-read late rows)"
                .into(),
        });
    }
    Ok(Some(Incremental {
        merge,
        key,
        lookback,
        lookback_text: raw
            .get(GENERAL, "incremental_lookback")
            .map_or("0".into(), |t| t.trim().to_string()),
    }))
}

fn partitioning(raw: &RawConfig) -> Result<Option<Partitioning>, ConfigError> {
    let partitions = crate::config::connections(raw, EXTERNAL_DB, "partitions", 1)?;
    let column = raw
        .get(EXTERNAL_DB, "partition_column")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    match column {
        Some(column) if partitions > 1 => Ok(Some(Partitioning { column, partitions })),
        None if partitions > 1 => Err(ConfigError::MissingKey {
            section: EXTERNAL_DB.into(),
            key: "partition_column".into(),
            env: crate::config::env_name(EXTERNAL_DB, "partition_column"),
        }),
        _ => Ok(None),
    }
}

fn statement_timeout(raw: &RawConfig) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(
        raw.positive(GENERAL, "statement_timeout", 3_600)? as u64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const BASE: &str = "[general]\ndefault_target = local_sqlite\ntarget_argument_enabled = false\n\
        fallback_to_local_source_on_failure = true\n\
        [external_db]\ntype = mysql\nhost = h\nport = 3306\nuser = u\npassword = p\ndatabase = d\nquery = SELECT 1\n\
        [local_db]\ndb_path = data/x.db\ntable_name = t\n";

    fn plan(text: &str, target: Option<TargetKind>) -> Result<Plan, ConfigError> {
        Plan::from_config(&RawConfig::parse(text, HashMap::new()).unwrap(), target)
    }

    #[test]
    fn local_plan_with_fallback() {
        let p = plan(BASE, None).unwrap();
        assert_eq!(p.target.kind(), TargetKind::LocalSqlite);
        assert_eq!(p.fallback.unwrap().table, "t");
        assert_eq!(p.source.tls.mode, TlsMode::Preferred);
    }

    #[test]
    fn target_argument_obeys_the_switch() {
        let e = plan(BASE, Some(TargetKind::Azure)).unwrap_err().to_string();
        assert!(e.contains("target_argument_enabled"), "{e}");
        // Naming the default target is always allowed.
        assert!(plan(BASE, Some(TargetKind::LocalSqlite)).is_ok());
    }

    #[test]
    fn azure_section_required_only_for_azure() {
        let text = BASE.replace(
            "target_argument_enabled = false",
            "target_argument_enabled = true",
        );
        let e = plan(&text, Some(TargetKind::Azure))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[azure_mysql_db]"), "{e}");
    }

    #[test]
    fn the_example_config_is_valid_for_both_targets() {
        let text = include_str!("../../config.example.ini");
        let p = plan(text, None).unwrap();
        assert_eq!(p.target.kind(), TargetKind::LocalSqlite);
        let p = plan(text, Some(TargetKind::Azure)).unwrap();
        let Target::MySql(t) = p.target else {
            panic!("azure target")
        };
        assert_eq!(t.endpoint.tls.mode, TlsMode::VerifyIdentity);
        assert_eq!(t.writers, None);
    }

    #[test]
    fn ages_need_a_unit() {
        assert_eq!(parse_age("36h"), Some(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_age("2d"), Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse_age("1d 12h"), Some(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_age("90m"), Some(Duration::from_secs(5400)));
        for bad in ["36", "h", "2x", "", "0h", "1.5h"] {
            assert_eq!(parse_age(bad), None, "{bad}");
        }
    }

    #[test]
    fn run_timeout_takes_units_or_seconds() {
        assert_eq!(plan(BASE, None).unwrap().run_timeout, None);
        let with = |v: &str| {
            plan(
                &BASE.replace(
                    "[external_db]",
                    &format!("run_timeout = {v}\n[external_db]"),
                ),
                None,
            )
        };
        assert_eq!(
            with("90m").unwrap().run_timeout,
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            with("2h").unwrap().run_timeout,
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            with("45").unwrap().run_timeout,
            Some(Duration::from_secs(45))
        );
        for bad in ["0", "-5", "soon", "1.5h"] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("run_timeout") && e.contains("90m"), "{bad}: {e}");
        }
        let env = [("DBSYNC_GENERAL_RUN_TIMEOUT".to_string(), "2h".to_string())];
        let raw = RawConfig::parse(BASE, env.into_iter().collect()).unwrap();
        let p = Plan::from_config(&raw, None).unwrap();
        assert_eq!(p.run_timeout, Some(Duration::from_secs(7200)));
    }

    #[test]
    fn guards_default_to_refusing_an_empty_load() {
        let p = plan(BASE, None).unwrap();
        assert_eq!(p.guards, Guards::default());
        assert!(!p.guards.allow_empty);
        let p = plan(
            &BASE.replace(
                "[external_db]",
                "allow_empty = yes\nmax_shrink_percent = 20%\nfallback_max_age = 36h\n[external_db]",
            ),
            None,
        )
        .unwrap();
        assert!(p.guards.allow_empty);
        assert_eq!(p.guards.max_shrink_percent, Some(20.0));
        assert_eq!(p.fallback_max_age, Some(Duration::from_secs(36 * 3600)));
        let e = plan(
            &BASE.replace("[external_db]", "max_shrink_percent = 120\n[external_db]"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_shrink_percent"), "{e}");
    }

    #[test]
    fn connections_are_bounded() {
        let text = BASE.replace(
            "query = SELECT 1",
            "query = SELECT 1\npartitions = 17\npartition_column = id",
        );
        let e = plan(&text, None).unwrap_err().to_string();
        assert!(e.contains("partitions") && e.contains("1 to 16"), "{e}");
        assert!(plan(&text.replace("= 17", "= 16"), None).is_ok());
    }

    #[test]
    fn unknown_type_is_refused() {
        let e = plan(&BASE.replace("type = mysql", "type = postgres"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("type") && e.contains("postgres"), "{e}");
    }
}
