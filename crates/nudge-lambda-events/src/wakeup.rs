//! A delay-queue message's body: wake up for `user_id`'s timer, due at `due` when the message
//! was sent (what the message does on arrival is the timer tiers' in `nudge-aws`).

use nudge_core::time::Millis;
use serde::{Deserialize, Serialize};

/// A delay-queue message's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wakeup {
    pub user_id: String,
    pub due: Millis,
    /// The timer's version when sent (for logs: on arrival the table's timer decides).
    pub version: u64,
}

impl Wakeup {
    /// Reads a message body.
    pub fn from_body(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// The message body.
    pub fn body(&self) -> String {
        // A struct of a string and two integers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wakeup_reads_back_from_its_body() {
        let w = Wakeup {
            user_id: "alice".into(),
            due: 1_772_442_000_000,
            version: 3,
        };
        assert_eq!(Wakeup::from_body(&w.body()).unwrap(), w);
        assert!(Wakeup::from_body("{\"user\":1}").is_err());
    }
}
