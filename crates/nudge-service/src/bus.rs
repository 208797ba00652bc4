//! The events the four handlers exchange over the bus (EventBridge on AWS, in-process
//! locally): one enum, one `source`, one detail-type per variant.

use nudge_core::engine::decision::DecisionId;
use nudge_core::engine::Send;
use nudge_core::event::Message;
use nudge_core::rules::model::Channel;
use nudge_core::time::Millis;
use serde::{Deserialize, Serialize};

/// The EventBridge `source` of every event nudge publishes.
pub const SOURCE: &str = "nudge";

/// One bus event. Serialized with its detail-type as `type`, so the JSON alone says what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BusEvent {
    /// ingest → evaluate: validated Segment messages (several per bus entry, up to
    /// [`MAX_DETAIL_BYTES`], because the bus bills per 64 KB chunk, not per message).
    #[serde(rename = "Events Accepted")]
    EventsAccepted(AcceptedEvents),
    /// schedule-delay → evaluate: a user's wake-up time has come.
    #[serde(rename = "Timer Fired")]
    TimerFired(TimerFired),
    /// evaluate → schedule-delay: wake this user at `due`.
    #[serde(rename = "Delay Requested")]
    DelayRequested(DelayRequest),
    /// evaluate → schedule-delay: this user needs no wake-up any more.
    #[serde(rename = "Delay Cancelled")]
    DelayCancelled(DelayCancel),
    /// evaluate → deliver: a decided send (made or suppressed).
    #[serde(rename = "Message Requested")]
    MessageRequested(MessageRequest),
    /// deliver → anyone: the outcome of a send.
    #[serde(rename = "Message Sent")]
    MessageSent(DeliveryReport),
    #[serde(rename = "Message Suppressed")]
    MessageSuppressed(DeliveryReport),
    #[serde(rename = "Message Failed")]
    MessageFailed(DeliveryReport),
    /// The timers one publish fired ("Timer Fired" each), in one bus entry: EventBridge bills
    /// per entry, and a sweep fires many at once. See [`pack`].
    #[serde(rename = "Timers Fired")]
    TimersFired(FiredTimers),
    /// The timer changes of one publish ("Delay Requested" / "Delay Cancelled" each), in one
    /// bus entry: evaluate decides many users' at once. See [`pack`].
    #[serde(rename = "Timers Changed")]
    TimersChanged(TimerChanges),
}

/// Every detail-type, in the order of [`BusEvent`]'s variants.
pub const DETAIL_TYPES: [&str; 10] = [
    "Events Accepted",
    "Timer Fired",
    "Delay Requested",
    "Delay Cancelled",
    "Message Requested",
    "Message Sent",
    "Message Suppressed",
    "Message Failed",
    "Timers Fired",
    "Timers Changed",
];

