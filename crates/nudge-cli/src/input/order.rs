//! A replay's input in time order: how the order is found out (checked first, trusted, or
//! made by sorting), and what is done with each message in that order before the engine
//! takes it.

use std::io;

use nudge_core::replay::Seen;
use nudge_core::time::Millis;

use super::Parsed;

/// How a file's time order is found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Read its timestamps first: a file in order streams, one that is not is sorted.
    Check,
    /// Stream it as if in order, and stop with [`OutOfOrder`] at the first message that is
    /// not (for a caller that writes nothing before the end, and starts over sorting).
    Trust,
    /// Sort it.
    Sort,
}

/// The input was not in time order after all ([`Order::Trust`]).
#[derive(Debug, thiserror::Error)]
#[error("line {line} is earlier than a line before it")]
pub struct OutOfOrder {
    pub line: usize,
}

impl OutOfOrder {
    /// The [`OutOfOrder`] an error of [`each_event`] carries, if that is what it is.
    pub fn of(e: &io::Error) -> Option<&OutOfOrder> {
        e.get_ref()?.downcast_ref::<OutOfOrder>()
    }
}

/// What is done with each message in order, on the thread that puts parsed lines back in
/// order (off the engine's thread): messageIds applied within the dedup window before are
/// recognised, as the replay would; and a `trusted` order is checked.
pub fn in_order(trusted: bool) -> impl FnMut(&mut Parsed) -> io::Result<()> + Send {
    let mut seen = Seen::default();
    let mut last = Millis::MIN;
    move |parsed| {
        if let Parsed::Event {
            msg,
            at,
            first_seen,
            line,
            ..
        } = parsed
        {
            if trusted && *at < last {
                return Err(io::Error::other(OutOfOrder { line: *line }));
            }
            last = *at;
            *first_seen = seen.insert(&msg.message_id, *at);
        }
        Ok(())
    }
}
