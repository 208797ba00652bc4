//! The ports adapters implement: storage by capability (user state, timers, deliveries, inbox),
//! the bus, and the outside world (mail, webhooks, the clock). SQLite (`nudge serve`) and
//! DynamoDB/EventBridge/SES (AWS) implement the same traits with the same guarantees.

use std::future::Future;

use nudge_core::engine::decision::DecisionId;
use nudge_core::insights::{Deltas, Period, Sums};
use nudge_core::rules::model::Channel;
use nudge_core::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bus::{BusEvent, DelayCancel, DelayRequest, TimerFired};

/// A storage or bus failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The conditional write lost: the version moved, or a messageId in the write was applied
    /// meanwhile. Reload and try again.
    #[error("concurrent update of user `{0}`")]
    Conflict(String),
    /// Stored data that cannot be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// At capacity (the backlog bound of `nudge serve`, throttling): nothing was taken; the
    /// same call may succeed after `retry_after`.
    #[error("overloaded; retry in {}s", retry_after.as_secs())]
    Overloaded { retry_after: std::time::Duration },
    /// The backend failed; `retryable` says whether trying again may help.
    #[error("{context}: {source}")]
    Backend {
        context: &'static str,
        retryable: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(
        context: &'static str,
        retryable: bool,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Backend {
            context,
            retryable,
            source: source.into(),
        }
    }

    /// Whether a retry of the whole operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Conflict(_) | StoreError::Overloaded { .. } => true,
            StoreError::Corrupt(_) => false,
            StoreError::Backend { retryable, .. } => *retryable,
        }
    }
}

/// A user's stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredUser {
    /// `UserState::encode` bytes.
    pub state: Vec<u8>,
    /// Starts at 1 with the first write; every write adds one.
    pub version: u64,
    /// Bus events produced with this version that may not have been published yet.
    pub outbox: Vec<BusEvent>,
    /// Those of the messageIds asked about in [`UserStore::load`] that were already applied.
    pub applied: Vec<String>,
    /// Report counter changes saved with this version and not applied yet (only in stores
    /// that apply them after the save, [`UserStore::COUNTS_IN_SAVE`] false).
    pub counts: Deltas,
}

/// One write of a user's state: the new state, the bus events it produced, the messageIds
/// it applied and what it adds to the report counters, stored atomically.
#[derive(Debug, Clone, Copy)]
pub struct UserWrite<'a> {
    pub state: &'a [u8],
    pub outbox: &'a [BusEvent],
    pub message_ids: &'a [&'a str],
    /// When the write happens (for the applied messageIds' expiry).
    pub now: Millis,
    /// Report counter changes: applied in the same transaction
    /// ([`UserStore::COUNTS_IN_SAVE`]), or kept with the state until
    /// [`UserStore::apply_counts`] applies them.
    pub counts: &'a Deltas,
}

/// How long an applied messageId is remembered (a retry later than this counts again).
pub const MESSAGE_ID_RETENTION_MS: Millis = 7 * 24 * 3600 * 1000;

/// User state, written only by evaluate. Optimistic concurrency on a version number.
pub trait UserStore: Send + Sync {
    /// Whether `save` and `save_many` publish each write's outbox themselves, in the same
    /// transaction as the state (a store that holds the bus's queue, as `nudge serve`'s):
    /// evaluate then neither publishes nor clears it, and a crash leaves nothing unpublished.
    const PUBLISHES_OUTBOX: bool = false;

    /// Whether `save` and `save_many` apply each write's counter changes in the same
    /// transaction as the state. Otherwise they keep them with the state, like the outbox,
    /// and evaluate calls [`UserStore::apply_counts`] after the save (and after a load that
    /// finds some left by a crash).
    const COUNTS_IN_SAVE: bool = false;

    /// The user's state, or `None` for a user never written, with which of `message_ids`
    /// were already applied to this user (within the retention; one read where the backend
    /// allows it).
    fn load(
        &self,
        user_id: &str,
        message_ids: &[&str],
    ) -> impl Future<Output = Result<Option<StoredUser>, StoreError>> + Send;

