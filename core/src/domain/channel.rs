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
    /// A signed JSON POST to a person's own endpoint (an SMS or voice gateway, a pager bridge).
    Webhook,
    /// ntfy's publish API (phone push notifications).
    Ntfy,
    /// Email over `[smtp]`.
    Email,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::Log,
        Channel::Discord,
        Channel::Webhook,
        Channel::Ntfy,
        Channel::Email,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Log => "log",
            Channel::Discord => "discord",
            Channel::Webhook => "webhook",
            Channel::Ntfy => "ntfy",
            Channel::Email => "email",
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
