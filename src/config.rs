//! Reading `config.ini` (the Python tool's format, unchanged) plus `DBSYNC_*` environment
//! overrides into typed settings.
//!
//! The file is read as Python's `configparser` reads it with its defaults, because that is
//! what wrote and read these files until now (see `ini`). One addition: an inline comment
//! (`; ...` or `# ...` after white space) is stripped from every key except `password` and
//! `query`, which are taken verbatim: a password may hold any character, and a query may
//! hold `#` or `;` inside a string (`WHERE lot = 'lot #4'`).

mod ini;
pub mod known;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

pub const GENERAL: &str = "general";
pub const EXTERNAL_DB: &str = "external_db";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid INI: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config is missing section [{0}] (set it in the config file)")]
    MissingSection(String),
    #[error("config is missing key `{key}` in section [{section}] (or set {env})")]
    MissingKey {
        section: String,
        key: String,
        env: String,
    },
    #[error("[{section}] {key} = {value:?} is not valid: {expected}")]
    Invalid {
        section: String,
        key: String,
        value: String,
        expected: String,
    },
    #[error("config file has a section [{name}], which dbsync does not read{hint}")]
    UnknownSection { name: String, hint: String },
    #[error("[{section}] {key} is not a setting dbsync reads{hint}")]
    UnknownKey {
        section: String,
        key: String,
        hint: String,
    },
    #[error(
        "environment variable {name} is not a setting dbsync reads (DBSYNC_<SECTION>_<KEY>){hint}"
    )]
    UnknownEnv { name: String, hint: String },
    #[error("environment variable {0} is not valid UTF-8 (its value is not shown): set it to UTF-8 text, or unset it")]
    NotUtf8Env(String),
    #[error("--target {requested} is not allowed: [general] target_argument_enabled is false (set it to true, or change default_target)")]
    TargetArgumentDisabled { requested: String },
}

/// A password: kept out of `Debug` and `Display` so it cannot reach a log by accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Name of the environment variable that overrides `key` in `section`.
pub fn env_name(section: &str, key: &str) -> String {
    match section.strip_prefix(TABLE_PREFIX) {
        // `[table.NAME] KEY`: double underscores keep the name and the key apart, both of
        // which may hold single ones, in a name a shell accepts.
        Some(name) => format!("DBSYNC_TABLE__{name}__{key}").to_ascii_uppercase(),
        None => format!("DBSYNC_{section}_{key}").to_ascii_uppercase(),
    }
}

/// The prefix of a job's per-table sections: `[table.NAME]`.
pub const TABLE_PREFIX: &str = "table.";

/// The section of table `name` in a job (`[table.NAME]`).
pub fn table_section(name: &str) -> String {
    format!("{TABLE_PREFIX}{name}")
}

/// The config file's sections with environment overrides applied, keys lower-cased.
#[derive(Debug, Default, Clone)]
pub struct RawConfig {
    sections: HashMap<String, HashMap<String, String>>,
    env: HashMap<String, String>,
    /// The sections and keys a name must be one of (none: not checked).
    known: known::Known,
}

