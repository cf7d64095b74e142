//! A simulated file system for tests: it knows which bytes and directory entries are durable,
//! can "crash" at the N-th sync, and can inject errors.
//!
//! Durability model (what a POSIX file system with a write-back cache guarantees):
//! - appended bytes are durable once `sync_data` on that file returns;
//! - a created or removed directory entry is durable once `sync_dir` on its directory returns;
//! - at a crash, everything else is lost, except that a prefix of each file's unsynced tail may
//!   survive ([`SimBackend::recover_image`] takes how much), which is how torn writes appear.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Backend, DirLock, LogFile};

#[derive(Debug, Clone, Default)]
struct SimFile {
    data: Vec<u8>,
    synced: usize,
    /// Whether the directory entry is durable.
    entry_durable: bool,
}

#[derive(Debug, Default)]
struct SimState {
    files: BTreeMap<PathBuf, SimFile>,
    /// Removed files whose removal is not durable yet (they come back at a crash).
    removed: BTreeMap<PathBuf, SimFile>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    syncs: u64,
    crash_at: Option<u64>,
    crashed: bool,
    fail_sync: Option<io::ErrorKind>,
    fail_append: Option<io::ErrorKind>,
    available: u64,
}

/// The simulated file system; clones share state.
#[derive(Debug, Clone)]
pub struct SimBackend {
    state: Arc<Mutex<SimState>>,
}

impl Default for SimBackend {
    fn default() -> Self {
        SimBackend::new()
    }
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash: the process is dead")
}

impl SimBackend {
    /// An empty file system with plenty of space.
    pub fn new() -> Self {
        SimBackend {
            state: Arc::new(Mutex::new(SimState {
                available: u64::MAX / 2,
                ..SimState::default()
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Crash at the `n`-th sync from now (1 = the next): that sync and everything after fail
    /// and nothing more becomes durable.
    pub fn crash_at_sync(&self, n: u64) {
        let mut s = self.lock();
        s.crash_at = Some(s.syncs + n);
    }

    /// Syncs performed so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Whether the simulated crash has happened.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Makes every sync fail with `kind` (EIO-like), or succeed again with `None`.
    pub fn fail_sync(&self, kind: Option<io::ErrorKind>) {
        self.lock().fail_sync = kind;
    }

    /// Makes every append fail with `kind` (e.g. `StorageFull`), or succeed with `None`.
    pub fn fail_append(&self, kind: Option<io::ErrorKind>) {
        self.lock().fail_append = kind;
    }

    /// Sets the free space reported.
    pub fn set_available(&self, octets: u64) {
        self.lock().available = octets;
    }

    /// The file system as a machine would find it after a crash now: durable entries with
    /// their durable bytes, plus up to `torn` octets of each file's unsynced tail.
    pub fn recover_image(&self, torn: usize) -> SimBackend {
        let s = self.lock();
        let mut files = BTreeMap::new();
        for (path, f) in s.files.iter().chain(s.removed.iter()) {
            if !f.entry_durable {
                continue;
            }
            let keep = (f.synced + torn).min(f.data.len());
            files.insert(
                path.clone(),
                SimFile {
                    data: f.data[..keep].to_vec(),
                    synced: keep,
                    entry_durable: true,
                },
            );
        }
        SimBackend {
            state: Arc::new(Mutex::new(SimState {
                files,
                dirs: s.dirs.clone(),
                available: s.available,
                ..SimState::default()
            })),
        }
    }

    /// Overwrites one octet of a file (durably), to simulate media corruption.
    pub fn corrupt(&self, path: &Path, offset: usize, xor: u8) -> bool {
        let mut s = self.lock();
        match s.files.get_mut(path) {
            Some(f) if offset < f.data.len() => {
                f.data[offset] ^= xor;
                true
            }
            _ => false,
        }
    }

    /// A file's current length, if it exists.
    pub fn file_len(&self, path: &Path) -> Option<usize> {
        self.lock().files.get(path).map(|f| f.data.len())
    }

    /// Total octets in all files.
    pub fn total_size(&self) -> u64 {
        self.lock()
            .files
            .values()
            .map(|f| f.data.len() as u64)
            .sum()
    }

    fn sync_point(s: &mut SimState) -> io::Result<()> {
        if s.crashed {
            return Err(crashed_error());
        }
        s.syncs += 1;
        if s.crash_at.is_some_and(|n| s.syncs >= n) {
            s.crashed = true;
            return Err(crashed_error());
        }
        if let Some(kind) = s.fail_sync {
            return Err(io::Error::new(kind, "injected sync failure"));
        }
        Ok(())
    }
}

/// An append handle on a simulated file.
#[derive(Debug)]
pub struct SimHandle {
    fs: SimBackend,
    path: PathBuf,
}

impl LogFile for SimHandle {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut s = self.fs.lock();
        if s.crashed {
            return Err(crashed_error());
        }
        if let Some(kind) = s.fail_append {
            return Err(io::Error::new(kind, "injected write failure"));
        }
        let f = s
            .files
            .get_mut(&self.path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        f.data.extend_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut s = self.fs.lock();
        SimBackend::sync_point(&mut s)?;
        if let Some(f) = s.files.get_mut(&self.path) {
            f.synced = f.data.len();
        }
        Ok(())
    }
}

/// A simulated directory lock.
#[derive(Debug)]
pub struct SimLock {
    fs: SimBackend,
    dir: PathBuf,
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.fs.lock().locks.remove(&self.dir);
    }
}

impl Backend for SimBackend {
    type File = SimHandle;
    type Lock = SimLock;
    type Map = Vec<u8>;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.lock().dirs.insert(dir.to_owned());
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<SimLock> {
        let mut s = self.lock();
        if !s.locks.insert(dir.to_owned()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked", dir.display()),
            ));
        }
        Ok(SimLock {
            fs: self.clone(),
            dir: dir.to_owned(),
        })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        Ok(s.files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn open_append(&self, path: &Path) -> io::Result<SimHandle> {
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed_error());
        }
        s.files.entry(path.to_owned()).or_default();
        Ok(SimHandle {
            fs: self.clone(),
            path: path.to_owned(),
        })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.lock()
            .files
            .get(path)
            .map(|f| f.data.clone())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn map(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let s = self.lock();
        let f = s
            .files
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        f.data
            .get(start..start.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        SimBackend::sync_point(&mut s)?;
        let f = s
            .files
            .get_mut(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX).min(f.data.len());
        f.data.truncate(len);
        f.synced = len;
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed_error());
        }
        let f = s
            .files
            .remove(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.removed.insert(path.to_owned(), f);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        SimBackend::sync_point(&mut s)?;
        for (p, f) in s.files.iter_mut() {
            if p.parent() == Some(dir) {
                f.entry_durable = true;
            }
        }
        s.removed.retain(|p, _| p.parent() != Some(dir));
        Ok(())
    }

    fn available_space(&self, _dir: &Path) -> io::Result<u64> {
        Ok(self.lock().available)
    }
}
