//! A connection that failed under a statement: whether the connection itself is done for
//! (silent, cut, out of step) rather than the statement refused, and the words a user
//! reads for it. The driver says `os error 11` for a read timeout and `Packets out of
//! sync` for a connection used again after one; neither tells what waited, on which
//! connection, for how long, or which setting to change.

use std::time::Duration;

/// How a connection broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// Nothing moved within the socket's timeout: a silent link, or a server that stopped.
    Silent,
    /// Closed or reset under the statement (by the server, the network, or a stop).
    Cut,
    /// Its packets no longer follow the protocol: an answer meant for an earlier statement.
    OutOfStep,
}

/// Whether `e` means the connection is done for. A server's own error (a refused
/// statement) leaves it in step and usable; so does a value conversion.
pub fn broken(e: &mysql::Error) -> Option<Broken> {
    use mysql::DriverError as D;
    match e {
        mysql::Error::IoError(io) => Some(io_broken(io)),
        mysql::Error::CodecError(c) => Some(
            // The codec's error type is not exported; its source is the I/O error, if any.
            std::error::Error::source(c)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .map_or(Broken::OutOfStep, io_broken),
        ),
        mysql::Error::DriverError(D::PacketOutOfSync | D::UnexpectedPacket) => {
            Some(Broken::OutOfStep)
        }
        mysql::Error::TlsError(_) => Some(Broken::Cut),
        // The server ended the session: killed, shutting down, or dropping idle clients.
        mysql::Error::MySqlError(m) if matches!(m.code, 1053 | 1927 | 4031) => Some(Broken::Cut),
        _ => None,
    }
}

/// A timeout may come wrapped: the driver's LOAD DATA writer returns its codec's error
/// (whose source is the socket's) inside an `io::Error` of its own.
fn io_broken(io: &std::io::Error) -> Broken {
    use std::io::ErrorKind::*;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(io);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), WouldBlock | TimedOut) {
                return Broken::Silent;
            }
            if let Some(inner) = io.get_ref() {
                cause = Some(inner);
                continue;
            }
        }
        cause = e.source();
    }
    Broken::Cut
}

/// What a connection was doing when it broke, in the words of an error message.
pub struct Waiting<'a> {
    /// Which connection: "the target's control connection", "writer 1 of 2".
    pub who: &'a str,
    /// The step: "swapping in the new table"; empty when the message names it already.
    pub what: &'a str,
    /// How long it waited before giving up, and what set that: "[azure_mysql_db]
    /// read_timeout = 10 s".
    pub bound: Duration,
    pub setting: &'a str,
}

/// The phrase every given-up connection's message carries (`retry` treats it as
/// transient: the next attempt gets new connections).
pub const GIVEN_UP: &str = "the connection was given up";

impl Waiting<'_> {
    /// The failure in words.
    pub fn failed(&self, how: Broken) -> String {
        let who = self.who;
        let what = match self.what {
            "" => String::new(),
            w => format!(" while {w}"),
        };
        match how {
            Broken::Silent => {
                // The wait that happened: run_timeout may have cut the configured one short.
                let (waited, setting) = match crate::interrupt::cut_short(self.bound) {
                    Some((used, limit)) => (
                        used,
                        format!("{}, cut to {} by {limit}", self.setting, secs(used)),
                    ),
                    None => (self.bound, self.setting.to_string()),
                };
                format!(
                    "{who} got no answer for {}{what} ({setting}): the link went silent or the \
                     server stopped answering; {GIVEN_UP}",
                    secs(waited)
                )
            }
            Broken::Cut => format!(
                "{who} was cut{what} (closed or reset by the server, the network or a stop of \
                 the run); {GIVEN_UP}"
            ),
            Broken::OutOfStep => format!(
                "{who} lost step with the server{what} (an answer meant for an earlier \
                 statement); {GIVEN_UP}"
            ),
        }
    }
}

/// `10 s`, `2.5 s`.
pub fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn a_broken_connection_is_told_from_a_refused_statement() {
        let io = |k| mysql::Error::IoError(Error::new(k, "x"));
        assert_eq!(broken(&io(ErrorKind::WouldBlock)), Some(Broken::Silent));
        assert_eq!(broken(&io(ErrorKind::TimedOut)), Some(Broken::Silent));
        assert_eq!(broken(&io(ErrorKind::BrokenPipe)), Some(Broken::Cut));
        assert_eq!(broken(&io(ErrorKind::ConnectionReset)), Some(Broken::Cut));
        // As the driver's LOAD DATA writer wraps it.
        let inner = Error::new(ErrorKind::WouldBlock, "os error 11");
        let wrapped = mysql::Error::IoError(Error::other(inner));
        assert_eq!(broken(&wrapped), Some(Broken::Silent));
        let out = mysql::Error::DriverError(mysql::DriverError::PacketOutOfSync);
        assert_eq!(broken(&out), Some(Broken::OutOfStep));
        let server = |code| {
            mysql::Error::MySqlError(mysql::MySqlError {
                state: "HY000".into(),
                message: "m".into(),
                code,
            })
        };
        assert_eq!(broken(&server(1927)), Some(Broken::Cut));
        assert_eq!(broken(&server(1205)), None);
        assert_eq!(broken(&server(1064)), None);
    }

    #[test]
    fn the_words_name_the_wait_and_never_the_raw_error() {
        let w = Waiting {
            who: "writer 1 of 2",
            what: "streaming rows",
            bound: Duration::from_secs(10),
            setting: "[azure_mysql_db] read_timeout = 10 s",
        };
        let text = w.failed(Broken::Silent);
        assert_eq!(
            text,
            "writer 1 of 2 got no answer for 10 s while streaming rows ([azure_mysql_db] \
             read_timeout = 10 s): the link went silent or the server stopped answering; \
             the connection was given up"
        );
        assert!(crate::retry::is_transient_text(&text));
        assert!(crate::retry::is_transient_text(
            &w.failed(Broken::OutOfStep)
        ));
        assert_eq!(secs(Duration::from_millis(2500)), "2.5 s");
    }
}
