//! The `file_based` kv store against a real redb file in a temporary directory: round trips,
//! locking, damage detection and the failed state.

use super::disk::{DB_FILE, Disk, ITEMS};
use super::tests::{Recorder, item, text};
use super::*;
use redb::backends::FileBackend;
use redb::{BackendError, ReadableTable, StorageBackend};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn open(dir: &Path) -> (KvStore, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    (KvStore::open(dir, rec.clone()).unwrap(), rec)
}

fn open_err(dir: &Path) -> String {
    match KvStore::open(dir, Arc::new(Recorder::default())) {
        Ok(_) => panic!("opened {}", dir.display()),
        Err(e) => e.to_string(),
    }
}

async fn listed(store: &KvStore, s: &str, g: &str) -> Vec<String> {
    let values = store.list(&GroupKey::new(s, g)).await.unwrap();
    values.iter().map(|v| v.get().to_owned()).collect()
}

#[tokio::test]
async fn items_and_insertion_order_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, rec) = open(dir.path());
        for (n, (i, v)) in [("a", "1"), ("b", "2"), ("c", "3"), ("a", "4")]
            .into_iter()
            .enumerate()
        {
            store.set(&item("s", "g", i), text(v)).await.unwrap();
            // Published before the write is acknowledged.
            assert_eq!(rec.0.lock().len(), n + 1);
        }
        store.delete(&item("s", "g", "b")).await.unwrap();
        store.set(&item("s", "g", "b"), text("5")).await.unwrap();
        store.update(&item("s", "g", "d"), &[]).await.unwrap();
        // Names that only a length-prefixed key keeps apart.
        store.set(&item("s:g", "x", "\0"), text("6")).await.unwrap();
        store.set(&item("s", "g:x", "é"), text("7")).await.unwrap();
        store.set(&item("gone", "g", "x"), text("8")).await.unwrap();
        store.delete(&item("gone", "g", "x")).await.unwrap();
        let seqs: Vec<_> = rec.0.lock().iter().map(|f| f.seq()).collect();
        assert_eq!(seqs[..7], [1, 2, 3, 4, 5, 6, 7]);
        store.close().await;
        assert!(matches!(
            store.set(&item("s", "g", "z"), text("0")).await,
            Err(StoreError::Closed)
        ));
    }
    let (store, rec) = open(dir.path());
    assert_eq!(listed(&store, "s", "g").await, ["4", "3", "5", "{}"]);
    assert_eq!(listed(&store, "s:g", "x").await, ["6"]);
    assert_eq!(listed(&store, "s", "g:x").await, ["7"]);
    let names = |v: Vec<Arc<str>>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(names(store.list_groups("s").await.unwrap()), ["g", "g:x"]);
    assert!(store.list_groups("gone").await.unwrap().is_empty());
    assert_eq!(store.list_all().await.unwrap().len(), 2);
    // A restored item keeps its position; a new one goes last; sequencing restarts.
    store.set(&item("s", "g", "c"), text("9")).await.unwrap();
    store.set(&item("s", "g", "e"), text("10")).await.unwrap();
    assert_eq!(listed(&store, "s", "g").await, ["4", "9", "5", "{}", "10"]);
    assert_eq!(rec.0.lock()[0].seq(), 1);
}

#[tokio::test]
async fn concurrent_writes_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (store, rec) = open(dir.path());
    let store = Arc::new(store);
    let fsyncs = || iii_stream_metrics::metrics().store_fsyncs.get();
    let before = fsyncs();
    let writes = (0..400).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let key = item("s", &format!("g{}", i % 8), &i.to_string());
            store.set(&key, text(&i.to_string())).await.unwrap();
        })
    });
    for write in writes.collect::<Vec<_>>() {
        write.await.unwrap();
    }
    let commits = fsyncs() - before;
    // Other tests of this process may commit meanwhile; they only add a few.
    assert!(commits < 100, "{commits} commits for 400 concurrent writes");
    // Every group's frames were published in seq order.
    let frames = rec.0.lock();
    assert_eq!(frames.len(), 400);
    for g in 0..8 {
        let group = format!("g{g}");
        let seqs: Vec<_> = frames
            .iter()
            .filter(|f| *f.group.group == *group)
            .map(|f| f.seq())
            .collect();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn a_directory_is_opened_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let error = open_err(dir.path());
    assert!(
        error.contains("is locked by another process")
            && error.contains(&*dir.path().to_string_lossy()),
        "{error}"
    );
    store.close().await;
    // Closing released the lock.
    let (again, _) = open(dir.path());
    drop(again);
    // So does dropping.
    drop(open(dir.path()));
}

