//! The file-system operations the queue uses, behind a trait so tests can crash the queue at
//! any sync point and inject I/O errors ([`sim::SimBackend`]); [`os::OsBackend`] is the real
//! one.
//!
//! Only what the queue needs: append-only files, whole-file reads, truncation, removal, and
//! the two durability operations (`LogFile::sync_data`, `Backend::sync_dir`).

pub mod mmap;
pub mod os;
pub mod sim;

use std::io;
use std::path::Path;

/// A file opened for appending.
pub trait LogFile: Send {
    /// Appends all of `buf` (a short write is an error).
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// A directory lock, released on drop.
pub trait DirLock: Send + Sync {}

/// File-system operations.
pub trait Backend: Send + Sync + 'static {
    /// The append handle.
    type File: LogFile + 'static;
    /// The directory lock.
    type Lock: DirLock + 'static;
    /// A read-only view of a whole file (a memory map on the real file system).
    type Map: AsRef<[u8]> + Send + Sync + 'static;

    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on the directory, failing at once if another process has it.
    fn lock_dir(&self, dir: &Path) -> io::Result<Self::Lock>;
    /// The names of the files in a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens a file for appending, creating it if needed. A newly created file is durable
    /// only once its directory has been synced.
    fn open_append(&self, path: &Path) -> io::Result<Self::File>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Maps a whole file read-only, as long as it is now.
    fn map(&self, path: &Path) -> io::Result<Self::Map>;
    /// Reads `len` octets at `offset`.
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Truncates a file to `len` octets and syncs it.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Removes a file (durable once the directory is synced).
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Octets available to this process on the directory's file system.
    fn available_space(&self, dir: &Path) -> io::Result<u64>;
}