    /// Writes state, outbox and applied messageIds in one atomic step if the stored version
    /// is `expected` (`None`: no state stored yet) and none of the messageIds is applied.
    /// Returns the new version (`expected + 1`). Otherwise fails with `Conflict`, writing
    /// nothing.
    fn save(
        &self,
        user_id: &str,
        expected: Option<u64>,
        write: UserWrite<'_>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Empties the outbox once its events are published, if the version is still `version`
    /// (a newer write has its own outbox).
    fn clear_outbox(
        &self,
        user_id: &str,
        version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies the counter changes saved with the user's `version` to the report counters,
    /// exactly once however often it is called, and forgets them if the version is still
    /// `version`. Stores that apply them in `save` have nothing to do.
    fn apply_counts(
        &self,
        user_id: &str,
        version: u64,
        counts: &Deltas,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (user_id, version, counts);
        async { Ok(()) }
    }

    /// Erases everything stored under the user (GDPR): state, applied messageIds, timer,
    /// delivery log and inbox.
    fn erase_user(&self, user_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`UserStore::load`] for several users, in order. A store that can read them in one
    /// round trip does; the default reads one after the other.
    fn load_many(
        &self,
        users: &[LoadRequest<'_>],
    ) -> impl Future<Output = Result<Vec<Option<StoredUser>>, StoreError>> + Send {
        async move {
            let mut out = Vec::with_capacity(users.len());
            for u in users {
                out.push(self.load(u.user_id, u.message_ids).await?);
            }
            Ok(out)
        }
    }

    /// [`UserStore::save`] for several users, in order: each write is conditional on its own
    /// and succeeds or conflicts on its own (the inner results). The outer error is a failure
    /// of the backend that may have stopped any of them. The default writes one after the
    /// other.
    fn save_many(
        &self,
        writes: &[SaveRequest<'_>],
    ) -> impl Future<Output = Result<Vec<Result<u64, StoreError>>, StoreError>> + Send {
        async move {
            let mut out = Vec::with_capacity(writes.len());
            for w in writes {
                match self.save(w.user_id, w.expected, w.write).await {
                    Err(e @ StoreError::Conflict(_)) => out.push(Err(e)),
                    other => out.push(Ok(other?)),
                }
            }
            Ok(out)
        }
    }

    /// [`UserStore::clear_outbox`] for several (user, version) pairs.
    fn clear_outboxes(
        &self,
        users: &[(&str, u64)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for (user_id, version) in users {
                self.clear_outbox(user_id, *version).await?;
            }
            Ok(())
        }
    }
}

/// One user of [`UserStore::load_many`].
#[derive(Debug, Clone, Copy)]
pub struct LoadRequest<'a> {
    pub user_id: &'a str,
    pub message_ids: &'a [&'a str],
}

/// [`UserStore::save`] for a store whose writes all go through its own
/// [`UserStore::save_many`]: one request of one write.
pub async fn save_through_many<S: UserStore>(
    store: &S,
    user_id: &str,
    expected: Option<u64>,
    write: UserWrite<'_>,
) -> Result<u64, StoreError> {
    let request = [SaveRequest {
        user_id,
        expected,
        write,
    }];
    let mut saved = store.save_many(&request).await?;
    saved
        .pop()
        .unwrap_or_else(|| Err(StoreError::Conflict(user_id.to_owned())))
}

/// One user of [`UserStore::save_many`].
#[derive(Debug, Clone, Copy)]
pub struct SaveRequest<'a> {
    pub user_id: &'a str,
    pub expected: Option<u64>,
    pub write: UserWrite<'a>,
}

/// A user's pending wake-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub user_id: String,
    pub due: Millis,
    pub version: u64,
}

