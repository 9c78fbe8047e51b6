//! The SQLite target's lock: an exclusive `flock` on a file beside the database
//! (`<db_path>.dbsync-lock`); POSIX locks on the database file itself would clash with
//! SQLite's own. The file holds the holder's pid, host and start time, and is left in
//! place (deleting it would let a third run lock a new file while the second still waits
//! on the old one).

use super::SqliteTable;
use crate::target::{LockError, TargetLock};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `<db_path>.<table>.dbsync-lock`: one per table, so runs (and jobs) on different tables
/// of one file do not wait for each other; SQLite's own lock orders their writes. The
/// table's name is lower-cased (SQLite folds it), and anything but letters, digits and
/// `_-` replaced, with a hash of the name to keep names apart.
pub fn lock_path(t: &SqliteTable) -> PathBuf {
    let name = t.table.to_lowercase();
    let safe: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                true => c,
                false => '_',
            },
        )
        .collect();
    let safe = match safe == name {
        true => safe,
        false => format!(
            "{safe}-{:08x}",
            crate::transform::fnv1a(name.as_bytes()) as u32
        ),
    };
    let mut p = t.path.clone().into_os_string();
    p.push(format!(".{safe}.dbsync-lock"));
    PathBuf::from(p)
}

/// Takes the lock, waiting up to `wait` for another run to finish.
pub fn lock(t: &SqliteTable, wait: Duration) -> Result<TargetLock, LockError> {
    let path = lock_path(t);
    let target = format!("SQLite {}", t.path.display());
    let failed = |message: String| LockError::Failed {
        target: target.clone(),
        message: format!("{message} (check that [local_db] db_path is in a writable directory)"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| failed(format!("cannot open the lock file {}: {e}", path.display())))?;
    let start = Instant::now();
    loop {
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(failed(format!("flock {}: {err}", path.display())));
        }
        if crate::interrupt::stopping().is_some() || start.elapsed() >= wait {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => format!("lock file {}", path.display()),
                h => format!("{h}; lock file {}", path.display()),
            };
            return Err(LockError::Held {
                target,
                holder,
                waited: start.elapsed().as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let me = format!(
        "pid {} on {}, started {}",
        std::process::id(),
        hostname(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = file.write_all(me.as_bytes());
    Ok(TargetLock::File(file))
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "this host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
