//! Errors of the Redis adapter, and how they surface as [`StoreError`]s (whose text becomes the
//! cause in `STREAM_*_ERROR` messages).

use crate::StoreError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The connection failed, timed out or was refused: Redis is unreachable right now.
    #[error("redis is unreachable: {0}")]
    Unreachable(redis::RedisError),
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Redis(redis::RedisError),
    /// A reply did not have the shape the scripts produce.
    #[error("unexpected reply from redis: {0}")]
    Reply(&'static str),
    /// `stream::update` lost the compare-and-set race too often.
    #[error("item {item:?} was modified concurrently {attempts} times in a row; giving up")]
    Contended { item: String, attempts: usize },
    /// The pub/sub connection did not come back within the wait.
    #[error("redis is unreachable: the pub/sub connection is down")]
    NotLive,
}

impl Error {
    /// Whether the error means Redis cannot be reached (the store is then reported unhealthy).
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::NotLive)
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            Self::Unreachable(e)
        } else {
            Self::Redis(e)
        }
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}
