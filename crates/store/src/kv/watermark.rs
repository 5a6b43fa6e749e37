//! The durable watermark: the highest log position whose record is durable and published, and
//! the writers waiting for it to pass theirs.
//!
//! A broadcast channel would wake every waiting writer on every commit, although a commit
//! releases only the writers it contained; with many writes in flight most wake-ups would be
//! spurious. Here each waiter registers its position and waker, and an advance wakes exactly the
//! waiters it satisfied. Registration reuses one vector, so waiting allocates nothing.

use crate::StoreError;
use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

/// Why the watermark stopped advancing.
#[derive(Clone, Debug)]
pub(crate) enum End {
    /// A commit failed; the text says why.
    Failed(Arc<str>),
    Closed,
}

impl End {
    pub(crate) fn error(&self) -> StoreError {
        match self {
            Self::Failed(reason) => StoreError::Failed(reason.to_string()),
            Self::Closed => StoreError::Closed,
        }
    }
}

#[derive(Default)]
pub(crate) struct Watermark {
    durable: AtomicU64,
    ended: OnceLock<End>,
    waiters: Mutex<Vec<(u64, Waker)>>,
}

impl Watermark {
    /// Marks every position up to `lsn` durable and wakes their waiters.
    pub(crate) fn advance(&self, lsn: u64) {
        // Stored before the waiters are taken: a waiter that registers after this sees it on
        // its re-check under the lock, one that registered before is woken below.
        self.durable.store(lsn, Ordering::Release);
        self.waiters.lock().retain(|(wanted, waker)| {
            let done = *wanted <= lsn;
            if done {
                waker.wake_by_ref();
            }
            !done
        });
    }

    /// Stops the watermark for good (the first end wins) and fails every waiter beyond it.
    pub(crate) fn end(&self, end: End) {
        let _ = self.ended.set(end);
        for (_, waker) in self.waiters.lock().drain(..) {
            waker.wake();
        }
    }

    /// Every position up to this one is durable.
    pub(crate) fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    pub(crate) fn ended(&self) -> Option<&End> {
        self.ended.get()
    }

    /// Resolves once `lsn` is durable, or fails once it never will be.
    pub(crate) fn wait(&self, lsn: u64) -> Wait<'_> {
        Wait { mark: self, lsn }
    }

    fn settled(&self, lsn: u64) -> Option<Result<(), StoreError>> {
        if self.durable.load(Ordering::Acquire) >= lsn {
            return Some(Ok(()));
        }
        self.ended.get().map(|end| Err(end.error()))
    }
}

pub(crate) struct Wait<'a> {
    mark: &'a Watermark,
    lsn: u64,
}

impl Future for Wait<'_> {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(settled) = self.mark.settled(self.lsn) {
            return Poll::Ready(settled);
        }
        let mut waiters = self.mark.waiters.lock();
        if let Some(settled) = self.mark.settled(self.lsn) {
            return Poll::Ready(settled);
        }
        // A repeated poll registers again; the extra entry goes at the same advance.
        waiters.push((self.lsn, cx.waker().clone()));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    const SHORT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn waiters_resolve_when_their_position_is_passed() {
        let mark = Arc::new(Watermark::default());
        assert!(mark.wait(0).await.is_ok());
        let waiter = |lsn| {
            let mark = mark.clone();
            tokio::spawn(async move { mark.wait(lsn).await })
        };
        let (early, late) = (waiter(3), waiter(9));
        tokio::time::sleep(SHORT).await;
        mark.advance(5);
        assert!(timeout(SHORT, early).await.unwrap().unwrap().is_ok());
        assert_eq!(
            mark.waiters.lock().len(),
            1,
            "only the satisfied waiter was released"
        );
        let mut late = late;
        assert!(timeout(SHORT, &mut late).await.is_err());
        mark.advance(9);
        assert!(timeout(SHORT, late).await.unwrap().unwrap().is_ok());
    }

    #[tokio::test]
    async fn an_end_fails_what_is_not_durable_and_keeps_what_is() {
        let mark = Arc::new(Watermark::default());
        mark.advance(4);
        let pending = {
            let mark = mark.clone();
            tokio::spawn(async move { mark.wait(7).await })
        };
        tokio::time::sleep(SHORT).await;
        mark.end(End::Failed("disk on fire".into()));
        mark.end(End::Closed);
        let error = timeout(SHORT, pending).await.unwrap().unwrap().unwrap_err();
        assert!(error.to_string().contains("disk on fire"), "{error}");
        assert!(mark.wait(4).await.is_ok());
        assert!(matches!(mark.wait(5).await, Err(StoreError::Failed(_))));
    }
}
