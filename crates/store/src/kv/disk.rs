//! The store directory: its lock, the redb database inside it, loading it at startup and writing
//! one batch of records per transaction.
//!
//! Every commit is `Durability::Immediate` with two-phase commit: redb fsyncs the new pages and
//! the inactive commit slot, then flips the slot and fsyncs again. A commit slot that fails its
//! checksum can then only mean damage, never a torn last commit, so redb refuses to open instead
//! of silently falling back to the previous commit; with the integrity check on open, every page
//! of the committed tree is verified before anything is loaded.

use super::keys::{self, FormatError};
use super::log::{LoadedGroup, Mutation, Record};
use iii_stream_domain::{GroupKey, JsonText};
use redb::{Builder, Database, DatabaseError, ReadableDatabase, StorageError, TableDefinition};
use serde_json::value::RawValue;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The database file inside the store directory.
pub(crate) const DB_FILE: &str = "store.redb";
/// Held locked (advisory, exclusive) for the life of the process that owns the directory.
pub(crate) const LOCK_FILE: &str = "iii-stream.lock";

/// Every item of every group. The version suffix names the key/value encoding of `keys`.
pub(crate) const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items_v1");

/// The page cache redb keeps in memory. Reads are served from the in-memory groups, so the cache
/// only needs the pages that commits touch: the last leaf of each active group and their parents.
const CACHE_BYTES: usize = 64 << 20;

