//! The durable log of the `file_based` kv store: a queue of records and the one committer thread
//! that makes them durable in batches (group commit), publishes their frames, then lets the
//! writers waiting on them go.
//!
//! Writers append under their group lock and get a log sequence number (LSN); LSNs are handed out
//! under the queue lock, so queue order, LSN order and (per group) `seq` order agree. The
//! committer takes everything queued, writes it in one redb transaction, and only after the
//! commit returned (fsync'd) publishes the frames in order and advances the durable watermark.
//! Writes that arrive during a commit wait in the queue and share the next one, so the number of
//! fsyncs follows the number of commits, not the number of writes.
//!
//! A failed commit is final: memory already holds changes the disk may not, so the log refuses
//! every later write, never publishes the failed frames, and reports itself unhealthy until the
//! process restarts.

use super::disk::{Disk, OpenError};
use super::watermark::{End, Watermark};
use crate::{EventSink, StoreError};
use iii_stream_domain::{Frame, GroupKey, JsonText};
use iii_stream_metrics::metrics;
use parking_lot::{Condvar, Mutex};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// A change to persist, with the frame to publish once it is durable.
pub(crate) struct Record {
    pub(crate) mutation: Option<Mutation>,
    pub(crate) frame: Arc<Frame>,
}

pub(crate) enum Mutation {
    Put {
        group: GroupKey,
        order: u64,
        item: Arc<str>,
        value: JsonText,
    },
    Remove {
        group: GroupKey,
        order: u64,
    },
}

/// A group read back from disk: items with their insertion positions, in that order.
pub(crate) struct LoadedGroup {
    pub(crate) key: GroupKey,
    pub(crate) items: Vec<(u64, Arc<str>, JsonText)>,
}

/// The LSN of a record appended after the log stopped accepting: it never becomes durable.
const NEVER: u64 = u64::MAX;

struct Queue {
    records: Vec<Record>,
    /// The LSN the next appended record gets. LSN 0 is "nothing", durable from the start.
    next_lsn: u64,
    /// False once closing or failed: appends are dropped and will never become durable.
    accepting: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when the queue goes from empty to non-empty, and on close.
    work: Condvar,
    /// Every LSN up to this one is durable and its frame published.
    durable: Watermark,
}

pub(crate) struct DurableLog {
    shared: Arc<Shared>,
    committer: Mutex<Option<JoinHandle<()>>>,
}

impl DurableLog {
    /// Opens the store directory, reads it, and starts the committer.
    pub(crate) fn open(
        dir: &Path,
        sink: Arc<dyn EventSink>,
    ) -> Result<(Self, Vec<LoadedGroup>), StoreError> {
        let (disk, loaded) = Disk::open(dir).map_err(open_error)?;
        Ok((Self::start(disk, sink)?, loaded))
    }

    /// Starts the committer on an opened store directory.
    pub(crate) fn start(disk: Disk, sink: Arc<dyn EventSink>) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                records: Vec::with_capacity(1024),
                next_lsn: 1,
                accepting: true,
            }),
            work: Condvar::new(),
            durable: Watermark::default(),
        });
        let committer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("iii-stream-commit".into())
                .spawn(move || commit_loop(&shared, disk, &*sink))
                .map_err(|e| StoreError::Open(format!("cannot start the store committer: {e}")))?
        };
        Ok(Self {
            shared,
            committer: Mutex::new(Some(committer)),
        })
    }

    /// Queues a record and returns its LSN. Never blocks on I/O: it runs under a group lock.
    pub(crate) fn append(&self, record: Record) -> u64 {
        let mut queue = self.shared.queue.lock();
        if !queue.accepting {
            // Closing or failed: the record is dropped, and `wait` on this LSN reports why.
            return NEVER;
        }
        let lsn = queue.next_lsn;
        queue.next_lsn += 1;
        let was_empty = queue.records.is_empty();
        queue.records.push(record);
        if was_empty {
            self.shared.work.notify_one();
        }
        lsn
    }

    /// Whether `lsn` is durable (and its frame published).
    pub(crate) fn is_durable(&self, lsn: u64) -> bool {
        self.shared.durable.durable() >= lsn
    }

    /// The LSN of the last record appended so far.
    pub(crate) fn appended(&self) -> u64 {
        self.shared.queue.lock().next_lsn - 1
    }

    /// Resolves once `lsn` is durable and its frame published, or fails if it never will be.
    pub(crate) async fn wait(&self, lsn: u64) -> Result<(), StoreError> {
        self.shared.durable.wait(lsn).await
    }

    /// `Err` once the log failed or closed.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match self.shared.durable.ended() {
            None => Ok(()),
            Some(end) => Err(end.error()),
        }
    }

    /// Stops accepting, lets the committer make everything already queued durable, and waits
    /// until it has closed the database and released the directory lock.
    pub(crate) async fn close(&self) {
        self.stop();
        let committer = self.committer.lock().take();
        if let Some(committer) = committer {
            // Joining blocks; the committer finishes at most one commit first.
            let _ = tokio::task::spawn_blocking(move || committer.join()).await;
        }
    }

    fn stop(&self) {
        self.shared.queue.lock().accepting = false;
        self.shared.work.notify_one();
    }
}

impl Drop for DurableLog {
    fn drop(&mut self) {
        // Without `close` (a failed startup, tests): still flush, and release the lock before
        // returning so the directory can be opened again at once.
        self.stop();
        if let Some(committer) = self.committer.get_mut().take() {
            let _ = committer.join();
        }
    }
}

fn open_error(e: OpenError) -> StoreError {
    StoreError::Open(e.to_string())
}

fn commit_loop(shared: &Shared, mut disk: Disk, sink: &dyn EventSink) {
    // Whatever way this thread ends (even a panicking sink), waiters must not hang.
    let mut outcome = Ending {
        shared,
        end: End::Failed("the store committer stopped unexpectedly".into()),
    };
    let mut batch: Vec<Record> = Vec::with_capacity(1024);
    loop {
        let last_lsn = {
            let mut queue = shared.queue.lock();
            while queue.records.is_empty() && queue.accepting {
                shared.work.wait(&mut queue);
            }
            if queue.records.is_empty() {
                break;
            }
            // Swapping keeps both buffers' capacity: steady state allocates nothing here.
            std::mem::swap(&mut queue.records, &mut batch);
            // The queue held exactly the LSNs up to this one not yet taken.
            queue.next_lsn - 1
        };
        let started = Instant::now();
        match disk.write(&batch) {
            Ok(synced) => {
                if synced {
                    let m = metrics();
                    m.store_fsyncs.inc();
                    m.store_commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                }
            }
            Err(e) => {
                let reason = format!("store commit failed: {e}; refusing writes until restarted");
                tracing::error!(error = %e, "store commit failed; the store refuses writes until the server restarts");
                let mut queue = shared.queue.lock();
                queue.accepting = false;
                queue.records.clear();
                drop(queue);
                // The failed frames are dropped unpublished.
                batch.clear();
                outcome.end = End::Failed(reason.into());
                return;
            }
        }
        for record in batch.drain(..) {
            sink.publish(&record.frame, true);
        }
        shared.durable.advance(last_lsn);
    }
    // The database is closed and the lock released before anyone is told the log closed.
    if let Err(e) = disk.close() {
        // Everything was committed; the next open verifies the file anyway.
        tracing::warn!(error = %e, "closing the store database failed");
    }
    outcome.end = End::Closed;
}

/// Publishes how the committer ended when it goes out of scope.
struct Ending<'a> {
    shared: &'a Shared,
    end: End,
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        self.shared.durable.end(self.end.clone());
    }
}
