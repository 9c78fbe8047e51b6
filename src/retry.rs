//! Which failures are worth the whole copy again (`[general] retries`): a connection lost,
//! reset, killed or silent, a server going away or failing over, a deadlock or a lock wait
//! timeout. A copy is atomic, so trying it again from the start is safe. Logins, TLS, SQL
//! and value errors fail the same way every time and are never retried.

use std::time::Duration;

/// Server and client error codes after which the same statement may well succeed.
pub fn is_transient_code(code: u16) -> bool {
    matches!(
        code,
        1040 // too many connections
            | 1053 // server shutdown in progress
            | 1152 // aborted connection
            | 1158
            ..=1161 // network read/write error or timeout
            | 1205 // lock wait timeout
            | 1213 // deadlock
            | 1290 // read-only (a failover in progress)
            | 1317 // query interrupted (KILL QUERY)
            | 1836 // read-only mode
            | 1927 // MariaDB: connection killed
            | 2006 // server has gone away
            | 2013 // lost connection during query
            | 4031 // MySQL 8: disconnected by the server
    )
}

/// Looks for a transient failure in an error's text (the whole cause chain): errors cross
/// threads and layers as text, with the server's `ERROR nnnn` or the OS error in them.
pub fn is_transient_text(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    let code = m.match_indices("error ").any(|(i, _)| {
        let digits: String = m[i + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().is_ok_and(is_transient_code)
    });
    code || [
        "connection reset",
        "connection refused",
        "connection aborted",
        "broken pipe",
        "timed out",
        "resource temporarily unavailable",
        "unexpected end of file",
        "failed to fill whole buffer",
        "connection was killed",
        "server has gone away",
        "lost connection",
        "connection to the server was lost",
        "connectionclosed",
        "connection closed",
        "server disconnected",
        "bytes remaining on stream",
        "the connection failed after",
        "lock was lost",
        crate::connect::wait::GIVEN_UP,
        // A connection that could not be made (`ConnectError::Unreachable`): refused, no
        // answer to the connect or to the handshake, no route, as while a server fails
        // over; not a host name that is not found (a typo does not heal by waiting).
        "did not answer the handshake",
        "no answer within",
        "no route to host",
        "network is unreachable",
        "host is unreachable",
        "database is locked",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// The wait before attempt `n` (2, 3, ...): 5 s, 15 s, then 30 s, so a failover (a
/// minute or two on Azure) can finish within the default retries.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(match attempt {
        0..=2 => 5,
        3 => 15,
        _ => 30,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_told_from_permanent_ones() {
        for t in [
            "MySqlError { ERROR 1213 (40001): Deadlock found when trying to get lock }",
            "ERROR 1927 (70100): Connection was killed",
            "IoError { Resource temporarily unavailable (os error 11) }",
            "IoError { Connection reset by peer (os error 104) }",
            "the connection to the server was lost (IoError { failed to fill whole buffer })",
            "ERROR 2013 (HY000): Lost connection to server during query",
            "IoError { server disconnected }",
            "CodecError { IO error: bytes remaining on stream }",
            "cannot lock X: cannot reach u@h:1/d ([azure_mysql_db] host/port): the server \
             accepted the TCP connection but did not answer the handshake within 10 s",
        ] {
            assert!(is_transient_text(t), "{t}");
        }
        for p in [
            "MySqlError { ERROR 1064 (42000): You have an error in your SQL syntax }",
            "ERROR 1045 (28000): Access denied for user 'x'",
            "row 3 of batch 1, column `p`: the value inf cannot be stored",
            "TLS with h failed under ssl_mode = verify_identity: certificate verify failed",
            "ERROR 12130: no such code",
            "cannot lock X: cannot reach u@typo:1/d ([azure_mysql_db] host/port): host `typo` \
             not found (Name or service not known): check the spelling of [azure_mysql_db] host",
        ] {
            assert!(!is_transient_text(p), "{p}");
        }
    }

    #[test]
    fn backoff_grows_to_cover_a_failover() {
        assert_eq!(backoff(2), Duration::from_secs(5));
        assert_eq!(backoff(3), Duration::from_secs(15));
        assert_eq!(backoff(50), Duration::from_secs(30));
    }
}