/// Why the store directory cannot be used. Every variant names the path and the cause.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("store path {0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot create store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store directory {0} is locked by another process")]
    Locked(PathBuf),
    #[error("cannot lock store directory {path} ({lock}): {source}")]
    Lock {
        path: PathBuf,
        lock: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open store file {path}: {source}")]
    Database {
        path: PathBuf,
        source: DatabaseError,
    },
    #[error("store file {path} is corrupt: {cause}; refusing to start rather than lose data")]
    Corrupt { path: PathBuf, cause: String },
    #[error("cannot read store file {path}: {source}")]
    Read { path: PathBuf, source: redb::Error },
    #[error("cannot sync store directory {path}: {source}")]
    SyncDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The open store directory. Dropping it closes the database, then releases the lock.
pub(crate) struct Disk {
    // Field order is drop order: the database must be closed before another process may take
    // the lock and open it.
    db: Database,
    _lock: File,
    /// Reused for every record, so a commit allocates nothing per write.
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Disk {
    /// Opens (creating if needed) the store in `dir` and reads everything in it.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Vec<LoadedGroup>), OpenError> {
        Self::open_with(dir, |builder, file| builder.create(file))
    }

    /// As [`Disk::open`], with the database opened by `create` (tests substitute a storage
    /// backend that can fail on demand).
    pub(crate) fn open_with(
        dir: &Path,
        create: impl FnOnce(&Builder, &Path) -> Result<Database, DatabaseError>,
    ) -> Result<(Self, Vec<LoadedGroup>), OpenError> {
        prepare_dir(dir)?;
        let lock = lock_dir(dir)?;
        warn_about_legacy_files(dir);
        let path = dir.join(DB_FILE);
        let existed = path.exists();
        let mut builder = Builder::new();
        builder
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true);
        let db = create(&builder, &path).map_err(|source| match source {
            DatabaseError::DatabaseAlreadyOpen => OpenError::Locked(dir.to_owned()),
            DatabaseError::Storage(StorageError::Corrupted(cause)) => OpenError::Corrupt {
                path: path.clone(),
                cause,
            },
            source => OpenError::Database {
                path: path.clone(),
                source,
            },
        })?;
        if !existed {
            // The new file's directory entry must be durable before any commit is acknowledged.
            sync_dir(dir)?;
        }
        let groups = load(&db, &path)?;
        let disk = Self {
            db,
            _lock: lock,
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
        };
        Ok((disk, groups))
    }

    /// Makes the mutations of `records` durable in one transaction: one commit, two fsyncs,
    /// whatever the number of records. Records without a mutation need no write; returns
    /// whether a commit was made.
    pub(crate) fn write(&mut self, records: &[Record]) -> Result<bool, redb::Error> {
        if records.iter().all(|r| r.mutation.is_none()) {
            return Ok(false);
        }
        let mut txn = self.db.begin_write()?;
        txn.set_two_phase_commit(true);
        {
            let mut table = txn.open_table(ITEMS)?;
            for record in records {
                match &record.mutation {
                    None => {}
                    Some(Mutation::Put {
                        group,
                        order,
                        item,
                        value,
                    }) => {
                        keys::encode_key(&mut self.key, group, *order);
                        keys::encode_value(&mut self.value, &self.key, item, value.get());
                        table.insert(self.key.as_slice(), self.value.as_slice())?;
                    }
                    Some(Mutation::Remove { group, order }) => {
                        keys::encode_key(&mut self.key, group, *order);
                        table.remove(self.key.as_slice())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(true)
    }

    /// Closes the database (recording a clean shutdown), then releases the directory lock.
    pub(crate) fn close(self) -> Result<(), DatabaseError> {
        let Self {
            db, _lock: lock, ..
        } = self;
        let closed = db.close();
        drop(lock);
        closed
    }
}

fn prepare_dir(dir: &Path) -> Result<(), OpenError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => return Err(OpenError::NotADirectory(dir.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(OpenError::CreateDir {
                path: dir.to_owned(),
                source,
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    // The new directory's entry in its parent must survive a crash too.
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

fn lock_dir(dir: &Path) -> Result<File, OpenError> {
    let lock = dir.join(LOCK_FILE);
    let failed = |source| OpenError::Lock {
        path: dir.to_owned(),
        lock: lock.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(failed)?;
    // Called through the trait: `File::try_lock` of newer std would shadow it.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => Err(OpenError::Locked(dir.to_owned())),
        Err(fs4::TryLockError::Error(source)) => Err(failed(source)),
    }
}

/// The original server's file store wrote `*.bin` files. They are not ours to read or delete.
fn warn_about_legacy_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let legacy = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|ext| ext == "bin"))
        .count();
    if legacy > 0 {
        tracing::warn!(
            dir = %dir.display(),
            files = legacy,
            "store directory contains *.bin files of the original file store; they are not loaded \
             and are left untouched"
        );
    }
}

fn sync_dir(dir: &Path) -> Result<(), OpenError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| OpenError::SyncDir {
            path: dir.to_owned(),
            source,
        })
}

/// Reads every group in key order, which is insertion order within each group.
fn load(db: &Database, path: &Path) -> Result<Vec<LoadedGroup>, OpenError> {
    let read_error = |source: redb::Error| OpenError::Read {
        path: path.to_owned(),
        source,
    };
    let corrupt = |key: &[u8], cause: &dyn std::fmt::Display| OpenError::Corrupt {
        path: path.to_owned(),
        cause: format!("entry {}: {cause}", describe_key(key)),
    };
    let txn = db.begin_read().map_err(|e| read_error(e.into()))?;
    let table = match txn.open_table(ITEMS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(read_error(e.into())),
    };
    let mut groups: Vec<LoadedGroup> = Vec::new();
    let mut last_order = None;
    for entry in redb::ReadableTable::iter(&table).map_err(|e| read_error(e.into()))? {
        let (key, value) = entry.map_err(|e| read_error(e.into()))?;
        let (key, value) = (key.value(), value.value());
        let decoded = keys::decode_key(key).map_err(|e| corrupt(key, &e))?;
        let (item, json) = keys::decode_value(key, value).map_err(|e| corrupt(key, &e))?;
        let json = std::str::from_utf8(json).map_err(|_| corrupt(key, &FormatError::Utf8))?;
        let json: JsonText = RawValue::from_string(json.to_owned())
            .map(Arc::from)
            .map_err(|e| corrupt(key, &format_args!("value is not valid JSON: {e}")))?;
        let same_group = groups
            .last()
            .is_some_and(|g| *g.key.stream == *decoded.stream && *g.key.group == *decoded.group);
        if !same_group {
            groups.push(LoadedGroup {
                key: GroupKey::new(decoded.stream, decoded.group),
                items: Vec::new(),
            });
            last_order = None;
        }
        // Keys are unique and sorted, so positions can only grow; anything else is damage.
        if last_order.is_some_and(|last| last >= decoded.order) {
            return Err(corrupt(key, &"entries out of order"));
        }
        last_order = Some(decoded.order);
        if let Some(group) = groups.last_mut() {
            group.items.push((decoded.order, item.into(), json));
        }
    }
    Ok(groups)
}

/// A key for error messages: the names when they decode, else the raw bytes.
fn describe_key(key: &[u8]) -> String {
    match keys::decode_key(key) {
        Ok(k) => format!("({:?}, {:?}, #{})", k.stream, k.group, k.order),
        Err(_) => format!("{key:02x?}"),
    }
}