impl BusEvent {
    /// The EventBridge detail-type (equal to the `type` field of the JSON).
    pub fn detail_type(&self) -> &'static str {
        match self {
            BusEvent::EventsAccepted(_) => DETAIL_TYPES[0],
            BusEvent::TimerFired(_) => DETAIL_TYPES[1],
            BusEvent::DelayRequested(_) => DETAIL_TYPES[2],
            BusEvent::DelayCancelled(_) => DETAIL_TYPES[3],
            BusEvent::MessageRequested(_) => DETAIL_TYPES[4],
            BusEvent::MessageSent(_) => DETAIL_TYPES[5],
            BusEvent::MessageSuppressed(_) => DETAIL_TYPES[6],
            BusEvent::MessageFailed(_) => DETAIL_TYPES[7],
            BusEvent::TimersFired(_) => DETAIL_TYPES[8],
            BusEvent::TimersChanged(_) => DETAIL_TYPES[9],
        }
    }

    /// The user the event is about; `None` for packed events, which may carry several.
    pub fn user_id(&self) -> Option<&str> {
        Some(match self {
            BusEvent::EventsAccepted(_) | BusEvent::TimersFired(_) | BusEvent::TimersChanged(_) => {
                return None
            }
            BusEvent::TimerFired(t) => &t.user_id,
            BusEvent::DelayRequested(d) => &d.user_id,
            BusEvent::DelayCancelled(d) => &d.user_id,
            BusEvent::MessageRequested(m) => &m.send.user_id,
            BusEvent::MessageSent(r)
            | BusEvent::MessageSuppressed(r)
            | BusEvent::MessageFailed(r) => &r.user_id,
        })
    }

    /// The JSON detail (what EventBridge carries in `detail`).
    pub fn to_detail(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The single events a packed event carries, in order; any other event as it is.
    pub fn unpack(self) -> Vec<BusEvent> {
        match self {
            BusEvent::TimersFired(f) => f.timers.into_iter().map(BusEvent::TimerFired).collect(),
            BusEvent::TimersChanged(c) => c
                .set
                .into_iter()
                .map(BusEvent::DelayRequested)
                .chain(c.cancel.into_iter().map(BusEvent::DelayCancelled))
                .collect(),
            other => vec![other],
        }
    }
}

/// Accepted messages published together, in the order they were received.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AcceptedEvents {
    pub events: Vec<AcceptedEvent>,
}

/// A Segment message that passed ingest's checks. Parsed once, at ingest: it travels (on the
/// bus, in the journal) as its canonical JSON and is read back as a [`Message`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptedEvent {
    /// userId, or anonymousId when there is none: the key of the user's state.
    pub user_id: String,
    pub message_id: String,
    /// The instant the engine applies it at: the sender's timestamp corrected for clock skew
    /// (Segment's `timestamp - sentAt + receivedAt`), never later than `received_at`.
    pub at: Millis,
    pub received_at: Millis,
    pub message: Message,
}

impl AcceptedEvent {
    /// `message`, accepted at `received_at` and applied at `at`.
    pub fn new(message: Message, at: Millis, received_at: Millis) -> AcceptedEvent {
        AcceptedEvent {
            user_id: message.user_key().to_string(),
            message_id: message.message_id.clone(),
            at,
            received_at,
            message,
        }
    }
}

/// Timers fired together (a sweep's), one bus entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FiredTimers {
    pub timers: Vec<TimerFired>,
}

/// Timer changes decided together (one evaluate invocation's users), one bus entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimerChanges {
    #[serde(default)]
    pub set: Vec<DelayRequest>,
    #[serde(default)]
    pub cancel: Vec<DelayCancel>,
}

/// A user's wake-up time has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerFired {
    pub user_id: String,
    pub due: Millis,
    /// The state version that requested the timer.
    pub version: u64,
}

/// Wake `user_id` at `due`. A user has one timer (their state's earliest wake-up); a request
/// replaces it only if its `version` is newer, so requests arriving out of order are harmless.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayRequest {
    pub user_id: String,
    pub due: Millis,
    /// The user-state version that produced this request.
    pub version: u64,
}

/// Drop `user_id`'s timer, unless a newer request set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayCancel {
    pub user_id: String,
    pub version: u64,
}

/// A decided send on its way to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRequest {
    pub send: Send,
}

/// What became of a send: a finished delivery log entry (`ports::Delivery`) as the bus publishes
/// it for rules of the team's own (a contract of its own: the entry's status is the event's
/// type, and its last change is `finished_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// The decision id (keys the delivery log and the inbox item).
    pub id: DecisionId,
    pub user_id: String,
    pub trigger: String,
    pub channel: Channel,
    pub message: String,
    pub variant: String,
    pub experiment: Option<String>,
    /// Why it was suppressed (`frequency_cap`, `quiet_hours`, ...).
    pub reason: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was decided.
    pub at: Millis,
    /// When deliver finished with it.
    pub finished_at: Millis,
    pub attempts: u32,
}
