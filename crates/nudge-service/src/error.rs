//! What can go wrong in a handler, and whether the bus should deliver the event again.

use tracing::warn;

use crate::ports::StoreError;

/// A handler's failure.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored state was written by an incompatible version; retrying cannot help.
    #[error("state of user `{user_id}` cannot be decoded: {source}")]
    State {
        user_id: String,
        #[source]
        source: nudge_core::state::StateError,
    },
    /// Optimistic concurrency kept losing; the bus should try again later.
    #[error("user `{0}` kept changing under us; giving up for now")]
    Contended(String),
    /// The channel cannot take the message now (the outbox's disk is full): the delivery stays
    /// pending and is tried again, however long it takes.
    #[error("sending `{id}` waits: {source}")]
    Held {
        id: String,
        #[source]
        source: crate::ports::SendError,
    },
}

impl HandlerError {
    /// Whether delivering the same event again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Store(e) => e.is_retryable(),
            HandlerError::State { .. } => false,
            HandlerError::Contended(_) | HandlerError::Held { .. } => true,
        }
    }

    /// Whether the failure is the backend's rather than the event's (the store or the disk
    /// is failing, full or busy): such an event is retried until the backend recovers, never
    /// dropped or set aside.
    pub fn waits_for_backend(&self) -> bool {
        match self {
            HandlerError::Store(e) => e.is_retryable(),
            HandlerError::Held { .. } => true,
            _ => false,
        }
    }
}

/// The failure a handler reports for an event of several users, after trying every user:
/// the first retryable one if any (so the bus delivers the event again; users already done
/// skip it as duplicates), else the first.
#[derive(Default)]
pub struct FirstFailure(Option<HandlerError>);

impl FirstFailure {
    /// Logs `e` (of `user_id`) and keeps it if it is the one to report.
    pub fn note(&mut self, user_id: &str, e: HandlerError) {
        warn!(user_id, error = %e, retryable = e.is_retryable(), "handling failed for a user");
        let replace = match &self.0 {
            None => true,
            Some(f) => !f.is_retryable() && e.is_retryable(),
        };
        if replace {
            self.0 = Some(e);
        }
    }

    pub fn into_result(self) -> Result<(), HandlerError> {
        self.0.map_or(Ok(()), Err)
    }
}
