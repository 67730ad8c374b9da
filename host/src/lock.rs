//! The data-dir lock: one `meshlink up` per data dir. Two nodes on one dir would run with
//! the same identity, connect to each other, and the one that exits would delete the
//! other's `control.url`. The lock is an exclusive `flock(2)` on `<data dir>/lock`, taken
//! before anything in the dir is read or written and held for the life of the process:
//! the kernel drops it when the process ends, however it ends, so a stale lock file
//! never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::HostError;

/// The lock file's name in the data dir. It holds the owner's process id (for the error
/// a second instance prints); its content means nothing to the lock itself.
pub const LOCK_FILE: &str = "lock";

/// Held while the node runs; dropping it (or exiting) releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the lock of `data_dir` (created, owner-only, if missing), or fails at once with
/// an error naming the process that holds it.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, HostError> {
    let path = data_dir.join(LOCK_FILE);
    let file_err = |what, source| HostError::File { path: path.clone(), what, source };
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    dir.create(data_dir).map_err(|source| HostError::File {
        path: data_dir.to_path_buf(),
        what: "create data dir",
        source,
    })?;
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(&path).map_err(|e| file_err("open lock file", e))?;
    if !try_lock(&file).map_err(|e| file_err("lock", e))? {
        let mut owner = String::new();
        let _ = file.read_to_string(&mut owner);
        let owner = owner.trim();
        let who = if owner.is_empty() { String::new() } else { format!(" (pid {owner})") };
        return Err(HostError::Config(format!(
            "data dir {} is in use by another meshlink node{who}; stop it, or give this one its own --data-dir",
            data_dir.display()
        )));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(DataDirLock { _file: file, path })
}

/// An exclusive lock without waiting; `Ok(false)` if another process holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function borrows, open for its duration.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Elsewhere the file's existence is no lock; the OS offers no portable one here.
#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_fails_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("meshlink-lock-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = lock_data_dir(&dir).unwrap();
        // flock locks belong to the open file: a second open in this process conflicts too.
        let e = lock_data_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("in use by another meshlink node") && e.contains(&std::process::id().to_string()), "{e}");
        drop(first);
        lock_data_dir(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
