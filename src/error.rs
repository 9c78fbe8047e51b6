//! The run's one error type, each cause once: the config, the source, the target, the lock,
//! a stop (signal or run_timeout), a guard that kept the target; and what a retry and the
//! exit code make of each.

use crate::config::{ConfigError, GENERAL};
use crate::interrupt::{self, Interrupted, Stop};
use crate::report::Exit;
use crate::source::SourceError;
use crate::target::LockError;
use crate::target::SinkError;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    #[error(transparent)]
    Guard(#[from] Guard),
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    /// A job's table failed.
    #[error("table `{table}`: {cause}")]
    InTable { table: String, cause: Box<Error> },
    /// An attempt failed after `[general] run_timeout` ran out (a wait it cut short).
    #[error("stopped by {}: {cause}", interrupt::run_timeout_setting(*.limit))]
    PastRunTimeout { limit: Duration, cause: String },
    /// A retry that would start only after run_timeout ran out.
    #[error(
        "{cause}; not retried: the next attempt would start after a {} s pause, with {} s of {} left",
        .pause.as_secs(), .left.as_secs(), interrupt::run_timeout_setting(*.limit)
    )]
    NoTimeToRetry {
        cause: String,
        pause: Duration,
        left: Duration,
        limit: Duration,
    },
}

/// A check before the commit that kept the target as it was (`[general] allow_empty`,
/// `max_shrink_percent`).
#[derive(Debug, Error)]
pub enum Guard {
    #[error(
        "the source returned no rows, and {target} holds {current}: the target is kept \
         (set [general] allow_empty = true if an empty result is expected)"
    )]
    Empty { target: String, current: u64 },
    #[error(
        "the source returned {rows} rows, {lost:.1}% fewer than the {current} that {target} holds, \
         more than [general] max_shrink_percent = {max}: the target is kept (raise max_shrink_percent \
         if the drop is expected)"
    )]
    Shrunk {
        target: String,
        rows: u64,
        current: u64,
        lost: f64,
        max: f64,
    },
}

impl Error {
    /// Worth the whole copy again (see `retry`). An unreachable primary counts (a failover
    /// may be under way) when no fallback took its place.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::InTable { cause, .. } => cause.is_transient(),
            Error::Config(_) | Error::Interrupted(_) | Error::Guard(_) => false,
            Error::Lock(LockError::Held { .. }) => false,
            Error::PastRunTimeout { .. } | Error::NoTimeToRetry { .. } => false,
            // Trying again at once could read the target before that COMMIT shows.
            Error::Sink(SinkError::Unknown { .. }) => false,
            // The target may hold the new rows: a retry that failed would report a failed
            // run over a replaced target.
            Error::Sink(SinkError::SwapUnknown { .. }) => false,
            // Unreachable, but not a host name that does not exist (a typo stays one).
            Error::Source(SourceError::Connect(c)) => {
                c.is_unreachable() && crate::retry::is_transient_text(&c.to_string())
            }
            other => crate::retry::is_transient_text(&chain(other)),
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::InTable { cause, .. } => cause.exit(),
            Error::Config(_) => Exit::Usage,
            Error::Lock(LockError::Held { .. }) | Error::Sink(SinkError::Busy { .. }) => {
                Exit::Locked
            }
            Error::Interrupted(Interrupted(Stop::Signal(sig))) => Exit::interrupted(*sig),
            _ => Exit::Failed,
        }
    }

    /// This failure, named after run_timeout when that ran out meanwhile: the failure is
    /// most likely a wait the stop cut short. A signal's is left as it is: a failure such as
    /// a swap of unknown outcome must not pass for an interruption; but a target that
    /// refused the load because of the stop (a swap not tried, an apply rolled back) was
    /// interrupted, and exits as such.
    pub fn past_run_timeout(self) -> Error {
        match (interrupt::stopping(), &self) {
            (_, Error::Interrupted(_)) => self,
            (
                Some(stop @ Stop::Signal(_)),
                Error::Sink(SinkError::Refused { .. } | SinkError::Busy { .. }),
            ) => Error::Interrupted(Interrupted(stop)),
            (Some(Stop::RunTimeout(limit)), _) => Error::PastRunTimeout {
                limit,
                cause: chain(&self),
            },
            _ => self,
        }
    }
}

