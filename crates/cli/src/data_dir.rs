//! The data directory: private to the server's user, and used by one
//! server at a time.

use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Files SQLite keeps in the directory. They hold signing keys and
/// forwarded secrets (an `Authorization` header), so only the owner may
/// read them. SQLite gives its `-wal` and `-shm` files the mode of the
/// database file, so creating that one `0600` covers them.
const STORE_FILES: [&str; 3] = ["qstash.db", "qstash.db-wal", "qstash.db-shm"];
const LOCK_FILE: &str = "qstash.lock";

/// Held for the life of the process: while it lives, no other `qstash`
/// can open the same directory (it would release this one's in-flight
/// messages as if they were left over from a crash and deliver them twice).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Creates `dir` as `0700` (tightening an existing one), takes its lock
/// and makes the store files `0600`.
pub fn prepare(dir: &Path) -> Result<DataDirLock> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    std::fs::set_permissions(dir, Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private (0700)", dir.display()))?;
    let lock_path = dir.join(LOCK_FILE);
    let file = private_file(&lock_path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another qstash is already using the data directory {} (it holds {}); stop it or use another --data-dir",
            dir.display(),
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", lock_path.display()))
        }
    }
    for name in STORE_FILES {
        let path = dir.join(name);
        if name == STORE_FILES[0] || path.exists() {
            private_file(&path)?;
        }
    }
    Ok(DataDirLock { _file: file })
}

/// Opens (creating if missing) `path` with mode `0600`, and sets `0600` on
/// an existing file too.
fn private_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.set_permissions(Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private (0600)", path.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directory_and_files_are_private_and_locked_once() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("qstash.db-wal"), b"").unwrap();
        std::fs::set_permissions(dir.join("qstash.db-wal"), Permissions::from_mode(0o644)).unwrap();
        let lock = prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        for name in ["qstash.db", "qstash.db-wal", "qstash.lock"] {
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        }
        let second = prepare(&dir).unwrap_err().to_string();
        assert!(
            second.contains("already using the data directory"),
            "{second}"
        );
        drop(lock);
        prepare(&dir).unwrap();
    }
}
