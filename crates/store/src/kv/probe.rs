//! Whether the store directory can take a write at all, known before the first write fails.
//!
//! A store opened on a full (or read-only, or failing) disk loads and serves reads fine; only the
//! first commit would fail, and a failed commit fails the store for good (see `log`). So at
//! startup a small file is written, fsync'd and removed. While that fails, writes are refused
//! with the reason and `/healthz` reports it; the probe is repeated, at most once a second, by
//! whoever asks, so the store recovers on its own once the disk has room again.

use crate::StoreError;
use parking_lot::Mutex;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The probe file inside the store directory; it exists only while a probe runs.
const PROBE_FILE: &str = "write-probe.tmp";
/// About one small commit's worth of new pages.
const PROBE_BYTES: usize = 16 << 10;
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct WriteProbe {
    dir: PathBuf,
    /// The last failure and when it was seen; `None` once a probe succeeded.
    failure: Mutex<Option<(Instant, String)>>,
}

impl WriteProbe {
    /// Probes `dir` once.
    pub(crate) fn new(dir: &Path) -> Self {
        let probe = Self {
            dir: dir.to_owned(),
            failure: Mutex::new(None),
        };
        if let Err(error) = write_probe(dir) {
            tracing::error!(dir = %dir.display(), %error,
                "the store directory cannot take a write; writes are refused until it can");
            *probe.failure.lock() = Some((Instant::now(), error.to_string()));
        }
        probe
    }

    /// `Err` while the last probe failed, re-probing if it is old enough.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let mut failure = self.failure.lock();
        let Some((at, reason)) = &*failure else {
            return Ok(());
        };
        if at.elapsed() < RETRY_AFTER {
            return Err(unwritable(&self.dir, reason));
        }
        match write_probe(&self.dir) {
            Ok(()) => {
                tracing::info!(dir = %self.dir.display(), "the store directory takes writes again");
                *failure = None;
                Ok(())
            }
            Err(error) => {
                let reason = error.to_string();
                let refused = unwritable(&self.dir, &reason);
                *failure = Some((Instant::now(), reason));
                Err(refused)
            }
        }
    }
}

fn unwritable(dir: &Path, reason: &str) -> StoreError {
    StoreError::Failed(format!(
        "store directory {} cannot take a write ({reason}); writes are refused until it can",
        dir.display()
    ))
}

fn write_probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let written = std::fs::File::create(&path).and_then(|mut file| {
        file.write_all(&[0u8; PROBE_BYTES])?;
        file.sync_all()
    });
    let removed = std::fs::remove_file(&path);
    written?;
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_takes_writes_passes_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let probe = WriteProbe::new(dir.path());
        assert!(probe.check().is_ok());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_that_does_not_fails_with_the_reason_until_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let probe = WriteProbe::new(&missing);
        let error = probe.check().unwrap_err().to_string();
        assert!(
            error.contains("cannot take a write") && error.contains("gone"),
            "{error}"
        );
        std::fs::create_dir(&missing).unwrap();
        std::thread::sleep(RETRY_AFTER);
        assert!(probe.check().is_ok());
    }
}
