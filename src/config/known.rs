//! The sections and keys dbsync reads: a name outside them, in the file or as a `DBSYNC_*`
//! variable, is a config error naming the nearest known one, never a setting silently
//! ignored (`pasword = ...` would otherwise log in without a password).

use super::{env_name, ConfigError, EXTERNAL_DB, GENERAL};
use std::collections::HashMap;

/// A section of the config and the keys dbsync reads in it.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub name: &'static str,
    /// A MySQL server's section: it also takes `SERVER_KEYS`.
    pub server: bool,
    pub keys: &'static [&'static str],
}

/// A MySQL server section's keys (`Endpoint::from_config`).
pub const SERVER_KEYS: &[&str] = &[
    "type",
    "host",
    "port",
    "user",
    "password",
    "database",
    "ssl_mode",
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "connect_timeout",
    "read_timeout",
];

/// The keys of a job's per-table sections (`[table.NAME]`), each overriding its `[general]`
/// (or `[external_db]`) namesake for that table.
pub const TABLE_KEYS: &[&str] = &[
    "query",
    "target_table",
    "strategy",
    "incremental_key",
    "incremental_lookback",
    "primary_key",
    "indexes",
    "allow_empty",
    "max_shrink_percent",
    "zero_dates",
    "on_schema_change",
    "deletes",
];

/// The run's own sections; each target's is its own (`target::SECTIONS`).
pub const RUN_SECTIONS: &[Section] = &[
    Section {
        name: GENERAL,
        server: false,
        keys: &[
            "default_target",
            "target_argument_enabled",
            "fallback_to_local_source_on_failure",
            "log_file",
            "log_level",
            "strategy",
            "incremental_key",
            "incremental_lookback",
            "fallback_max_age",
            "allow_empty",
            "max_shrink_percent",
            "statement_timeout",
            "primary_key",
            "indexes",
            "retries",
            "lock_wait",
            "run_timeout",
            "tables",
            "consistency",
            "parallel_tables",
            "on_schema_change",
            "verify",
            "deletes",
        ],
    },
    Section {
        name: EXTERNAL_DB,
        server: true,
        keys: &[
            "query",
            "batch_rows",
            "zero_dates",
            "partitions",
            "partition_column",
        ],
    },
];

/// The sections a config may have: the run's and the targets'.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known {
    pub targets: &'static [Section],
}

impl Known {
    fn sections(&self) -> impl Iterator<Item = &'static Section> {
        RUN_SECTIONS.iter().chain(self.targets.iter())
    }

    /// Every known key of `section`, if it is a known section.
    pub fn keys_of(&self, section: &str) -> Option<Vec<&'static str>> {
        let s = self.sections().find(|s| s.name == section)?;
        let mut keys = s.keys.to_vec();
        if s.server {
            keys.extend_from_slice(SERVER_KEYS);
        }
        Some(keys)
    }

    /// Every section's name with each of its keys.
    pub fn all_keys(&self) -> Vec<(&'static str, &'static str)> {
        self.sections()
            .flat_map(|s| {
                self.keys_of(s.name)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |k| (s.name, k))
            })
            .collect()
    }

    /// Whether dbsync reads `key` in `section`.
    pub fn is_known(&self, section: &str, key: &str) -> bool {
        self.keys_of(section)
            .is_some_and(|keys| keys.contains(&key))
    }

    /// Refuses an unknown section, an unknown key in a known section (a `[DEFAULT]` key
    /// must be known to some section, as configparser gives it to all), and an unknown
    /// `DBSYNC_*` variable.
    pub fn check(
        &self,
        sections: &HashMap<String, HashMap<String, String>>,
        env: &HashMap<String, String>,
    ) -> Result<(), ConfigError> {
        let mut names: Vec<&String> = sections.keys().collect();
        names.sort();
        for section in names {
            self.check_section(section, sections[section].keys())?;
        }
        let known: Vec<String> = self
            .all_keys()
            .into_iter()
            .map(|(s, k)| env_name(s, k))
            .collect();
        let mut vars: Vec<&String> = env.keys().collect();
        vars.sort();
        let table_var = |v: &str| {
            v.strip_prefix("DBSYNC_TABLE__")
                .and_then(|rest| rest.rsplit_once("__"))
                .is_some_and(|(name, key)| {
                    !name.is_empty() && TABLE_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
                })
        };
        match vars
            .into_iter()
            .find(|v| !known.contains(v) && !table_var(v))
        {
            None => Ok(()),
            Some(name) => Err(ConfigError::UnknownEnv {
                name: name.clone(),
                hint: did_you_mean(name, known.iter().map(String::as_str), |n| n.to_string()),
            }),
        }
    }

    fn check_section<'a>(
        &self,
        section: &str,
        keys: impl Iterator<Item = &'a String>,
    ) -> Result<(), ConfigError> {
        let known: Vec<&str> = match (section, self.keys_of(section)) {
            (super::ini::DEFAULT_SECTION, _) => {
                self.all_keys().into_iter().map(|(_, k)| k).collect()
            }
            (_, Some(keys)) => keys,
            _ if section.starts_with(super::TABLE_PREFIX) => TABLE_KEYS.to_vec(),
            (_, None) => {
                let sections = self.sections().map(|s| s.name);
                return Err(ConfigError::UnknownSection {
                    name: section.to_string(),
                    hint: did_you_mean(section, sections, |s| format!("[{s}]")),
                });
            }
        };
        let mut keys: Vec<&String> = keys.collect();
        keys.sort();
        match keys.into_iter().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => Err(ConfigError::UnknownKey {
                section: section.to_string(),
                key: key.clone(),
                hint: did_you_mean(key, known.into_iter(), |k| format!("`{k}`")),
            }),
        }
    }
}

