//! When the target's connections fail: a control connection that went silent or was cut
//! is given up (never waited on again, not even to clean up), its error names the step,
//! the wait and the setting; an abandoned load is cleaned up on the control connection
//! when everything is healthy, else on a fresh connection with a short bound, or left to
//! the next run, which drops leftovers and says so.

use super::MySqlSink;
use crate::connect::cleanup;
use crate::connect::wait::{broken, secs, Waiting};
use crate::target::SinkError;
use std::time::Duration;

const CONTROL: &str = "the target's control connection";

/// What bounded a control-connection wait that failed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Bound {
    /// `read_timeout`: an ordinary statement's answer.
    Read,
    /// `[general] statement_timeout`: a statement that computes before it answers.
    Statement,
}

impl MySqlSink {
    /// A control-connection failure of `action`: a broken connection is given up, and the
    /// words say how long it waited under which setting; a server's refusal is shown as is.
    pub(super) fn fail(&mut self, action: &str, e: mysql::Error, bound: Bound) -> SinkError {
        let (wait, setting) = match bound {
            Bound::Read => (self.ep().read_timeout, self.ep().read_timeout_setting()),
            Bound::Statement => (
                self.target.statement_timeout,
                format!(
                    "[general] statement_timeout = {}",
                    secs(self.target.statement_timeout)
                ),
            ),
        };
        match self.given_up(e, wait, &setting) {
            Ok(message) => SinkError::Mysql {
                where_: self.ep().describe(),
                action: action.to_string(),
                message,
            },
            Err(e) => self.err(action, e),
        }
    }

    /// The words for a broken control connection, which is given up; the error back when
    /// the connection is not broken (the server refused the statement).
    pub(super) fn given_up(
        &mut self,
        e: mysql::Error,
        wait: Duration,
        setting: &str,
    ) -> Result<String, mysql::Error> {
        let Some(how) = broken(&e) else {
            return Err(e);
        };
        if let Some(c) = self.control.as_mut() {
            c.give_up();
        }
        Ok(Waiting {
            who: CONTROL,
            what: "",
            bound: wait,
            setting,
        }
        .failed(how))
    }

    /// The swap's wait: its server-side lock wait, then the answer's read_timeout.
    pub(super) fn swap_setting(&self, lock_wait: Duration) -> String {
        format!(
            "the swap's {} lock wait plus {}",
            secs(lock_wait),
            self.ep().read_timeout_setting()
        )
    }

    /// Abandons the load: the writers stopped, the staging table dropped, an apply rolled
    /// back. On the control connection when no connection failed; otherwise none of the
    /// run's connections is trusted, and a fresh one, bounded to a few seconds, ends the
    /// given-up sessions (what they hold: the staging table, the run's lock) and drops it.
    pub(super) fn abandon_load(&mut self) {
        let failed =
            cleanup::any_given_up(self.ep()) || self.control.as_ref().is_some_and(|c| c.is_dead());
        if let Some(w) = &self.writers {
            if failed {
                w.cut();
            } else {
                w.stop();
            }
        }
        self.join_writers();
        if self.settled {
            // A lost swap's answer was settled on a fresh connection, which dropped what
            // was left over; there is no staging table to drop.
            return;
        }
        let Some(control) = self.control.as_mut() else {
            return;
        };
        let drop = cleanup::drop_table(&self.target.endpoint, &self.staging);
        if !failed && !cleanup::any_given_up(&self.target.endpoint) {
            // An apply cut short must not be committed by the DROP (DDL commits). Bounded
            // as a cleanup is: the connection may be dying unnoticed.
            let statements = ["ROLLBACK".to_string(), drop.clone()];
            let done =
                control.with_timeout(cleanup::QUICK, |c| crate::connect::batch(c, &statements));
            match done {
                Ok(_) => return,
                Err((_, e)) if broken(&e).is_none() => {
                    return log::warn!(
                        "could not drop the staging table `{}` (the next run will): {}",
                        self.staging,
                        crate::connect::redact(&e.to_string(), &self.target.endpoint)
                    );
                }
                Err(_) => {}
            }
        }
        // Its session may hold the staging table (an open apply): ended with the others.
        control.give_up();
        match cleanup::on_fresh_connection(&self.target.endpoint, &[drop]) {
            Ok(()) => log::info!(
                "dropped the staging table `{}` on a fresh connection",
                self.staging
            ),
            Err(why) => log::warn!(
                "could not drop the staging table `{}` (the next run will): {why}",
                self.staging
            ),
        }
    }
}
