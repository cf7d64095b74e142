//! Read-only memory maps of segment files: the one module of the queue with `unsafe` code.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::path::Path;

use memmap2::Mmap;

/// A read-only map of a whole segment file, as long as the file was when it was mapped.
#[derive(Debug)]
pub struct FileMap(Mmap);

impl FileMap {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> io::Result<FileMap> {
        let file = File::open(path)?;
        // SAFETY: a memory map is undefined behaviour if the file changes under it. What the
        // queue maps cannot change: segment files are append-only (appends do not touch mapped
        // pages), the queue directory is locked against other mswitch processes, and the only
        // truncation (rolling back a failed write, `Writer::write_batch`) cuts bytes beyond
        // every acknowledged record, so no slice handed out (`DiskQueue::content` only slices
        // acknowledged records) ever covers truncated pages. Deleting a segment while a map
        // of it is alive is fine: the mapping keeps the pages. A process outside mswitch
        // writing into the queue directory breaks this, as it breaks every other guarantee of
        // the queue.
        let map = unsafe { Mmap::map(&file)? };
        Ok(FileMap(map))
    }
}

impl AsRef<[u8]> for FileMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
