//! MySQL endpoints: the TLS modes of MySQL's `--ssl-mode`, connection options (TLS,
//! timeouts, keepalive) for every connection a run makes, and the one rule that tells "unreachable" (fallback may
//! serve) from every other connection failure (it must not).

mod classify;
pub mod cleanup;
mod plain;
pub mod session;
mod settings;
pub mod wait;

pub use classify::classify;
pub use plain::plain_server_errors;
pub use session::{batch, batch_changes, batch_until_error, Abandon, Session};

use crate::config::Secret;
use mysql::{OptsBuilder, SslOpts};
use std::path::PathBuf;
use std::time::Duration;

/// MySQL's `--ssl-mode`, spelled any way users write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disabled,
    /// TLS when the server offers it, plaintext otherwise; the certificate is not checked.
    Preferred,
    /// TLS or nothing; the certificate is not checked.
    Required,
    /// TLS; the certificate must chain to `ssl_ca` (or a system root).
    VerifyCa,
    /// As `VerifyCa`, and the host name must match the certificate.
    VerifyIdentity,
}

impl TlsMode {
    pub fn parse(s: &str) -> Option<TlsMode> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "disabled" | "disable" | "false" | "off" | "0" => Some(TlsMode::Disabled),
            "preferred" | "prefer" => Some(TlsMode::Preferred),
            "required" | "require" | "true" | "on" | "1" => Some(TlsMode::Required),
            "verify_ca" => Some(TlsMode::VerifyCa),
            "verify_identity" | "verify_full" => Some(TlsMode::VerifyIdentity),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Preferred => "preferred",
            TlsMode::Required => "required",
            TlsMode::VerifyCa => "verify_ca",
            TlsMode::VerifyIdentity => "verify_identity",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub mode: TlsMode,
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM), for users created `REQUIRE X509`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// native-tls parses the system's whole CA bundle (`SSL_CERT_FILE`, found by
/// openssl-probe) for every TLS connection: about 35 ms each here, three times per run into
/// MySQL. When every endpoint that verifies certificates names its CA (`ssl_ca`, which each
/// connection adds to what it trusts), that parse buys nothing: the bundle named is that CA
/// instead (as the Python tool trusted only `ssl_ca`). The hashed certificate directory
/// (`SSL_CERT_DIR`, or the system's) is still consulted, lazily. Call before any connection:
/// the probe runs once.
pub fn skip_system_bundle(endpoints: &[&Endpoint]) {
    let verifying: Vec<&Endpoint> = endpoints
        .iter()
        .copied()
        .filter(|e| matches!(e.tls.mode, TlsMode::VerifyCa | TlsMode::VerifyIdentity))
        .collect();
    let cas: Vec<&PathBuf> = verifying.iter().filter_map(|e| e.tls.ca.as_ref()).collect();
    match cas.first() {
        Some(ca) if cas.len() == verifying.len() && ca.is_file() => {
            let ca = std::fs::canonicalize(ca).unwrap_or_else(|_| ca.to_path_buf());
            log::debug!("TLS: trusting the configured CAs, not the system bundle, as the base");
            // No other thread reads the environment at this point (only the signal watcher
            // runs, waiting on signals).
            std::env::set_var("SSL_CERT_FILE", ca);
        }
        _ => {}
    }
}

/// Where a MySQL server is and how to log in. `Debug` never shows the password.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The config section it came from, for error messages.
    pub section: &'static str,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub database: String,
    pub tls: Tls,
    pub connect_timeout: Duration,
    /// Silence allowed while the server should be talking (`read_timeout`): every read and
    /// write on every connection, except statements run `Session::with_timeout`.
    pub read_timeout: Duration,
    /// Pin the session to UTC, so TIMESTAMP text written means the same instant: true for
    /// a target. A source keeps the zone the server gives every client, so the user's
    /// `NOW()`, `CURDATE()` or `DATE(ts)` mean what they mean in the mysql client.
    pub utc_session: bool,
}

/// What one connection adds to its setup, saving round trips (each one counts on a remote
/// link): session settings joined to its first statement, and the server's
/// `max_allowed_packet` when it is already known (otherwise the driver asks for it).
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// `name = value` assignments for the connection's first `SET`.
    pub settings: Vec<String>,
    pub max_packet: Option<usize>,
}

impl Setup {
    /// For a connection that idles for the whole load (the run's lock, the target's control
    /// connection): sites often lower `wait_timeout`. Its statements are small, so the
    /// driver is given the protocol's largest packet instead of asking the server.
    pub fn staying_open() -> Setup {
        Setup {
            settings: vec![STAY_OPEN.to_string()],
            max_packet: Some(MAX_PACKET),
        }
    }
}

