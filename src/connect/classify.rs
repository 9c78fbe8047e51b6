//! Telling "unreachable" (the fallback may serve) from every other connection failure
//! (it must not), and wording each so the user knows which setting to look at.

use super::{ConnectError, Endpoint, TlsMode};

/// Sorts a connect-time failure. Only a server that cannot be reached is `Unreachable`:
/// refused, connect timeout, unknown host, no route, or silence during the handshake (the
/// probe's read timeout). Anything else — a login the server refuses or the client cannot
/// perform, TLS, a peer that does not speak MySQL, an error we do not know — fails the run,
/// so the fallback's older rows never stand in for a problem someone has to fix.
pub fn classify(ep: &Endpoint, e: mysql::Error) -> ConnectError {
    classify_handshake(ep, e, ep.read_timeout, &ep.read_timeout_setting())
}

/// As `classify`, for a connection whose handshake may wait `bound`, which `setting`
/// names in the message of a silent handshake.
pub fn classify_handshake(
    ep: &Endpoint,
    e: mysql::Error,
    bound: std::time::Duration,
    setting: &str,
) -> ConnectError {
    let silent = || {
        ep.unreachable(format!(
            "the server accepted the TCP connection but did not answer the handshake within {} \
             ({setting})",
            super::wait::secs(bound)
        ))
    };
    match e {
        mysql::Error::IoError(io) => classify_io(ep, &io, silent),
        mysql::Error::CodecError(c) => {
            // The codec's error type is not exported; its source is the I/O error, if any.
            match std::error::Error::source(&c).and_then(|s| s.downcast_ref::<std::io::Error>()) {
                Some(io) => classify_io(ep, io, silent),
                None => ep.protocol_error(format!(
                    "{c} (the bytes it sent are not a MySQL handshake: is [{}] port a MySQL port?)",
                    ep.section
                )),
            }
        }
        mysql::Error::DriverError(d) => classify_driver(ep, d),
        mysql::Error::TlsError(t) => ep.tls_error(tls_hint(ep, &t.to_string())),
        mysql::Error::MySqlError(m) => classify_server(ep, m),
        other => ep.protocol_error(other.to_string()),
    }
}

/// An I/O error while connecting or during the handshake.
fn classify_io(
    ep: &Endpoint,
    io: &std::io::Error,
    silent: impl FnOnce() -> ConnectError,
) -> ConnectError {
    use std::io::ErrorKind::*;
    let cause = io.to_string();
    if looks_like_tls(&cause) {
        return ep.tls_error(cause);
    }
    match io.kind() {
        // A read timeout during the handshake: it took the TCP connection, said nothing.
        WouldBlock | TimedOut => silent(),
        k if unreachable_kind(k) => ep.unreachable(cause),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof => ep.protocol_error(
            format!("it closed the connection during the handshake ({cause})"),
        ),
        _ => ep.protocol_error(cause),
    }
}

/// Errors of the connection itself that mean no server could be reached there.
fn unreachable_kind(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused | TimedOut | HostUnreachable | NetworkUnreachable | AddrNotAvailable
    )
}

/// How std words a failed name lookup (its kind is not nameable); a unit test pins it.
const LOOKUP_FAILED: &str = "failed to lookup address information";

fn classify_driver(ep: &Endpoint, d: mysql::DriverError) -> ConnectError {
    use mysql::DriverError as D;
    let section = ep.section;
    match d {
        D::ConnectTimeout => ep.unreachable(format!(
            "{d} (no answer within [{section}] connect_timeout)"
        )),
        D::CouldNotConnect(Some((_, ref desc, kind))) => {
            if let Some(why) = desc.strip_prefix(LOOKUP_FAILED) {
                let why = why.trim_start_matches(':').trim();
                ep.unreachable(format!(
                    "host `{}` not found ({why}): check the spelling of [{section}] host",
                    ep.host
                ))
            } else if unreachable_kind(kind) {
                ep.unreachable(d.to_string())
            } else {
                ep.protocol_error(d.to_string())
            }
        }
        D::TlsNotSupported => ep.tls_error(
            "the server does not support TLS; set ssl_mode = disabled only if the network is trusted".into(),
        ),
        D::UnknownAuthPlugin(plugin) => ep.auth_unsupported(format!(
            "user `{}` logs in with authentication plugin `{plugin}`, which dbsync's MySQL client \
             does not speak: give that user a mysql_native_password or \
             caching_sha2_password login (e.g. ALTER USER ... IDENTIFIED VIA mysql_native_password \
             USING PASSWORD('...') on MariaDB)",
            ep.user
        )),
        D::CleartextPluginDisabled => ep.auth_unsupported(format!(
            "the server asks user `{}` for the password in clear text (mysql_clear_password, as PAM \
             and LDAP logins do), which dbsync does not send: give that user a \
             mysql_native_password or caching_sha2_password login",
            ep.user
        )),
        D::OldMysqlPasswordDisabled => ep.auth_unsupported(format!(
            "user `{}` has a pre-4.1 mysql_old_password hash, which dbsync does not accept: \
             set a new password on the server",
            ep.user
        )),
        other => ep.protocol_error(other.to_string()),
    }
}

