//! The writer's file writes, gathered into a few large ones (issue 17).
//!
//! SQLite writes every WAL frame as two system calls: its 24-byte header,
//! then the page. A commit of a busy writer carries about 36 frames, so
//! 72 `pwrite`s: 6 of the 12 system calls of a delivered message
//! (`strace -c`, `scripts/syscalls`). A checkpoint then reads each page
//! back from the WAL and writes it into the database, a `pread` and a
//! `pwrite` per page, another 1.5 per delivered message.
//!
//! This VFS is SQLite's own (unix) one, except for the writer's WAL and
//! database files:
//! - their writes are gathered in memory while each follows the last, and
//!   handed to the file in writes of up to 124 KiB before anything can
//!   depend on them: before the file is synced, read, sized, truncated,
//!   locked, controlled or closed, and before a write elsewhere in it;
//! - the WAL keeps a copy of what it wrote since it last started over from
//!   its first byte, so the checkpoint's reads of the frames come from
//!   memory.
//!
//! Why that is enough: with `synchronous = FULL`, SQLite syncs the WAL at
//! every commit *before* it publishes the new frames in the wal-index
//! (`walFrames` in sqlite3.c), so no reader can look for a frame that is
//! still gathered; and a checkpoint syncs the database *before* it records
//! how far it copied (`walCheckpoint`), while until then every reader finds
//! the pages it copies in the WAL. A crash loses what is gathered of a
//! commit or checkpoint that was not yet synced, so not acknowledged or
//! not recorded: the same as a crash between two of SQLite's own writes.
//! The store uses this VFS only for the writer's connection at
//! `Durability::Full`: at `NORMAL`, frames become visible without a sync.
//! Files on a device without `SQLITE_IOCAP_POWERSAFE_OVERWRITE` (SQLite's
//! default has it; the `psow=0` URI parameter takes it away) are not
//! gathered at all, because SQLite then pads the commit and writes part of
//! its last frame after the sync.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CString};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name the VFS is registered under.
const NAME: &str = "qstash-gathered-writes";

/// Past this many bytes gathered, they are written at once. A commit is
/// rarely larger; a checkpoint's run of new pages can be, and gathering
/// more would only keep more memory (it is kept for the next commit).
const MAX_PENDING: usize = 1 << 20;

/// The most one write hands the unix VFS: its `seekAndWrite` keeps only
/// the low 17 bits of a length (`nBuf &= 0x1ffff`), so a write must stay
/// below 128 KiB. A busy commit (about 36 frames, 148 KB) is two writes.
/// A file descriptor of our own would allow one, but the unix VFS keeps
/// its descriptors and locks to itself.
const MAX_WRITE: usize = 124 << 10;

/// The most of the WAL kept in memory. It starts over at about 4 MB
/// (1,000 pages, SQLite's checkpoint mark) unless a long read holds it;
/// past this, the checkpoint reads the rest from the file. The copy's
/// memory is kept for the next time, so this is what it adds to the
/// server's at most.
const MAX_COPY: usize = 8 << 20;

thread_local! {
    /// Writes this thread handed to the files it gathers for, and reads
    /// it answered from a WAL's copy (tests count them).
    static COUNTS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The VFS's name, registering it on first use; `None` if SQLite has no
/// default VFS to wrap (then the store opens with SQLite's default).
pub fn vfs() -> Option<&'static str> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    REGISTERED.get_or_init(register).then_some(NAME)
}

/// (writes made, reads answered from a copy) on this thread so far.
#[cfg(test)]
pub fn counts_on_this_thread() -> (u64, u64) {
    COUNTS.with(Cell::get)
}

fn count(writes: u64, copied_reads: u64) {
    COUNTS.with(|c| {
        let (w, r) = c.get();
        c.set((w + writes, r + copied_reads));
    });
}

/// The default VFS that this one wraps, found once at registration.
static BASE: OnceLock<Base> = OnceLock::new();

struct Base(*mut ffi::sqlite3_vfs);

// SAFETY: SQLite's VFS objects are immutable once registered and are
// shared by every thread by design.
unsafe impl Send for Base {}
unsafe impl Sync for Base {}