/// A year without a statement before the server may close the connection.
const STAY_OPEN: &str = "SESSION wait_timeout = 31536000, interactive_timeout = 31536000";
/// The protocol's largest `max_allowed_packet` (1 GiB).
const MAX_PACKET: usize = 1 << 30;

impl Endpoint {
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    /// The server, as the cleanup of given-up connections knows it.
    pub fn origin(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `[azure_mysql_db] read_timeout = 10 s`: what bounds an ordinary wait.
    pub fn read_timeout_setting(&self) -> String {
        format!(
            "[{}] read_timeout = {}",
            self.section,
            wait::secs(self.read_timeout)
        )
    }

    fn ssl_opts(&self, mode: TlsMode) -> Result<Option<SslOpts>, ConnectError> {
        let (accept_invalid, skip_domain) = match mode {
            TlsMode::Disabled => return Ok(None),
            TlsMode::Preferred | TlsMode::Required => (true, true),
            TlsMode::VerifyCa => (false, true),
            TlsMode::VerifyIdentity => (false, false),
        };
        let ssl = SslOpts::default()
            .with_danger_accept_invalid_certs(accept_invalid)
            .with_danger_skip_domain_validation(skip_domain)
            .with_root_cert_path(self.tls.ca.clone());
        Ok(Some(ssl.with_client_identity(self.client_identity()?)))
    }

    /// The client certificate and key as the PKCS#12 file native-tls wants, made once per
    /// process in a private temp file.
    fn client_identity(&self) -> Result<Option<mysql::ClientIdentity>, ConnectError> {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        // The PKCS#12 (which holds the private key) lives in a file with no name: it is
        // unlinked as it is created, and native-tls reads it through /proc/self/fd, so it
        // cannot outlive the process, even one killed by SIGKILL.
        static MADE: OnceLock<Mutex<HashMap<(PathBuf, PathBuf), std::fs::File>>> = OnceLock::new();
        let (cert, key) = match (&self.tls.cert, &self.tls.key) {
            (None, None) => return Ok(None),
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => {
                return Err(
                    self.tls_error("ssl_cert and ssl_key go together: set both, or neither".into())
                );
            }
        };
        let mut made = MADE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let file = match made.entry((cert, key)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let (cert, key) = e.key();
                let p12 = pkcs12(cert, key).map_err(|m| self.tls_error(m))?;
                let mut file = tempfile::tempfile().map_err(|m| self.tls_error(m.to_string()))?;
                std::io::Write::write_all(&mut file, &p12)
                    .map_err(|m| self.tls_error(m.to_string()))?;
                e.insert(file)
            }
        };
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file));
        Ok(Some(
            mysql::ClientIdentity::new(PathBuf::from(path)).with_password(""),
        ))
    }

    fn tls_error(&self, cause: String) -> ConnectError {
        ConnectError::Tls {
            section: self.section,
            where_: self.describe(),
            mode: self.tls.mode.as_str(),
            cause,
        }
    }

    /// Options for one connection with the given TLS mode (never `Preferred`: see `connect`).
    pub fn opts(&self, mode: TlsMode, with_db: bool) -> Result<OptsBuilder, ConnectError> {
        self.opts_with(mode, with_db, &Setup::default())
    }

    /// As `opts`, with what this connection adds to its setup.
    pub fn opts_with(
        &self,
        mode: TlsMode,
        with_db: bool,
        setup: &Setup,
    ) -> Result<OptsBuilder, ConnectError> {
        // One statement: each is a round trip, which a remote server makes felt.
        let mut init = String::from(if self.utc_session {
            "SET NAMES utf8mb4, time_zone = '+00:00'"
        } else {
            "SET NAMES utf8mb4"
        });
        for s in &setup.settings {
            init.push_str(", ");
            init.push_str(s);
        }
        Ok(OptsBuilder::new()
            .ip_or_hostname(Some(self.host.clone()))
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose().to_string()))
            .db_name(if with_db {
                Some(self.database.clone())
            } else {
                None
            })
            .prefer_socket(false)
            .tcp_connect_timeout(Some(self.connect_timeout))
            .read_timeout(Some(self.read_timeout))
            .write_timeout(Some(self.read_timeout))
            // Keepalive notices a peer that vanished (its kernel no longer answers); a
            // silent peer whose kernel still ACKs is what read_timeout is for.
            .tcp_keepalive_time_ms(Some(60_000))
            .tcp_keepalive_probe_interval_secs(Some(10))
            .tcp_keepalive_probe_count(Some(6))
            // Known: the driver does not ask the server (a round trip).
            .max_allowed_packet(setup.max_packet)
            .ssl_opts(self.ssl_opts(mode)?)
            .init(vec![init]))
    }

    /// Connects, resolving `Preferred` into the mode that worked, which is returned so later
    /// connections (the reader's, the writers') use the same.
    ///
    /// `read_timeout` overrides the endpoint's for this connection, the handshake
    /// included: the probe uses a short one, so a server that accepts TCP but never
    /// answers is "unreachable" instead of a run that hangs.
    pub fn connect(
        &self,
        with_db: bool,
        read_timeout: Option<Duration>,
    ) -> Result<(Session, TlsMode), ConnectError> {
        self.connect_with(with_db, read_timeout, &Setup::default())
    }

    /// As `connect`, with what this connection adds to its setup.
    pub fn connect_with(
        &self,
        with_db: bool,
        read_timeout: Option<Duration>,
        setup: &Setup,
    ) -> Result<(Session, TlsMode), ConnectError> {
        match read_timeout {
            Some(bound) => {
                let setting = format!("[{}] connect_timeout, at least 5 s", self.section);
                self.connect_bounded(with_db, bound, &setting, setup)
            }
            None => {
                let setting = self.read_timeout_setting();
                self.connect_bounded(with_db, self.read_timeout, &setting, setup)
            }
        }
    }

    /// As `connect_with`, the handshake (and the connection's statements) bounded by
    /// `timeout`, which `setting` names in the error of a silent handshake.
    pub fn connect_bounded(
        &self,
        with_db: bool,
        timeout: Duration,
        setting: &str,
        setup: &Setup,
    ) -> Result<(Session, TlsMode), ConnectError> {
        let mode = self.tls.mode;
        let first = if mode == TlsMode::Preferred {
            TlsMode::Required
        } else {
            mode
        };
        // Near run_timeout a connection being made (not yet within reach of a stop's
        // shutdown) waits no longer than the time left.
        let (timeout, setting) = capped(timeout, setting);
        let mut ep = self.clone();
        ep.connect_timeout = crate::interrupt::cap(self.connect_timeout);
        let classify = |e| classify::classify_handshake(self, e, timeout, &setting);
        let open = |m| -> Result<Result<Session, mysql::Error>, ConnectError> {
            let opts = ep
                .opts_with(m, with_db, setup)?
                .read_timeout(Some(timeout))
                .write_timeout(Some(timeout));
            Ok(Session::open(opts, Some(timeout)).map(|s| s.of(self.origin(), &self.user)))
        };
        match open(first)? {
            Ok(c) => Ok((c, first)),
            Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported))
                if mode == TlsMode::Preferred =>
            {
                let conn = open(TlsMode::Disabled)?.map_err(classify)?;
                // Once per section and run, however many connections find it out.
                static WARNED: std::sync::Mutex<Vec<&'static str>> =
                    std::sync::Mutex::new(Vec::new());
                let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
                if warned.contains(&self.section) {
                    return Ok((conn, TlsMode::Disabled));
                }
                warned.push(self.section);
                log::warn!(
                    "[{}] ssl_mode = preferred: {} does not offer TLS, so queries and rows cross the \
                     network unencrypted; set ssl_mode = disabled if that network is trusted, or \
                     enable TLS on the server and set ssl_mode = verify_identity",
                    self.section,
                    self.host
                );
                Ok((conn, TlsMode::Disabled))
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// A further connection in a mode `connect` already settled, with the endpoint's
    /// read timeout.
    pub fn session(
        &self,
        mode: TlsMode,
        with_db: bool,
        setup: &Setup,
    ) -> Result<Session, ConnectError> {
        let (timeout, setting) = capped(self.read_timeout, &self.read_timeout_setting());
        let mut ep = self.clone();
        ep.connect_timeout = crate::interrupt::cap(self.connect_timeout);
        let opts = ep
            .opts_with(mode, with_db, setup)?
            .read_timeout(Some(timeout))
            .write_timeout(Some(timeout));
        Session::open(opts, Some(self.read_timeout))
            .map(|s| s.of(self.origin(), &self.user))
            .map_err(|e| classify::classify_handshake(self, e, timeout, &setting))
    }
}