/// The server answered with an error packet.
fn classify_server(ep: &Endpoint, m: mysql::MySqlError) -> ConnectError {
    let section = ep.section;
    if m.code == 1045 || m.code == 1044 || m.code == 1698 {
        let mut cause = m.to_string();
        if m.message.contains("using password: NO") {
            cause.push_str(&format!(
                " (no password was sent: [{section}] password is empty or missing; set it there, \
                 or in {})",
                crate::config::env_name(section, "password")
            ));
        } else if ep.tls.mode == TlsMode::Disabled {
            cause.push_str(&format!(
                " (with [{section}] ssl_mode = disabled: a server that requires secure transport, as Azure does, \
                 refuses every plaintext login like this; set ssl_mode = verify_identity with ssl_ca)"
            ));
        }
        return ConnectError::Auth {
            section,
            where_: ep.describe(),
            cause,
        };
    }
    let hint = if m.code == 3159 || m.message.contains("secure transport") {
        format!(
            " (the server accepts only TLS connections: set [{section}] ssl_mode = verify_identity with ssl_ca, or at least required)"
        )
    } else if m.code == 1049 {
        format!(" (check [{section}] database)")
    } else if m.code == 1040 {
        " (the server's max_connections is reached: retry later, or raise it on the server)".into()
    } else {
        String::new()
    };
    ConnectError::Server {
        where_: ep.describe(),
        cause: m.to_string(),
        hint,
    }
}

impl Endpoint {
    fn unreachable(&self, cause: String) -> ConnectError {
        ConnectError::Unreachable {
            section: self.section,
            where_: self.describe(),
            cause,
        }
    }

    fn protocol_error(&self, cause: String) -> ConnectError {
        ConnectError::Protocol {
            section: self.section,
            where_: self.describe(),
            cause,
        }
    }

    fn auth_unsupported(&self, cause: String) -> ConnectError {
        ConnectError::AuthUnsupported {
            section: self.section,
            where_: self.describe(),
            cause,
        }
    }
}

fn looks_like_tls(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("certificate") || m.contains("ssl") || m.contains("tls") || m.contains("handshake")
}

fn tls_hint(ep: &Endpoint, cause: &str) -> String {
    let m = cause.to_ascii_lowercase();
    if m.contains("hostname mismatch") || m.contains("host name") || m.contains("subject") {
        format!(
            "{cause} (the certificate is not for host `{}`: connect by the name in the certificate, or use ssl_mode = verify_ca)",
            ep.host
        )
    } else if m.contains("verify") || m.contains("certificate") {
        format!("{cause} (the server's certificate does not chain to ssl_ca: point ssl_ca at the CA that signed it)")
    } else {
        cause.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built through the config, so the test does not depend on `Endpoint`'s fields.
    fn ep() -> Endpoint {
        let text = "[general]\ndefault_target = local_sqlite\n\
            [external_db]\nhost = db.example.com\nuser = reader\npassword = hunter2\n\
            database = d\nquery = SELECT 1\n[local_db]\ndb_path = x.db\ntable_name = t\n";
        let raw = crate::config::RawConfig::parse(text, Default::default()).unwrap();
        crate::plan::Plan::from_config(&raw, None).unwrap().source
    }

    #[test]
    fn std_still_words_a_failed_lookup_as_classify_expects() {
        use std::net::ToSocketAddrs;
        let e = ("dbsync-unit.invalid", 3306).to_socket_addrs().unwrap_err();
        assert!(e.to_string().starts_with(LOOKUP_FAILED), "{e}");
    }

    #[test]
    fn only_connection_level_failures_are_unreachable() {
        use mysql::DriverError as D;
        use std::io::{Error, ErrorKind};
        let io = |k| mysql::Error::IoError(Error::new(k, "x"));
        let could_not = |k| D::CouldNotConnect(Some(("db:3306".into(), "x".into(), k)));
        let unreachable = [
            mysql::Error::DriverError(D::ConnectTimeout),
            mysql::Error::DriverError(could_not(ErrorKind::ConnectionRefused)),
            mysql::Error::DriverError(could_not(ErrorKind::HostUnreachable)),
            io(ErrorKind::WouldBlock),
            io(ErrorKind::TimedOut),
        ];
        for e in unreachable {
            let text = e.to_string();
            assert!(classify(&ep(), e).is_unreachable(), "{text}");
        }
        let failures = [
            mysql::Error::DriverError(D::UnknownAuthPlugin("client_ed25519".into())),
            mysql::Error::DriverError(D::CleartextPluginDisabled),
            mysql::Error::DriverError(D::UnexpectedPacket),
            mysql::Error::DriverError(D::CouldNotConnect(None)),
            mysql::Error::DriverError(could_not(ErrorKind::PermissionDenied)),
            io(ErrorKind::ConnectionReset),
            io(ErrorKind::BrokenPipe),
            io(ErrorKind::Other),
        ];
        for e in failures {
            let text = e.to_string();
            let c = classify(&ep(), e);
            assert!(!c.is_unreachable(), "{text}: {c}");
            assert!(!format!("{c} {c:?}").contains("hunter2"));
        }
    }

    #[test]
    fn an_unknown_host_is_named() {
        let desc = format!("{LOOKUP_FAILED}: Name or service not known");
        let e = mysql::Error::DriverError(mysql::DriverError::CouldNotConnect(Some((
            "db.example.com:3306".into(),
            desc,
            std::io::ErrorKind::Other,
        ))));
        let c = classify(&ep(), e);
        assert!(c.is_unreachable());
        assert!(
            c.to_string().contains(
                "host `db.example.com` not found (Name or service not known): check the spelling of [external_db] host"
            ),
            "{c}"
        );
    }
}