impl RawConfig {
    /// Reads the file at `path`, refusing a section, key or variable that `known` does not
    /// have.
    pub fn load(path: &Path, known: known::Known) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw = Self::parse(&text, env_overrides(std::env::vars_os())?).map_err(|message| {
            ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            }
        })?;
        known.check(&raw.sections, &raw.env)?;
        let raw = RawConfig { known, ..raw };
        if raw.file_holds_a_password() {
            warn_if_others_can_read(path);
        }
        Ok(raw)
    }

    pub fn parse(text: &str, env: HashMap<String, String>) -> Result<Self, String> {
        let mut sections = ini::parse(text)?;
        for keys in sections.values_mut() {
            for (key, value) in keys.iter_mut() {
                if !VERBATIM.contains(&key.as_str()) {
                    *value = strip_inline_comments(value);
                }
            }
        }
        Ok(RawConfig {
            sections,
            env,
            known: known::Known::default(),
        })
    }

    fn file_holds_a_password(&self) -> bool {
        self.sections
            .values()
            .any(|keys| keys.get("password").is_some_and(|p| !p.is_empty()))
    }

    /// The tables the file's `[table.NAME]` sections name.
    pub fn table_sections(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .sections
            .keys()
            .filter_map(|s| s.strip_prefix(TABLE_PREFIX))
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    /// A job's per-table setting for table `name`: its `DBSYNC_TABLE__NAME__KEY` variable,
    /// else its `[table.NAME]` section's key (the name compared without case, as MySQL
    /// compares table names where they are folded), else `None`: the job's `[general]`
    /// value applies. `[DEFAULT]` is not inherited here: it already reaches `[general]`.
    pub fn table_get(&self, name: &str, key: &str) -> Option<String> {
        debug_assert!(
            known::TABLE_KEYS.contains(&key),
            "[table.*] {key} is not known"
        );
        if let Some(v) = self.env.get(&env_name(&table_section(name), key)) {
            return Some(v.clone());
        }
        let wanted = table_section(name);
        self.sections
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(&wanted))
            .and_then(|(_, keys)| keys.get(key))
            .cloned()
    }

    /// This config with `values` set (section, key, value), as if the file said them and no
    /// variable overrode them, and without `dropped` (section, key): one table's config in
    /// a job, read by the one-table code.
    pub fn overlaid(&self, values: &[(&str, &str, String)], dropped: &[(&str, &str)]) -> RawConfig {
        let mut sections = self.sections.clone();
        let mut env = self.env.clone();
        for (section, key) in dropped {
            if let Some(keys) = sections.get_mut(*section) {
                keys.remove(*key);
            }
            env.remove(&env_name(section, key));
        }
        for (section, key, value) in values {
            let keys = sections.entry(section.to_string()).or_default();
            keys.insert(key.to_string(), value.clone());
            env.remove(&env_name(section, key));
        }
        RawConfig {
            sections,
            env,
            known: self.known,
        }
    }

    /// The tables named by `DBSYNC_TABLE__NAME__KEY` variables (upper-cased, as they are).
    pub fn table_variables(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .env
            .keys()
            .filter_map(|v| v.strip_prefix("DBSYNC_TABLE__")?.rsplit_once("__"))
            .map(|(name, _)| name.to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// True when the file has the section or any environment variable provides a key of it.
    pub fn has_section(&self, section: &str) -> bool {
        let prefix = format!("DBSYNC_{}_", section.to_ascii_uppercase());
        self.sections.contains_key(section) || self.env.keys().any(|k| k.starts_with(&prefix))
    }

    /// A key's value: the environment override, else the file's, else `None`.
    pub fn get(&self, section: &str, key: &str) -> Option<String> {
        debug_assert!(
            self.known.targets.is_empty() || self.known.is_known(section, key),
            "[{section}] {key} is read but not in config::known or target::SECTIONS"
        );
        if let Some(v) = self.env.get(&env_name(section, key)) {
            return Some(v.clone());
        }
        let keys = self.sections.get(section)?;
        // configparser: every section inherits the keys of [DEFAULT].
        keys.get(key)
            .or_else(|| self.sections.get(ini::DEFAULT_SECTION)?.get(key))
            .cloned()
    }

    pub fn require(&self, section: &str, key: &str) -> Result<String, ConfigError> {
        if !self.has_section(section) {
            return Err(ConfigError::MissingSection(section.to_string()));
        }
        match self.get(section, key) {
            Some(v) if !v.trim().is_empty() || key == "password" => Ok(v),
            _ => Err(ConfigError::MissingKey {
                section: section.to_string(),
                key: key.to_string(),
                env: env_name(section, key),
            }),
        }
    }

    /// An optional key parsed with `parse`; `expected` describes valid values for the error.
    pub fn parsed<T>(
        &self,
        section: &str,
        key: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(section, key) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => parse(v.trim())
                .map(Some)
                .ok_or_else(|| ConfigError::Invalid {
                    section: section.to_string(),
                    key: key.to_string(),
                    value: v.clone(),
                    expected: expected.to_string(),
                }),
        }
    }

    pub fn bool(&self, section: &str, key: &str, default: bool) -> Result<bool, ConfigError> {
        Ok(self
            .parsed(
                section,
                key,
                "one of true/false, yes/no, on/off, 1/0",
                parse_bool,
            )?
            .unwrap_or(default))
    }

    pub fn port(&self, section: &str) -> Result<u16, ConfigError> {
        Ok(self
            .parsed(section, "port", "a TCP port number (1-65535)", |s| {
                s.parse::<u16>().ok().filter(|p| *p > 0)
            })?
            .unwrap_or(3306))
    }

    pub fn positive(&self, section: &str, key: &str, default: usize) -> Result<usize, ConfigError> {
        Ok(self
            .parsed(section, key, "a whole number greater than 0", |s| {
                s.replace('_', "").parse::<usize>().ok().filter(|n| *n > 0)
            })?
            .unwrap_or(default))
    }
}

