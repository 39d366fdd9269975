//! Validated identifiers. Each is parsed once at the edge and cannot hold a bad value afterwards.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An incident reference, `INC-<n>`: the sequential number per installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentRef(i64);

impl IncidentRef {
    /// No incident: what a public incident read back from a broadcast's payload carries (the
    /// payload is public, so it never holds the internal reference).
    pub fn unknown() -> Self {
        IncidentRef(0)
    }
    pub const FORM: &'static str = "INC-<number>, e.g. INC-7";
    /// The reference of incident number `n`. Numbers come from the store (sequential, from 1);
    /// people's text goes through [`str::parse`], which checks it.
    pub const fn new(n: i64) -> Self {
        IncidentRef(n)
    }
    pub fn number(self) -> i64 {
        self.0
    }
}

impl fmt::Display for IncidentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INC-{}", self.0)
    }
}

impl FromStr for IncidentRef {
    type Err = String;
    /// Accepts `INC-7`, `inc-7` and a bare `7`, which is what people type in a hurry.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = t
            .strip_prefix("INC-")
            .or_else(|| t.strip_prefix("inc-"))
            .or_else(|| t.strip_prefix("Inc-"))
            .unwrap_or(t);
        match digits.parse::<i64>() {
            Ok(n) if n > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(IncidentRef(n)),
            _ => Err(format!(
                "`{s}` is not an incident reference; expected {}",
                Self::FORM
            )),
        }
    }
}

impl Serialize for IncidentRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IncidentRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A recovery level id (the guide's 1–5). Which ids exist is configuration; the command engine
/// checks a level against the configured ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LevelId(pub u8);

impl fmt::Display for LevelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! slug_id {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const FORM: &'static str =
                "lowercase letters, digits, '-' and '_', starting with a letter (at most 64)";
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if is_slug(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(format!("`{}` is not a valid {}: use {}", s, $what, Self::FORM))
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

slug_id!(
    /// A configured person's stable id (`sysadmin`, `dba`). Chat identities (Discord snowflakes)
    /// map onto it; display names never do.
    PersonId,
    "person id"
);
slug_id!(
    /// A component of the Workout Tracking System (`database`, `application`, …).
    ComponentId,
    "component id"
);

pub fn is_slug(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_refs_parse_in_the_forms_people_type() {
        assert_eq!("INC-7".parse::<IncidentRef>().unwrap(), IncidentRef(7));
        assert_eq!("inc-12".parse::<IncidentRef>().unwrap(), IncidentRef(12));
        assert_eq!("3".parse::<IncidentRef>().unwrap(), IncidentRef(3));
        for bad in ["INC-", "INC-0", "INC--1", "INC-1a", "x", "", "INC-+4"] {
            let err = bad.parse::<IncidentRef>().unwrap_err();
            assert!(err.contains("INC-<number>"), "{bad}: {err}");
        }
    }

    #[test]
    fn person_ids_are_slugs() {
        assert!("sysadmin".parse::<PersonId>().is_ok());
        assert!("security-consultant".parse::<PersonId>().is_ok());
        for bad in ["Sam", "1abc", "a b", "a;rm", ""] {
            assert!(bad.parse::<PersonId>().is_err(), "{bad}");
        }
    }
}