/// Timers, written only by schedule-delay: one per user, replaced only by newer versions.
pub trait TimerStore: Send + Sync {
    /// Sets the user's timer to `req.due` unless a request or cancel with a version at least
    /// `req.version` was applied already. Idempotent.
    fn set(&self, req: &DelayRequest) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the user's timer unless a newer request set it (a request of the same version
    /// does not pass a cancel, in either order); remembers the version so that a request of
    /// it or older arriving later does not bring the timer back. Idempotent.
    fn cancel(&self, req: &DelayCancel) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Puts back a timer claimed by `claim_due` whose "Timer Fired" could not be published:
    /// like `set`, but also applies when the stored version equals `req.version` (the claim
    /// left that version behind). A newer request or cancel still wins.
    fn restore(&self, req: &DelayRequest) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims up to `limit` timers due at or before `now`, earliest first. Each timer is
    /// claimed by exactly one caller, however many sweep at once; a claimed timer is gone.
    fn claim_due(
        &self,
        now: Millis,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<TimerFired>, StoreError>> + Send;

    /// The user's pending timer (admin view); expired-but-unclaimed timers are still pending.
    fn pending(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<Timer>, StoreError>> + Send;
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Claimed by deliver, not finished (a crash leaves it so; a retry takes it over).
    Sending,
    Sent,
    Suppressed,
    /// Failed after the last attempt (the dead-letter record).
    Failed,
}

/// One entry of the delivery log, keyed by (user, decision id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: DecisionId,
    pub user_id: String,
    pub trigger: String,
    pub channel: Channel,
    pub message: String,
    pub variant: String,
    pub experiment: Option<String>,
    pub status: DeliveryStatus,
    pub reason: Option<String>,
    pub error: Option<String>,
    /// When the decision was taken.
    pub at: Millis,
    /// Last change of status.
    pub updated_at: Millis,
    pub attempts: u32,
    /// Subject (email) or title (in-app) as rendered, for the admin view.
    pub subject: Option<String>,
}

impl From<&Delivery> for crate::bus::DeliveryReport {
    fn from(d: &Delivery) -> Self {
        crate::bus::DeliveryReport {
            id: d.id,
            user_id: d.user_id.clone(),
            trigger: d.trigger.clone(),
            channel: d.channel,
            message: d.message.clone(),
            variant: d.variant.clone(),
            experiment: d.experiment.clone(),
            reason: d.reason.clone(),
            error: d.error.clone(),
            at: d.at,
            finished_at: d.updated_at,
            attempts: d.attempts,
        }
    }
}

/// How long delivery log entries are kept after their last change (`updated_at`); older
/// ones count as absent.
pub const DELIVERY_RETENTION_MS: Millis = 90 * 24 * 3600 * 1000;

/// The delivery log, written only by deliver.
pub trait DeliveryStore: Send + Sync {
    /// Records `d` (status `Sending` or `Suppressed`) if no entry with its id exists and
    /// returns `None`; otherwise leaves the log alone and returns the existing entry.
    fn begin(
        &self,
        d: &Delivery,
    ) -> impl Future<Output = Result<Option<Delivery>, StoreError>> + Send;

