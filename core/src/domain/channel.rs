//! Outbound channels: who delivers an outbox message.

use serde::Serialize;
use std::fmt;

/// The notifier that delivers an outbox message. Config, the engine and the store all name
/// channels, so the type lives here, below all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The log: the channel every installation has.
    Log,
    /// The Discord bot.
    Discord,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Log, Channel::Discord];

    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Log => "log",
            Channel::Discord => "discord",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
