//! A MySQL server's section of the config, made into an `Endpoint` once.

use super::{Endpoint, Tls, TlsMode};
use crate::config::{ConfigError, RawConfig, Secret};
use std::path::PathBuf;
use std::time::Duration;

impl Endpoint {
    /// A MySQL server's section of the config (`[external_db]`, `[azure_mysql_db]`).
    pub fn from_config(
        raw: &RawConfig,
        section: &'static str,
        default_tls: TlsMode,
    ) -> Result<Endpoint, ConfigError> {
        let ty = raw.get(section, "type").unwrap_or_else(|| "mysql".into());
        if !matches!(ty.trim().to_ascii_lowercase().as_str(), "mysql" | "mariadb") {
            return Err(ConfigError::Invalid {
                section: section.into(),
                key: "type".into(),
                value: ty,
                expected: "mysql (the only kind of server dbsync talks to)".into(),
            });
        }
        let mode = raw
            .parsed(
                section,
                "ssl_mode",
                "disabled, preferred, required, verify_ca or verify_identity",
                TlsMode::parse,
            )?
            .unwrap_or(default_tls);
        let path = |key| {
            raw.get(section, key)
                .map(|p| PathBuf::from(p.trim()))
                .filter(|p| !p.as_os_str().is_empty())
        };
        Ok(Endpoint {
            section,
            host: raw.require(section, "host")?.trim().to_string(),
            port: raw.port(section)?,
            user: raw.require(section, "user")?.trim().to_string(),
            password: Secret::new(raw.get(section, "password").unwrap_or_default()),
            database: raw.require(section, "database")?.trim().to_string(),
            tls: Tls {
                mode,
                ca: path("ssl_ca"),
                cert: path("ssl_cert"),
                key: path("ssl_key"),
            },
            connect_timeout: Duration::from_secs(
                raw.positive(section, "connect_timeout", 10)? as u64
            ),
            read_timeout: Duration::from_secs(raw.positive(section, "read_timeout", 300)? as u64),
            utc_session: false,
        })
    }
}