#[test]
fn a_path_that_is_not_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let error = open_err(&file);
    assert!(
        error.contains("is not a directory") && error.contains("file"),
        "{error}"
    );
    // A missing directory is created, parents included.
    let nested = dir.path().join("a/b");
    drop(open(&nested));
    assert!(nested.join(DB_FILE).is_file());
}

#[test]
fn legacy_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("stream_abc.bin");
    std::fs::write(&legacy, b"old").unwrap();
    drop(open(dir.path()));
    assert_eq!(std::fs::read(&legacy).unwrap(), b"old");
}

/// Writes a few items whose values contain `marker`, then closes the store.
async fn populate(dir: &Path, marker: &str) {
    let (store, _) = open(dir);
    for i in 0..50 {
        let value = format!("{{\"id\":\"{i}\",\"m\":\"{marker}{i:03}\"}}");
        store
            .set(
                &item("s", &format!("g{}", i % 3), &i.to_string()),
                text(&value),
            )
            .await
            .unwrap();
    }
    store.close().await;
}

#[tokio::test]
async fn overwritten_bytes_in_the_file_stop_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "MARKER-5f1c";
    populate(dir.path(), marker).await;
    let path = dir.path().join(DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let mut hits = 0;
    for i in 0..bytes.len().saturating_sub(marker.len()) {
        if bytes[i..].starts_with(marker.as_bytes()) {
            bytes[i..i + marker.len()].copy_from_slice(b"XXXXXXXXXXX");
            hits += 1;
        }
    }
    assert!(hits >= 50, "marker found {hits} times");
    std::fs::write(&path, &bytes).unwrap();
    let error = open_err(dir.path());
    assert!(
        error.contains(&*path.to_string_lossy()) && error.contains("corrupt"),
        "{error}"
    );
}

#[tokio::test]
async fn a_value_that_fails_its_checksum_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), "m").await;
    let path = dir.path().join(DB_FILE);
    {
        // Damage one value through redb itself, so only our checksum can notice.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(ITEMS).unwrap();
            let mut key = Vec::new();
            keys::encode_key(&mut key, &GroupKey::new("s", "g1"), 2);
            let mut value = table.get(key.as_slice()).unwrap().unwrap().value().to_vec();
            let last = value.len() - 6;
            value[last] ^= 1;
            table.insert(key.as_slice(), value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let error = open_err(dir.path());
    assert!(
        error.contains(&*path.to_string_lossy()) && error.contains("checksum mismatch"),
        "{error}"
    );
}

/// A file backend whose fsyncs can be made to fail (a real failed commit inside redb) or to
/// block (a commit in progress, for as long as a test needs).
#[derive(Debug, Default)]
struct SyncControl {
    fail: AtomicBool,
    hold: AtomicBool,
}

impl SyncControl {
    /// Blocks commits in fsync until the returned guard is dropped, also when a failed
    /// assertion unwinds (the store's drop waits for its committer).
    fn hold(&self) -> Held<'_> {
        self.hold.store(true, Ordering::SeqCst);
        Held(self)
    }
}

struct Held<'a>(&'a SyncControl);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.hold.store(false, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct ControlledSync {
    inner: FileBackend,
    control: Arc<SyncControl>,
}

impl StorageBackend for ControlledSync {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        while self.control.hold.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.control.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.inner.write(offset, data)
    }
    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }
    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(s, e)
    }
}