/// "; did you mean X?" for the known name nearest to `name`, when one is near enough to be
/// a slip of the fingers; else a pointer to the reference.
fn did_you_mean<'a>(
    name: &str,
    known: impl Iterator<Item = &'a str>,
    show: impl Fn(&str) -> String,
) -> String {
    match nearest(name, known) {
        Some(k) => format!("; did you mean {}?", show(k)),
        None => " (config.example.ini lists every setting)".to_string(),
    }
}

/// The known name nearest to `name`, when one is near enough to be a slip of the fingers.
pub fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    known
        .map(|k| (edits(&lower, &k.to_ascii_lowercase()), k))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= 2 + name.len() / 6)
        .map(|(_, k)| k)
}

/// Levenshtein distance: insertions, deletions and substitutions of characters.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(text: &[(&str, &[&str])]) -> HashMap<String, HashMap<String, String>> {
        text.iter()
            .map(|(s, keys)| {
                let keys = keys
                    .iter()
                    .map(|k| (k.to_string(), String::new()))
                    .collect();
                (s.to_string(), keys)
            })
            .collect()
    }

    const KNOWN: Known = Known {
        targets: crate::target::SECTIONS,
    };

    fn error(text: &[(&str, &[&str])], env: &[&str]) -> String {
        let env = env.iter().map(|v| (v.to_string(), String::new())).collect();
        KNOWN.check(&sections(text), &env).unwrap_err().to_string()
    }

    #[test]
    fn a_misspelt_key_names_the_one_meant() {
        let e = error(&[("external_db", &["host", "pasword"])], &[]);
        assert!(
            e.contains("[external_db] pasword") && e.contains("did you mean `password`?"),
            "{e}"
        );
        let e = error(&[("general", &["fallback_to_local_source_on_falure"])], &[]);
        assert!(
            e.contains("did you mean `fallback_to_local_source_on_failure`?"),
            "{e}"
        );
        let e = error(&[("azure_mysql_db", &["ssl_mod"])], &[]);
        assert!(e.contains("did you mean `ssl_mode`?"), "{e}");
        let e = error(&[("local_db", &["colour"])], &[]);
        assert!(e.contains("config.example.ini"), "{e}");
    }

    #[test]
    fn a_misspelt_section_or_variable_names_the_one_meant() {
        let e = error(&[("extrenal_db", &["host"])], &[]);
        assert!(e.contains("did you mean [external_db]?"), "{e}");
        let e = error(&[], &["DBSYNC_EXTERNAL_DB_PASWORD"]);
        assert!(
            e.contains("DBSYNC_EXTERNAL_DB_PASWORD")
                && e.contains("did you mean DBSYNC_EXTERNAL_DB_PASSWORD?"),
            "{e}"
        );
    }

    #[test]
    fn every_key_of_the_python_tool_and_defaults_and_table_sections_pass() {
        let python: &[(&str, &[&str])] = &[
            (
                "general",
                &[
                    "default_target",
                    "target_argument_enabled",
                    "fallback_to_local_source_on_failure",
                ],
            ),
            (
                "external_db",
                &[
                    "type", "host", "port", "user", "password", "database", "query",
                ],
            ),
            ("local_db", &["db_path", "table_name"]),
            (
                "azure_mysql_db",
                &[
                    "type",
                    "host",
                    "port",
                    "user",
                    "password",
                    "database",
                    "table_name",
                    "ssl_mode",
                    "ssl_ca",
                    "ssl_cert",
                    "ssl_key",
                ],
            ),
            ("DEFAULT", &["port", "query"]),
            ("table.orders", &["query"]),
        ];
        let env = HashMap::from([("DBSYNC_AZURE_MYSQL_DB_PASSWORD".into(), String::new())]);
        KNOWN.check(&sections(python), &env).unwrap();
        let e = error(&[("DEFAULT", &["hots"])], &[]);
        assert!(e.contains("did you mean `host`?"), "{e}");
    }

    /// `config.example.ini` shows every key, set or commented out (`; key = value`), and
    /// only known ones.
    #[test]
    fn the_example_config_lists_every_key() {
        let text = include_str!("../../config.example.ini");
        let mut section = String::new();
        let mut shown = Vec::new();
        for line in text.lines() {
            let line = line.strip_prefix("; ").unwrap_or(line);
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
                section = name.to_string();
                continue;
            }
            let Some((key, _)) = line.split_once(" = ") else {
                continue;
            };
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !key.is_empty() {
                let known = match section.strip_prefix(super::super::TABLE_PREFIX) {
                    Some(_) => TABLE_KEYS.contains(&key),
                    None => KNOWN.is_known(&section, key),
                };
                assert!(known, "[{section}] {key} is not known");
                let section = match section.starts_with(super::super::TABLE_PREFIX) {
                    true => "table.*".to_string(),
                    false => section.clone(),
                };
                shown.push((section, key.to_string()));
            }
        }
        let table_keys = TABLE_KEYS.iter().map(|k| ("table.*", *k));
        for (section, key) in KNOWN.all_keys().into_iter().chain(table_keys) {
            assert!(
                shown.contains(&(section.to_string(), key.to_string())),
                "config.example.ini does not show [{section}] {key}"
            );
        }
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(edits("pasword", "password"), 1);
        assert_eq!(edits("ssl_mod", "ssl_mode"), 1);
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("", "abc"), 3);
    }
}
