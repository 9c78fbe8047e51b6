//! `--dry-run` on the SQLite target: whether a run could write it, found without changing
//! anything (no file, directory or lock file is created): the directory, the file opened
//! for writing, a name another kind of object holds, the free space, the run's lock.

use super::lock::lock_path;
use super::SqliteTable;
use crate::target::Check;
use rusqlite::{Connection, OpenFlags};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Every check, in the order a run meets them.
pub fn check(t: &SqliteTable) -> Vec<Check> {
    let dir = match t.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let mut out = vec![directory(&dir)];
    let mut needed = 0;
    if t.path.exists() {
        // The table's pages may still sit in the write-ahead log.
        let mut wal = t.path.clone().into_os_string();
        wal.push("-wal");
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        needed = size(&t.path) + size(Path::new(&wal));
        out.extend(file(t));
    }
    out.push(free_space(&dir, needed));
    out.push(lock(t));
    out
}

/// The nearest directory of `dir` (itself or an ancestor) that exists: where the run
/// writes, or creates what is missing.
fn existing(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|d| d.is_dir())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Whether this process may create files in `dir` (access(2): the real user's rights).
fn writable(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path that lives across the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

fn directory(dir: &Path) -> Check {
    let found = existing(dir);
    let shown = dir.display();
    match (found == dir, writable(&found)) {
        (true, true) => Check::ok(format!("directory {shown}: writable")),
        (false, true) => Check::ok(format!(
            "directory {shown}: missing, would be created in {}",
            found.display()
        )),
        (true, false) => Check::failed(format!(
            "directory {shown}: not writable by this user (check [local_db] db_path)"
        )),
        (false, false) => Check::failed(format!(
            "directory {shown}: missing, and {} is not writable by this user (check [local_db] \
             db_path)",
            found.display()
        )),
    }
}

/// The file opened for writing, and what holds the table's name there.
fn file(t: &SqliteTable) -> Vec<Check> {
    let shown = t.path.display();
    let conn = match Connection::open_with_flags(&t.path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::failed(format!(
                "file {shown}: cannot open it for writing: {e}"
            ))]
        }
    };
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        return vec![Check::failed(format!(
            "file {shown}: read-only for this user"
        ))];
    }
    let mut out = vec![Check::ok(format!("file {shown}: opens for writing"))];
    let kind: Result<Option<String>, _> = conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE AND type <> 'table'",
            [&t.table],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        });
    out.push(match kind {
        Ok(None) => Check::ok(format!("name `{}`: free for a table", t.table)),
        Ok(Some(kind)) => Check::failed(format!(
            "name `{}`: the file has a {kind} of that name, which the new table cannot take \
             (point [local_db] table_name elsewhere, or drop the {kind})",
            t.table
        )),
        Err(e) => Check::failed(format!("file {shown}: cannot read its schema: {e}")),
    });
    out
}

/// Room for the new table beside the old one until the swap: at most about the file's
/// size again (a new file: only what the rows take, which nothing knows beforehand).
fn free_space(dir: &Path, needed: u64) -> Check {
    let found = existing(dir);
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let Ok(c) = CString::new(found.as_os_str().as_bytes()) else {
        return Check::failed(format!("free space on {}: unknown path", found.display()));
    };
    // SAFETY: a NUL-terminated path and a statvfs the call fills.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        let e = std::io::Error::last_os_error();
        return Check::failed(format!("free space on {}: {e}", found.display()));
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let text = format!(
        "free space on {}: {:.0} MiB (the new table is written beside the old one: up to \
         {:.1} MiB, the file's size)",
        found.display(),
        mib(free),
        mib(needed)
    );
    match free > needed {
        true => Check::ok(text),
        false => Check::failed(text),
    }
}

/// The run's lock, tried and let go at once; a lock file that does not exist is held by
/// nobody (and is not created).
fn lock(t: &SqliteTable) -> Check {
    let path = lock_path(t);
    let Ok(file) = std::fs::OpenOptions::new().read(true).open(&path) else {
        return Check::ok("lock: free".to_string());
    };
    // SAFETY: flock on a descriptor this function owns; closing it lets go.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Check::ok("lock: free".to_string());
    }
    let holder = std::fs::read_to_string(&path).unwrap_or_default();
    Check::failed(format!(
        "lock: another run holds it ({}; lock file {})",
        holder.trim(),
        path.display()
    ))
}