fn register() -> bool {
    // SAFETY: a null name asks for the default VFS; SQLite initialises
    // itself on this call. The new VFS is leaked: a registered VFS must
    // outlive every connection.
    unsafe {
        let base = ffi::sqlite3_vfs_find(std::ptr::null());
        if base.is_null() {
            return false;
        }
        let _ = BASE.set(Base(base));
        let name = CString::new(NAME).expect("no NUL in the name");
        let mut vfs = std::ptr::read(base);
        vfs.szOsFile = (*base).szOsFile + INNER_AT as c_int;
        vfs.zName = name.into_raw();
        vfs.pNext = std::ptr::null_mut();
        vfs.xOpen = Some(open);
        let vfs = Box::into_raw(Box::new(vfs));
        ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK
    }
}

/// A file whose writes are gathered: SQLite's view of it (`file`, whose
/// methods are [`METHODS`]), then the real file at [`INNER_AT`] in the
/// same allocation.
#[repr(C)]
struct Gathered {
    file: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// Bytes written by SQLite and not yet by the file, from `at`.
    pending: Vec<u8>,
    at: i64,
    /// The WAL's: its first `known` bytes as written, read from memory.
    copy: Option<Copy>,
}

struct Copy {
    bytes: Vec<u8>,
    known: usize,
}

impl Copy {
    /// Takes in a write. The copy only ever holds a prefix of the file:
    /// a write past its end leaves it as it is, a write that does not fit
    /// in [`MAX_COPY`] shortens it to before the write. The WAL starts over
    /// with a write of its header at 0, which makes it whole again.
    fn write(&mut self, data: &[u8], offset: usize) {
        let end = offset + data.len();
        if offset > self.known {
            return;
        }
        if end > MAX_COPY {
            self.known = offset;
            return;
        }
        // Past `known` the bytes are stale, from before the WAL last
        // started over: the write replaces them, and no zeroes are written
        // first (`resize`) that the copy would then overwrite.
        self.bytes.truncate(self.known);
        let overlap = end.min(self.bytes.len());
        self.bytes[offset..overlap].copy_from_slice(&data[..overlap - offset]);
        self.bytes.extend_from_slice(&data[overlap - offset..]);
        self.known = self.bytes.len();
    }

    fn read(&self, offset: usize, amount: usize) -> Option<&[u8]> {
        let end = offset.checked_add(amount)?;
        (end <= self.known).then(|| &self.bytes[offset..end])
    }

    fn truncate(&mut self, size: usize) {
        self.known = self.known.min(size);
    }
}

/// Where the real file starts in the allocation SQLite makes for ours.
const INNER_AT: usize = std::mem::size_of::<Gathered>().next_multiple_of(16);

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let base = BASE.get().expect("registered before use").0;
    let base_open = (*base).xOpen.expect("a VFS opens files");
    let wal = flags & ffi::SQLITE_OPEN_WAL != 0;
    if !wal && flags & ffi::SQLITE_OPEN_MAIN_DB == 0 {
        // Journals and temporary files are the base VFS's, unwrapped.
        return base_open(base, name, file, flags, out_flags);
    }
    let inner = file.cast::<u8>().add(INNER_AT).cast::<ffi::sqlite3_file>();
    (*file).pMethods = std::ptr::null();
    let rc = base_open(base, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let real = &*(*inner).pMethods;
    let characteristics = real.xDeviceCharacteristics.map_or(0, |f| f(inner));
    // Not gathered without it: see the module's comment.
    let methods = if characteristics & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE == 0 {
        &PASS_THROUGH
    } else {
        &METHODS
    };
    let copy = wal.then(|| Copy {
        bytes: Vec::new(),
        known: 0,
    });
    std::ptr::write(
        file.cast::<Gathered>(),
        Gathered {
            file: ffi::sqlite3_file { pMethods: methods },
            inner,
            pending: Vec::new(),
            at: 0,
            copy,
        },
    );
    rc
}

/// The file behind SQLite's handle, and the real file's methods.
///
/// SAFETY (for every method below): SQLite calls them only with a handle
/// that [`open`] set up (their table is installed nowhere else), from one
/// thread at a time per connection, and never after `xClose`.
unsafe fn parts<'a>(
    file: *mut ffi::sqlite3_file,
) -> (
    &'a mut Gathered,
    *mut ffi::sqlite3_file,
    &'a ffi::sqlite3_io_methods,
) {
    let gathered = &mut *file.cast::<Gathered>();
    let inner = gathered.inner;
    (gathered, inner, &*(*inner).pMethods)
}