/// A `[general]` setting that does not fit the query (exit 2).
pub fn invalid(key: &str, value: &str, expected: String) -> Error {
    Error::Config(ConfigError::Invalid {
        section: GENERAL.into(),
        key: key.into(),
        value: value.into(),
        expected,
    })
}

/// The target refuses the run, and is kept as it is (exit 1).
pub fn refused(target: String, why: String) -> Error {
    Error::Sink(SinkError::Refused { target, why })
}

/// The error and its causes, each once, as one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = crate::connect::plain_server_errors(&e.to_string());
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = crate::connect::plain_server_errors(&c.to_string());
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::ConnectError;

    fn sink(message: &str) -> Error {
        Error::Sink(SinkError::Mysql {
            where_: "dbsync@azure".into(),
            action: "inserting rows".into(),
            message: message.into(),
        })
    }

    #[test]
    fn connections_lost_or_killed_are_retried() {
        for message in [
            "ERROR 2013 (HY000): Lost connection to server during query",
            "ERROR 1213 (40001): Deadlock found when trying to get lock",
            "writer 1 of 1 got no answer for 10 s; the connection was given up",
            "Connection reset by peer (os error 104)",
        ] {
            assert!(sink(message).is_transient(), "{message}");
        }
        let unreachable = Error::Source(SourceError::Connect(ConnectError::Unreachable {
            section: "external_db",
            where_: "reader@db".into(),
            cause: "Connection refused".into(),
        }));
        assert!(unreachable.is_transient());
    }

    #[test]
    fn what_fails_the_same_way_every_time_is_not_retried() {
        for message in [
            "ERROR 1064 (42000): You have an error in your SQL syntax",
            "ERROR 1045 (28000): Access denied for user",
            "Data too long for column 'v' at row 1",
        ] {
            assert!(!sink(message).is_transient(), "{message}");
        }
        let auth = Error::Source(SourceError::Connect(ConnectError::Auth {
            section: "external_db",
            where_: "reader@db".into(),
            cause: "Access denied".into(),
        }));
        assert!(!auth.is_transient());
        let guard = Error::Guard(Guard::Empty {
            target: "t".into(),
            current: 5,
        });
        assert!(!guard.is_transient());
        assert_eq!(guard.exit(), Exit::Failed);
        // A COMMIT without an answer: whether it applied is unknown, so not at once.
        let unknown = Error::Sink(SinkError::Unknown {
            target: "t".into(),
            message: "the connection was given up".into(),
        });
        assert!(!unknown.is_transient());
        let held = Error::Lock(LockError::Held {
            target: "t".into(),
            holder: "pid 7".into(),
            waited: 0,
        });
        assert!(!held.is_transient());
        assert_eq!(held.exit(), Exit::Locked);
    }

    #[test]
    fn stops_exit_by_their_cause() {
        let sigterm = Error::Interrupted(Interrupted(Stop::Signal(libc::SIGTERM)));
        assert_eq!(sigterm.exit(), Exit::Sigterm);
        assert!(!sigterm.is_transient());
        let deadline = Error::Interrupted(Interrupted(Stop::RunTimeout(Duration::from_secs(25))));
        assert_eq!(deadline.exit(), Exit::Failed);
        assert_eq!(
            invalid("retries", "x", "a number".into()).exit(),
            Exit::Usage
        );
    }

    #[test]
    fn the_chain_names_each_cause_once() {
        let e = sink("ERROR 1205 (HY000): Lock wait timeout exceeded");
        assert_eq!(
            chain(&e),
            "MySQL target dbsync@azure: inserting rows: ERROR 1205 (HY000): Lock wait timeout exceeded"
        );
    }
}