/// A durable store in `dir` whose fsyncs `control` steers.
fn controlled(dir: &Path, control: &Arc<SyncControl>) -> (KvStore, Arc<Recorder>) {
    let (disk, loaded) = Disk::open_with(dir, |builder, path| {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        builder.create_with_backend(ControlledSync {
            inner: FileBackend::new(file)?,
            control: control.clone(),
        })
    })
    .unwrap();
    let rec = Arc::new(Recorder::default());
    let log = DurableLog::start(disk, rec.clone()).unwrap();
    (
        KvStore::with_log(dir, log, loaded, rec.clone()).unwrap(),
        rec,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_saw_a_pending_write_wait_until_it_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let control = Arc::new(SyncControl::default());
    let (store, _) = controlled(dir.path(), &control);
    let store = Arc::new(store);
    store.set(&item("s", "g", "a"), text("1")).await.unwrap();

    // A delete whose commit is stuck in fsync.
    let held = control.hold();
    let pending = {
        let store = store.clone();
        tokio::spawn(async move { store.delete(&item("s", "g", "a")).await })
    };
    // Until the delete has been applied in memory.
    while store
        .find(&GroupKey::new("s", "g"))
        .is_some_and(|c| c.exists())
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Everything that would report "a" gone must wait for that delete to be durable.
    let g = GroupKey::new("s", "g");
    let (delete, get, list, groups) = {
        let s = store.clone();
        let d = tokio::spawn(async move {
            s.delete(&item("s", "g", "a"))
                .await
                .map(|d| d.old.is_none())
        });
        let s = store.clone();
        let r = tokio::spawn(async move { s.get(&item("s", "g", "a")).await.map(|v| v.is_none()) });
        let (s, k) = (store.clone(), g.clone());
        let l = tokio::spawn(async move { s.list(&k).await.map(|v| v.is_empty()) });
        let s = store.clone();
        let n = tokio::spawn(async move { s.list_groups("s").await.map(|v| v.is_empty()) });
        (d, r, l, n)
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    for answer in [&delete, &get, &list, &groups] {
        assert!(
            !answer.is_finished(),
            "answered before the delete it saw was durable"
        );
    }
    assert!(!pending.is_finished());
    drop(held);
    assert!(pending.await.unwrap().unwrap().old.is_some());
    for answer in [delete, get, list, groups] {
        assert!(answer.await.unwrap().unwrap());
    }
}

#[tokio::test]
async fn a_failed_commit_fails_the_store_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let control = Arc::new(SyncControl::default());
    let fail = &control.fail;
    let (store, rec) = controlled(dir.path(), &control);
    store.set(&item("s", "g", "a"), text("1")).await.unwrap();
    assert!(store.health().is_ok());

    fail.store(true, Ordering::SeqCst);
    let error = store
        .set(&item("s", "g", "b"), text("2"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Failed(_)), "{error}");
    assert!(
        error.to_string().contains("injected fsync failure"),
        "{error}"
    );
    // The failed write's frame was never published.
    assert_eq!(rec.0.lock().len(), 1);
    // Even with the disk healthy again, the store refuses writes and reports why.
    fail.store(false, Ordering::SeqCst);
    assert!(matches!(
        store.set(&item("s", "h", "c"), text("3")).await,
        Err(StoreError::Failed(_))
    ));
    assert!(matches!(
        store
            .emit(
                &GroupKey::new("s", "h"),
                None,
                Change::Custom {
                    kind: "t".into(),
                    data: text("1")
                }
            )
            .await,
        Err(StoreError::Failed(_))
    ));
    let health = store.health().unwrap_err();
    assert!(health.contains("store commit failed"), "{health}");
    assert_eq!(rec.0.lock().len(), 1);
    store.close().await;
    drop(store);
    // What was acknowledged is on disk; the failed write is not.
    let (store, _) = open(dir.path());
    assert_eq!(listed(&store, "s", "g").await, ["1"]);
}

#[tokio::test]
async fn an_item_stored_twice_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), "m").await;
    let path = dir.path().join(DB_FILE);
    {
        // A well-formed entry no write could have produced: item "1" again, at a new position.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(ITEMS).unwrap();
            let (mut key, mut value) = (Vec::new(), Vec::new());
            keys::encode_key(&mut key, &GroupKey::new("s", "g1"), 1000);
            keys::encode_value(&mut value, &key, "1", "{}");
            table.insert(key.as_slice(), value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let error = open_err(dir.path());
    assert!(
        error.contains(&*path.to_string_lossy()) && error.contains("stored twice"),
        "{error}"
    );
}