/// Writes what is gathered, in as few writes as the real file takes. The
/// buffer is emptied even when a write fails: SQLite then fails the
/// transaction or checkpoint and writes those bytes again in the next one
/// (and the copy, which no longer matches the file, is dropped).
unsafe fn flush(g: &mut Gathered, inner: *mut ffi::sqlite3_file) -> c_int {
    if g.pending.is_empty() {
        return ffi::SQLITE_OK;
    }
    let write = (*(*inner).pMethods).xWrite.expect("a file writes");
    let mut rc = ffi::SQLITE_OK;
    let mut at = g.at;
    for chunk in g.pending.chunks(MAX_WRITE) {
        rc = write(inner, chunk.as_ptr().cast(), chunk.len() as c_int, at);
        count(1, 0);
        if rc != ffi::SQLITE_OK {
            if let Some(copy) = &mut g.copy {
                copy.truncate(0);
            }
            break;
        }
        at += chunk.len() as i64;
    }
    g.pending.clear();
    rc
}

/// Runs `then` on the real file once what is gathered is written.
macro_rules! after_flush {
    ($file:expr, |$inner:ident, $m:ident| $then:expr) => {{
        let (g, $inner, $m) = parts($file);
        let rc = flush(g, $inner);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        $then
    }};
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let (g, inner, _) = parts(file);
    let data = std::slice::from_raw_parts(data.cast::<u8>(), amount as usize);
    let follows = offset == g.at + g.pending.len() as i64;
    if !g.pending.is_empty() && (!follows || g.pending.len() + data.len() > MAX_PENDING) {
        let rc = flush(g, inner);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if g.pending.is_empty() {
        g.at = offset;
    }
    g.pending.extend_from_slice(data);
    if let Some(copy) = &mut g.copy {
        copy.write(data, offset as usize);
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let (g, _, _) = parts(file);
    if let Some(bytes) = g
        .copy
        .as_ref()
        .and_then(|c| c.read(offset as usize, amount as usize))
    {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len());
        count(0, 1);
        return ffi::SQLITE_OK;
    }
    after_flush!(file, |inner, m| m.xRead.expect("a file reads")(
        inner, data, amount, offset
    ))
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let (g, inner, m) = parts(file);
    let flushed = flush(g, inner);
    let closed = m.xClose.map_or(ffi::SQLITE_OK, |f| f(inner));
    std::ptr::drop_in_place(file.cast::<Gathered>());
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    let (g, _, _) = parts(file);
    if let Some(copy) = &mut g.copy {
        copy.truncate(size as usize);
    }
    after_flush!(file, |inner, m| m.xTruncate.expect("a file truncates")(
        inner, size
    ))
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    after_flush!(file, |inner, m| m.xSync.expect("a file syncs")(
        inner, flags
    ))
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    after_flush!(file, |inner, m| m.xFileSize.expect("a file has a size")(
        inner, size
    ))
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    after_flush!(file, |inner, m| m
        .xLock
        .map_or(ffi::SQLITE_OK, |f| f(inner, level)))
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    after_flush!(file, |inner, m| m
        .xUnlock
        .map_or(ffi::SQLITE_OK, |f| f(inner, level)))
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    after_flush!(file, |inner, m| m
        .xCheckReservedLock
        .map_or(ffi::SQLITE_OK, |f| f(inner, out)))
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    after_flush!(file, |inner, m| m
        .xFileControl
        .map_or(ffi::SQLITE_NOTFOUND, |f| f(inner, op, arg)))
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    after_flush!(file, |inner, m| m
        .xShmMap
        .map_or(ffi::SQLITE_IOERR, |f| f(inner, page, size, extend, out)))
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    after_flush!(file, |inner, m| m
        .xShmLock
        .map_or(ffi::SQLITE_IOERR, |f| f(inner, offset, n, flags)))
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    after_flush!(file, |inner, m| m
        .xShmUnmap
        .map_or(ffi::SQLITE_OK, |f| f(inner, delete)))
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    after_flush!(file, |inner, m| match m.xFetch {
        Some(f) => f(inner, offset, amount, out),
        None => {
            *out = std::ptr::null_mut();
            ffi::SQLITE_OK
        }
    })
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    page: *mut c_void,
) -> c_int {
    after_flush!(file, |inner, m| m
        .xUnfetch
        .map_or(ffi::SQLITE_OK, |f| f(inner, offset, page)))
}

/// The methods that pass the call on as it is.
mod forward {
    use super::*;

    pub unsafe extern "C" fn write(
        file: *mut ffi::sqlite3_file,
        data: *const c_void,
        amount: c_int,
        offset: i64,
    ) -> c_int {
        let (_, inner, m) = parts(file);
        m.xWrite.expect("a file writes")(inner, data, amount, offset)
    }

    pub unsafe extern "C" fn read(
        file: *mut ffi::sqlite3_file,
        data: *mut c_void,
        amount: c_int,
        offset: i64,
    ) -> c_int {
        let (_, inner, m) = parts(file);
        m.xRead.expect("a file reads")(inner, data, amount, offset)
    }

    pub unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
        let (_, inner, m) = parts(file);
        m.xSectorSize.map_or(4096, |f| f(inner))
    }

    pub unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
        let (_, inner, m) = parts(file);
        m.xDeviceCharacteristics.map_or(0, |f| f(inner))
    }

    /// A barrier cannot fail, so what is gathered waits for the next call
    /// that can: SQLite calls it around wal-index updates, never between a
    /// checkpoint's writes and their sync.
    pub unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
        let (_, inner, m) = parts(file);
        if let Some(f) = m.xShmBarrier {
            f(inner)
        }
    }
}