/// Most connections `writers` or `partitions` may open: each is a server session, and
/// beyond a few they only compete for the same server's CPU (see docs/benchmarks.md).
const MAX_CONNECTIONS: usize = 16;

/// A number of connections (`writers`, `partitions`): 1 to `MAX_CONNECTIONS`.
pub fn connections(
    raw: &RawConfig,
    section: &str,
    key: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    let n = raw.positive(section, key, default)?;
    if n > MAX_CONNECTIONS {
        return Err(ConfigError::Invalid {
            section: section.into(),
            key: key.into(),
            value: n.to_string(),
            expected: format!("a whole number from 1 to {MAX_CONNECTIONS}"),
        });
    }
    Ok(n)
}

/// `36h`, `2d`, `90m`, `1d12h`, `45s`, `1w`: a sum of numbers, each with its unit.
pub fn parse_age(s: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    let mut any = false;
    for c in s.trim().chars().filter(|c| !c.is_whitespace()) {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: u64 = std::mem::take(&mut number).parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    (any && number.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

/// `parse_age`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    match s.trim().parse::<u64>() {
        Ok(0) => None,
        Ok(n) => Some(Duration::from_secs(n)),
        Err(_) => parse_age(s),
    }
}

/// configparser's `getboolean` vocabulary.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Keys taken to the end of the line: a password may hold any character, and a query may
/// hold `#` or `;` in a string literal or a comment of its own.
const VERBATIM: &[&str] = &["password", "query"];

/// Cuts `value ; comment` / `value # comment` where the marker follows white space, on each
/// line of a multi-line value.
fn strip_inline_comments(v: &str) -> String {
    let lines: Vec<&str> = v.split('\n').map(strip_inline_comment).collect();
    lines.join("\n").trim_end().to_string()
}

fn strip_inline_comment(v: &str) -> &str {
    let bytes = v.as_bytes();
    for i in 1..bytes.len() {
        if (bytes[i] == b';' || bytes[i] == b'#') && bytes[i - 1].is_ascii_whitespace() {
            return v[..i].trim_end();
        }
    }
    v.trim_end()
}

/// The `DBSYNC_*` variables. Every other variable is left alone: it is none of dbsync's
/// business and may hold bytes that are not UTF-8 (which `std::env::vars` panics on, with
/// the value in the message).
fn env_overrides(
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut env = HashMap::new();
    for (name, value) in vars {
        if !name.as_encoded_bytes().starts_with(b"DBSYNC_") {
            continue;
        }
        let name = name
            .into_string()
            .map_err(|n| ConfigError::NotUtf8Env(n.to_string_lossy().into_owned()))?;
        let value = value
            .into_string()
            .map_err(|_| ConfigError::NotUtf8Env(name.clone()))?;
        env.insert(name, value);
    }
    Ok(env)
}

/// A password in a file others can read is a password others know.
fn warn_if_others_can_read(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            log::warn!(
                "config file {} holds a password and other users can read it (mode {mode:o}): \
                 run `chmod 600 {}`, or move the password to DBSYNC_<SECTION>_PASSWORD",
                path.display(),
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawConfig {
        RawConfig::parse(text, HashMap::new()).unwrap()
    }

    #[test]
    fn reads_python_tool_format_with_inline_comments() {
        let c = raw("[general]\ndefault_target = azure            ; azure | local_sqlite\nTarget_Argument_Enabled = True\n");
        assert_eq!(c.get("general", "default_target").unwrap(), "azure");
        assert!(c.bool("general", "target_argument_enabled", false).unwrap());
    }

    #[test]
    fn password_is_verbatim() {
        let c = raw("[azure_mysql_db]\npassword = p;a #s=\"w\\'d\n");
        assert_eq!(
            c.get("azure_mysql_db", "password").unwrap(),
            "p;a #s=\"w\\'d"
        );
    }

    #[test]
    fn multiline_query_continues() {
        let c = raw("[external_db]\nquery = SELECT *\n    FROM t\n    WHERE a = 1\n");
        let q = c.get("external_db", "query").unwrap();
        assert!(q.contains("FROM t") && q.contains("WHERE a = 1"), "{q}");
    }

    #[test]
    fn query_is_verbatim_other_keys_lose_inline_comments() {
        let c = raw("[external_db]\nhost = h ; the replica\nquery = SELECT * FROM t\n    # only lot 4\n    WHERE lot = 'lot #4' ; -- x\n");
        assert_eq!(
            c.get("external_db", "query").unwrap(),
            "SELECT * FROM t\nWHERE lot = 'lot #4' ; -- x"
        );
        assert_eq!(c.get("external_db", "host").unwrap(), "h");
        let c = raw("[general]\nstrategy = merge ; one\n    more ; two\n");
        assert_eq!(c.get("general", "strategy").unwrap(), "merge\nmore");
    }

    #[test]
    fn default_section_is_inherited() {
        let c =
            raw("[DEFAULT]\nport = 3307\n[external_db]\nhost = h\n[azure_mysql_db]\nport = 1\n");
        assert_eq!(c.port("external_db").unwrap(), 3307);
        assert_eq!(c.port("azure_mysql_db").unwrap(), 1);
    }

    #[test]
    fn environment_is_read_without_assuming_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
        let vars = vec![
            (bytes(b"OTHER"), bytes(b"s\xffcret")),
            (bytes(b"\xffNAME"), bytes(b"x")),
            (bytes(b"DBSYNC_EXTERNAL_DB_HOST"), bytes(b"h")),
        ];
        let env = env_overrides(vars.into_iter()).unwrap();
        assert_eq!(env.len(), 1);
        assert_eq!(env["DBSYNC_EXTERNAL_DB_HOST"], "h");
        let vars = vec![(
            bytes(b"DBSYNC_AZURE_MYSQL_DB_PASSWORD"),
            bytes(b"hunter\xff2"),
        )];
        let e = env_overrides(vars.into_iter()).unwrap_err().to_string();
        assert!(
            e.contains("DBSYNC_AZURE_MYSQL_DB_PASSWORD") && e.contains("not valid UTF-8"),
            "{e}"
        );
        assert!(!e.contains("hunter"), "{e}");
    }

    #[test]
    fn environment_overrides_file() {
        let env = HashMap::from([(
            "DBSYNC_EXTERNAL_DB_HOST".to_string(),
            "10.0.0.9".to_string(),
        )]);
        let c = RawConfig::parse("[external_db]\nhost = a\n", env).unwrap();
        assert_eq!(c.get("external_db", "host").unwrap(), "10.0.0.9");
    }

    #[test]
    fn missing_key_names_section_key_and_env() {
        let c = raw("[external_db]\nhost = a\n");
        let e = c.require("external_db", "user").unwrap_err().to_string();
        assert!(
            e.contains("`user`")
                && e.contains("[external_db]")
                && e.contains("DBSYNC_EXTERNAL_DB_USER"),
            "{e}"
        );
        let e = c.require("local_db", "db_path").unwrap_err().to_string();
        assert!(e.contains("section [local_db]"), "{e}");
    }

    #[test]
    fn port_must_be_a_number() {
        let c = raw("[external_db]\nport = 33o6\n");
        let e = c.port("external_db").unwrap_err().to_string();
        assert!(e.contains("port") && e.contains("33o6"), "{e}");
    }

    #[test]
    fn secret_debug_hides_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