    /// Replaces the entry (same user and id) with its final form, or with its progress (a
    /// mail marked before it is tried).
    fn finish(&self, d: &Delivery) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces an entry left `Sending` with `d` if it is still the one `seen` (same last
    /// change, still `Sending`): `true` if this call took it over, `false` if another did
    /// first (two redeliveries of an abandoned send must not both send it).
    fn take_over(
        &self,
        d: &Delivery,
        seen: &Delivery,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The user's latest entries, newest first.
    fn recent(
        &self,
        user_id: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;
}

/// One in-app message in a user's inbox, keyed by (user, decision id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxItem {
    pub id: DecisionId,
    pub user_id: String,
    pub trigger: String,
    /// The variant sent (engagement with the item is counted for it); empty in items stored
    /// before variants were kept.
    #[serde(default)]
    pub variant: String,
    pub message: String,
    pub title: Option<String>,
    pub body: String,
    pub url: Option<String>,
    pub created_at: Millis,
    pub read_at: Option<Millis>,
    /// After this the item is no longer listed.
    pub expires_at: Millis,
}

/// The report counters, read over a period (written with users' state, see [`UserWrite`]).
pub trait ReportStore: Send + Sync {
    /// Counter sums over the period's hours, the pending waits now, and the distinct users
    /// seen in the period.
    fn report_sums(&self, period: Period) -> impl Future<Output = Result<Sums, StoreError>> + Send;
}

/// How long an in-app message stays in the inbox.
pub const INBOX_RETENTION_MS: Millis = 30 * 24 * 3600 * 1000;

/// Per-user in-app inboxes, written by deliver (items) and the inbox API (read, dismiss).
pub trait InboxStore: Send + Sync {
    /// Adds the item unless one with its id exists (idempotent).
    fn put(&self, item: &InboxItem) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The user's items not dismissed and not expired at `now` (`now <= expires_at`), newest
    /// first.
    fn list(
        &self,
        user_id: &str,
        now: Millis,
    ) -> impl Future<Output = Result<Vec<InboxItem>, StoreError>> + Send;

    /// Marks an item read (keeping the first read time) and returns it; `None` if the user
    /// has no such item in the inbox (never had it, dismissed it, or it expired at `now`).
    fn mark_read(
        &self,
        user_id: &str,
        id: DecisionId,
        now: Millis,
    ) -> impl Future<Output = Result<Option<InboxItem>, StoreError>> + Send;

    /// Removes an item from the inbox and returns it; `None` if the user has no such item
    /// (or dismissed it before).
    fn dismiss(
        &self,
        user_id: &str,
        id: DecisionId,
    ) -> impl Future<Output = Result<Option<InboxItem>, StoreError>> + Send;
}

/// A timer store whose timers also expire by themselves (DynamoDB's TTL deletes them), so
/// the stream backstop must claim an expired timer before firing it: Lambda delivers a
/// stream record again after a failure in its batch, and a timer put back after a failed
/// publish may meet the sweeper.
pub trait ExpiredTimerClaim: Send + Sync {
    /// Claims a timer its expiry removed, at its version: `true` if this call claimed it;
    /// `false` if it was claimed before (by the sweeper or an earlier delivery of the
    /// record), cancelled, or replaced by a newer request.
    fn claim_expired(
        &self,
        timer: &crate::bus::TimerFired,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;
}

/// The bus the handlers talk through.
pub trait Bus: Send + Sync {
    /// Publishes every event or fails; on failure some may have been published (handlers
    /// are idempotent, so publishing again is safe).
    fn publish(&self, events: &[BusEvent]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A mail that is ready to go: envelope plus the RFC 5322 bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingEmail {
    /// The decision id (idempotency key and file name in the outbox).
    pub id: DecisionId,
    pub from: String,
    pub to: String,
    pub raw: Vec<u8>,
}

/// A mail provider's or webhook receiver's failure, with its cause.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {}", error_chain(.source.as_ref()))]
pub struct SendError {
    /// What was being done: `SES SendEmail`, `SMTP`, `outbox <file>`, `webhook`.
    pub context: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
    /// Whether trying again later may work (throttling, timeouts, 5xx).
    pub retryable: bool,
    /// The sending side itself cannot take mail now (the outbox's disk is full): the delivery
    /// waits, however long it takes, rather than failing.
    pub hold: bool,
    /// The provider may have taken the mail: the request went out and no answer came back
    /// (a timeout, a connection lost while waiting). Sending again could deliver it twice.
    pub maybe_taken: bool,
}

impl SendError {
    /// A failure of `context` caused by `source`.
    pub fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
        retryable: bool,
    ) -> Self {
        SendError {
            context: context.into(),
            source: source.into(),
            retryable,
            hold: false,
            maybe_taken: false,
        }
    }

    /// The same failure, after which the provider may have taken the mail.
    pub fn maybe_taken(mut self) -> Self {
        self.maybe_taken = true;
        self
    }

    /// The same failure, held: the delivery waits for the sender rather than failing.
    pub fn held(mut self) -> Self {
        self.hold = true;
        self
    }
}

/// An error and its sources, joined by `: ` (HTTP and SMTP clients hide the cause, such as
/// "connection refused", in a source).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Sends mail: an outbox folder, SMTP, SES v2.
pub trait Mailer: Send + Sync {
    /// Sends the mail; returns the provider's message id.
    fn send(&self, email: &OutgoingEmail)
        -> impl Future<Output = Result<String, SendError>> + Send;

    /// Whether the provider keeps one mail per decision id, so that sending one again can
    /// never deliver it twice (the outbox folder writes a file named after it once). deliver
    /// then resends freely; otherwise a mail that may have left is never sent again.
    fn keyed_by_decision(&self) -> bool {
        false
    }
}

/// An HTTP POST of a webhook: the transport only; signing and retries are deliver's.
pub trait WebhookTransport: Send + Sync {
    /// POSTs `body` with `headers`; returns the response status, or an error for transport
    /// failures (connection refused, timeout).
    fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u64,
    ) -> impl Future<Output = Result<u16, SendError>> + Send;
}

/// The time, injected so tests and replays control it.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        d.as_millis() as Millis
    }
}

/// Admin-facing JSON of a value (decoded state etc.).
pub type Json = Value;