/// A handshake's bound near run_timeout (see `interrupt::cap`), and the words for it: the
/// setting, and what cut it short, if anything did.
fn capped(timeout: Duration, setting: &str) -> (Duration, String) {
    let used = crate::interrupt::cap(timeout);
    match crate::interrupt::cut_short(timeout) {
        Some((used, limit)) => (
            used,
            format!("{setting}, cut to {} by {limit}", wait::secs(used)),
        ),
        None => (used, setting.to_string()),
    }
}

/// Why a connection could not be made. Only `Unreachable` lets the fallback serve.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach {where_} ([{section}] host/port): {cause}")]
    Unreachable {
        section: &'static str,
        where_: String,
        cause: String,
    },
    #[error(
        "TLS with {where_} failed under ssl_mode = {mode} ([{section}] ssl_mode / ssl_ca): {cause}"
    )]
    Tls {
        section: &'static str,
        where_: String,
        mode: &'static str,
        cause: String,
    },
    #[error("{where_} refused the login ([{section}] user / password): {cause}")]
    Auth {
        section: &'static str,
        where_: String,
        cause: String,
    },
    #[error("{where_} wants a login dbsync cannot perform ([{section}] user): {cause}")]
    AuthUnsupported {
        section: &'static str,
        where_: String,
        cause: String,
    },
    #[error(
        "{where_} answered, but not as a MySQL server does ([{section}] host / port): {cause}"
    )]
    Protocol {
        section: &'static str,
        where_: String,
        cause: String,
    },
    #[error("{where_} refused the connection: {cause}{hint}")]
    Server {
        where_: String,
        cause: String,
        hint: String,
    },
}