/// A gathered file's methods.
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(forward::sector_size),
    xDeviceCharacteristics: Some(forward::device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(forward::shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// The methods of a file that is not gathered: its reads and writes go
/// straight through (and so nothing is ever pending for the others).
static PASS_THROUGH: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    xRead: Some(forward::read),
    xWrite: Some(forward::write),
    ..METHODS
};

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{params, Connection, OpenFlags};

    fn writer(path: &std::path::Path, cache_pages: i64) -> Connection {
        let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), vfs().unwrap())
            .unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = {cache_pages};
             CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, body BLOB NOT NULL);"
        ))
        .unwrap();
        conn
    }

    fn insert(conn: &Connection, from: i64, count: i64) {
        let tx = conn.unchecked_transaction().unwrap();
        for n in from..from + count {
            tx.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                params![n, vec![n as u8; 1024]],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    fn integrity(conn: &Connection) -> String {
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap()
    }

    /// A writer on this VFS with `cache_pages` of cache, on a new database
    /// (the directory goes when its handle is dropped).
    fn fresh(cache_pages: i64) -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = writer(&path, cache_pages);
        (dir, path, conn)
    }

    /// Another connection, on SQLite's default VFS.
    fn reader(path: &std::path::Path) -> Connection {
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
    }

    /// What another connection, on SQLite's default VFS, reads.
    fn seen_by_a_reader(path: &std::path::Path) -> (i64, i64) {
        reader(path)
            .query_row("SELECT count(*), sum(length(body)) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
    }

    #[test]
    fn the_copy_holds_a_prefix_of_the_file_as_written() {
        let mut copy = Copy {
            bytes: Vec::new(),
            known: 0,
        };
        copy.write(b"header", 0);
        copy.write(b"frame1", 6);
        assert_eq!(copy.read(0, 12), Some(&b"headerframe1"[..]));
        assert_eq!(copy.read(6, 7), None, "past what was written");
        copy.write(b"gap", 20);
        assert_eq!(copy.known, 12, "a write past the end is not a prefix");
        copy.write(b"FRA", 6);
        assert_eq!(copy.read(0, 12), Some(&b"headerFRAme1"[..]));
        copy.truncate(8);
        assert_eq!(copy.read(6, 4), None);
        copy.write(b"new", 8);
        assert_eq!(copy.read(0, 11), Some(&b"headerFRnew"[..]));
        // Started over: the header again, then frames over the stale ones.
        copy.write(b"HEADER", 0);
        assert_eq!(copy.read(0, 11), Some(&b"HEADERFRnew"[..]));
        copy.write(&vec![1; MAX_COPY], 4);
        assert_eq!(copy.known, 4, "too large to keep");
        assert_eq!(copy.read(0, 4), Some(&b"HEAD"[..]));
    }

    #[test]
    fn a_commit_reaches_the_wal_in_a_few_writes_and_readers_see_it() {
        let (_dir, path, conn) = fresh(-65536);
        insert(&conn, 0, 10);
        let wal = |path: &std::path::Path| {
            let mut name = path.as_os_str().to_owned();
            name.push("-wal");
            std::fs::metadata(name).unwrap().len() as usize
        };
        let (before, wal_before) = (counts_on_this_thread().0, wal(&path));
        // About 70 pages: 140 writes on SQLite's own VFS.
        insert(&conn, 10, 200);
        let grown = wal(&path) - wal_before;
        assert!(grown > 60 * 4096, "{grown}");
        let writes = counts_on_this_thread().0 - before;
        assert_eq!(writes, grown.div_ceil(MAX_WRITE) as u64, "{grown} bytes");
        assert_eq!(seen_by_a_reader(&path), (210, 210 * 1024));
        drop(conn);
        assert_eq!(integrity(&writer(&path, -65536)), "ok");
        assert_eq!(seen_by_a_reader(&path), (210, 210 * 1024));
    }

    #[test]
    fn a_transaction_larger_than_the_cache_reads_back_what_it_spilled() {
        // Ten pages of cache: the transaction spills frames to the WAL and
        // reads them back before it commits.
        let (_dir, path, conn) = fresh(10);
        let tx = conn.unchecked_transaction().unwrap();
        for n in 0..2_000i64 {
            tx.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                params![n, vec![n as u8; 1024]],
            )
            .unwrap();
        }
        let mismatched: i64 = tx
            .query_row(
                "SELECT count(*) FROM t WHERE hex(substr(body, 1024, 1)) != printf('%02X', n % 256)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(mismatched, 0);
        assert_eq!(seen_by_a_reader(&path), (2_000, 2_000 * 1024));
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        insert(&conn, 2_000, 5);
        assert_eq!(seen_by_a_reader(&path), (2_005, 2_005 * 1024));
    }

    /// A checkpoint reads the frames from the WAL's copy, writes the pages
    /// into the database in runs, and what it wrote is what a reader on
    /// SQLite's own VFS finds once the WAL is gone.
    #[test]
    fn a_checkpoint_reads_the_copy_and_writes_runs_of_pages() {
        let (_dir, path, conn) = fresh(-65536);
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0").unwrap();
        insert(&conn, 0, 300);
        let (writes, copied) = counts_on_this_thread();
        let (log, checkpointed): (i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert!(
            log > 80 && checkpointed == log,
            "{log} frames, {checkpointed} copied"
        );
        let (writes, copied) = (
            counts_on_this_thread().0 - writes,
            counts_on_this_thread().1 - copied,
        );
        // Every page the checkpoint copied was read from memory: about 80
        // distinct pages, a run of new ones at the file's end, so a few
        // writes where SQLite's own VFS makes one per page.
        assert!(copied >= 80, "{copied} reads from the copy");
        assert!(
            (1..=10).contains(&writes),
            "{writes} writes for {copied} pages"
        );
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        drop(conn);
        assert_eq!(integrity(&reader(&path)), "ok");
        assert_eq!(seen_by_a_reader(&path), (300, 300 * 1024));
    }

    /// The WAL starts over many times under a small checkpoint mark, with a
    /// reader beside it: each time its copy is whole again from the
    /// header, and nothing read from it is stale.
    #[test]
    fn the_copy_follows_the_wal_as_it_starts_over() {
        let (_dir, path, conn) = fresh(20);
        conn.execute_batch("PRAGMA wal_autocheckpoint = 50")
            .unwrap();
        for round in 0..20 {
            insert(&conn, round * 100, 100);
            conn.execute(
                "UPDATE t SET body = ?1 WHERE n % 7 = ?2",
                params![vec![round as u8; 1024], round % 7],
            )
            .unwrap();
            // The rows just rewritten, read back through the writer (from
            // its cache or the WAL's copy) and through a reader.
            let stale = "SELECT count(*) FROM t WHERE n % 7 = ?2 AND body != ?1";
            let args = params![vec![round as u8; 1024], round % 7];
            let stale_here: i64 = conn.query_row(stale, args, |r| r.get(0)).unwrap();
            let stale_there: i64 = reader(&path).query_row(stale, args, |r| r.get(0)).unwrap();
            assert_eq!((stale_here, stale_there), (0, 0), "round {round}");
            assert_eq!(seen_by_a_reader(&path).0, (round + 1) * 100);
        }
        assert_eq!(integrity(&conn), "ok");
        assert!(
            counts_on_this_thread().1 > 0,
            "nothing was read from a copy"
        );
    }
}