impl ConnectError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ConnectError::Unreachable { .. })
    }
}

/// PEM certificate + key → PKCS#12 (empty password), naming the file that is wrong.
fn pkcs12(cert: &std::path::Path, key: &std::path::Path) -> Result<Vec<u8>, String> {
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read(p).map_err(|e| format!("cannot read {what} {}: {e}", p.display()))
    };
    let cert_pem = read(cert, "ssl_cert")?;
    let key_pem = read(key, "ssl_key")?;
    let x509 = openssl::x509::X509::from_pem(&cert_pem)
        .map_err(|e| format!("ssl_cert {} is not a PEM certificate: {e}", cert.display()))?;
    let pkey = openssl::pkey::PKey::private_key_from_pem(&key_pem)
        .map_err(|e| format!("ssl_key {} is not a PEM private key: {e}", key.display()))?;
    openssl::pkcs12::Pkcs12::builder()
        .name("dbsync")
        .pkey(&pkey)
        .cert(&x509)
        .build2("")
        .and_then(|p| p.to_der())
        .map_err(|e| format!("cannot combine ssl_cert and ssl_key: {e}"))
}

/// Hides an endpoint's password in text that came from a library (and so might echo it).
pub fn redact(msg: &str, ep: &Endpoint) -> String {
    let msg = &plain_server_errors(msg);
    let pass = ep.password.expose();
    // Very short passwords would blank out ordinary letters; they are also never echoed
    // by the libraries used, which print URLs and options without them.
    if pass.len() < 3 {
        return msg.to_string();
    }
    let encoded: String = url::form_urlencoded::byte_serialize(pass.as_bytes()).collect();
    msg.replace(pass, "***").replace(&encoded, "***")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_mode_spellings() {
        for s in ["require", "REQUIRED", "Required"] {
            assert_eq!(TlsMode::parse(s), Some(TlsMode::Required));
        }
        for s in ["verify-ca", "VERIFY_CA", "verify_ca"] {
            assert_eq!(TlsMode::parse(s), Some(TlsMode::VerifyCa));
        }
        assert_eq!(
            TlsMode::parse("Verify-Identity"),
            Some(TlsMode::VerifyIdentity)
        );
        assert_eq!(TlsMode::parse("DISABLED"), Some(TlsMode::Disabled));
        assert_eq!(TlsMode::parse("preferred"), Some(TlsMode::Preferred));
        assert_eq!(TlsMode::parse("sometimes"), None);
    }

    #[test]
    fn options_carry_the_password_and_debug_hides_it() {
        let ep = Endpoint {
            section: "external_db",
            host: "db.example.com".into(),
            port: 3307,
            user: "re@der".into(),
            password: Secret::new("p;a#s=\"w\\'d/?"),
            database: "veh icles".into(),
            tls: Tls {
                mode: TlsMode::Disabled,
                ca: None,
                cert: None,
                key: None,
            },
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(7),
            utc_session: false,
        };
        let opts = mysql::Opts::from(ep.opts(TlsMode::Disabled, true).unwrap());
        assert_eq!(opts.get_pass(), Some("p;a#s=\"w\\'d/?"));
        assert_eq!(opts.get_user(), Some("re@der"));
        assert_eq!(opts.get_db_name(), Some("veh icles"));
        assert_eq!(opts.get_tcp_port(), 3307);
        assert_eq!(opts.get_read_timeout(), Some(&Duration::from_secs(7)));
        assert!(!format!("{ep:?}").contains("p;a#s"));
    }
}
