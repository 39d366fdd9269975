//! Who is on call: the shifts of a [`Rotation`] and the overrides laid over them.
//!
//! Daily and weekly shifts are counted in the rotation's local calendar, so a hand-off at 09:00
//! in Europe/Berlin stays at 09:00 local time across daylight-saving changes (the shift that
//! spans the change lasts 23 or 25 hours). Fixed-length shifts (`shift = "12h"`) are real time
//! from the first hand-off. A local hand-off time that does not exist on a spring-forward day is
//! moved past the gap; one that exists twice in autumn is the first of the two.

use crate::config::{Rotation, Shift};
use crate::domain::PersonId;
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;

/// A person put on call in place of the rotation's schedule (`/oncall override`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationOverride {
    pub id: i64,
    pub rotation: String,
    pub person: PersonId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl RotationOverride {
    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && at < self.ends_at
    }
}

/// One stretch of time with one person on call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnCall {
    pub person: PersonId,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The override that put them there, if any.
    pub override_id: Option<i64>,
}

/// The instant a local date and time means in `rot`'s zone (see the module notes for gaps and
/// repeats).
fn resolve(rot: &Rotation, local: NaiveDateTime) -> DateTime<Utc> {
    let tz = rot.timezone;
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => {
            // A spring-forward gap: the first minute after it.
            (1..=180)
                .find_map(|m| tz.from_local_datetime(&(local + Duration::minutes(m))).earliest())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&local))
        }
    }
}

/// When shift `k` (0 = the first, with the first member) starts.
fn shift_start(rot: &Rotation, k: i64) -> DateTime<Utc> {
    let first = rot.start.and_time(rot.handoff);
    match rot.shift {
        Shift::Daily => resolve(rot, first + Duration::days(k)),
        Shift::Weekly => resolve(rot, first + Duration::days(7 * k)),
        Shift::Every(d) => resolve(rot, first) + d * (k as i32),
    }
}

/// The number of the shift running at `at`.
fn shift_at(rot: &Rotation, at: DateTime<Utc>) -> i64 {
    let estimate = match rot.shift {
        Shift::Daily | Shift::Weekly => {
            let step = if rot.shift == Shift::Daily { 1 } else { 7 };
            let local = at.with_timezone(&rot.timezone).naive_local();
            (local - rot.start.and_time(rot.handoff))
                .num_days()
                .div_euclid(step)
        }
        Shift::Every(d) => {
            let ms = d.num_milliseconds().max(1);
            (at - shift_start(rot, 0)).num_milliseconds().div_euclid(ms)
        }
    };
    // The estimate is off by at most one around a DST change; settle it on real instants.
    let mut k = estimate;
    while shift_start(rot, k) > at {
        k -= 1;
    }
    while shift_start(rot, k + 1) <= at {
        k += 1;
    }
    k
}

/// Who the schedule alone puts on call at `at`.
pub fn scheduled(rot: &Rotation, at: DateTime<Utc>) -> Option<OnCall> {
    if rot.members.is_empty() {
        return None;
    }
    let k = shift_at(rot, at);
    let n = rot.members.len() as i64;
    Some(OnCall {
        person: rot.members[k.rem_euclid(n) as usize].clone(),
        from: shift_start(rot, k),
        until: shift_start(rot, k + 1),
        override_id: None,
    })
}

/// Who is on call at `at`: the newest override active then, else the schedule. An override's
/// stretch ends when it does, or earlier where a newer one starts.
pub fn on_call(
    rot: &Rotation,
    at: DateTime<Utc>,
    overrides: &[RotationOverride],
) -> Option<OnCall> {
    let mine = || overrides.iter().filter(|o| o.rotation == rot.id);
    if let Some(o) = mine()
        .filter(|o| o.is_active(at))
        .max_by_key(|o| (o.created_at, o.id))
    {
        return Some(OnCall {
            person: o.person.clone(),
            from: o.starts_at,
            until: o.ends_at,
            override_id: Some(o.id),
        });
    }
    let mut s = scheduled(rot, at)?;
    // The scheduled stretch ends early where an override begins.
    if let Some(next) = mine()
        .filter(|o| o.starts_at > at && o.starts_at < s.until)
        .map(|o| o.starts_at)
        .min()
    {
        s.until = next;
    }
    Some(s)
}

/// Who is on call now and who comes next.
pub fn now_and_next(
    rot: &Rotation,
    at: DateTime<Utc>,
    overrides: &[RotationOverride],
) -> Option<(OnCall, OnCall)> {
    let now = on_call(rot, at, overrides)?;
    let mut next = on_call(rot, now.until, overrides)?;
    // The same person again (an override ending inside their own shift): look one further.
    if next.person == now.person {
        if let Some(after) = on_call(rot, next.until, overrides) {
            next = after;
        }
    }
    Some((now, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveTime};

    fn rot(shift: Shift, tz: chrono_tz::Tz) -> Rotation {
        Rotation {
            id: "primary".into(),
            name: "Primary".into(),
            members: vec!["a".parse().unwrap(), "b".parse().unwrap()],
            shift,
            handoff: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            timezone: tz,
            start: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn weekly_berlin_hands_over_at_nine_local_across_both_dst_changes() {
        let r = rot(Shift::Weekly, chrono_tz::Europe::Berlin);
        // Monday 2026-03-23 09:00 CET = 08:00 UTC; the next week starts after the spring change:
        // Monday 2026-03-30 09:00 CEST = 07:00 UTC.
        let s = on_call(&r, utc("2026-03-28T12:00:00Z"), &[]).unwrap();
        assert_eq!(s.from, utc("2026-03-23T08:00:00Z"));
        assert_eq!(s.until, utc("2026-03-30T07:00:00Z"));
        let next = on_call(&r, s.until, &[]).unwrap();
        assert_ne!(next.person, s.person);
        assert_eq!(
            next.from.with_timezone(&chrono_tz::Europe::Berlin).time(),
            NaiveTime::from_hms_opt(9, 0, 0).unwrap()
        );
        // Autumn: Monday 2026-10-19 09:00 CEST = 07:00 UTC until Monday 2026-10-26 09:00 CET =
        // 08:00 UTC.
        let a = on_call(&r, utc("2026-10-25T03:00:00Z"), &[]).unwrap();
        assert_eq!(a.from, utc("2026-10-19T07:00:00Z"));
        assert_eq!(a.until, utc("2026-10-26T08:00:00Z"));
        // One minute before and after the hand-off.
        let before = on_call(&r, utc("2026-10-26T07:59:00Z"), &[]).unwrap();
        let after = on_call(&r, utc("2026-10-26T08:00:00Z"), &[]).unwrap();
        assert_ne!(before.person, after.person);
    }

    #[test]
    fn daily_shifts_alternate_and_a_fixed_length_shift_ignores_dst() {
        let r = rot(Shift::Daily, chrono_tz::Europe::Berlin);
        let d1 = on_call(&r, utc("2026-03-29T10:00:00Z"), &[]).unwrap();
        // The shift across the spring change: 09:00 CET on the 28th to 09:00 CEST on the 29th.
        assert_eq!(d1.from, utc("2026-03-29T07:00:00Z"));
        let d0 = on_call(&r, utc("2026-03-29T06:59:00Z"), &[]).unwrap();
        assert_eq!(d0.until - d0.from, Duration::hours(23));
        assert_ne!(d0.person, d1.person);
        let f = rot(Shift::Every(Duration::hours(12)), chrono_tz::Europe::Berlin);
        let x = on_call(&f, utc("2026-03-29T10:00:00Z"), &[]).unwrap();
        assert_eq!(x.until - x.from, Duration::hours(12));
    }

    #[test]
    fn before_the_start_and_with_an_override() {
        let r = rot(Shift::Weekly, chrono_tz::UTC);
        let early = on_call(&r, utc("2026-02-20T00:00:00Z"), &[]).unwrap();
        assert!(early.until <= utc("2026-03-02T09:00:00Z"));
        let at = utc("2026-03-03T12:00:00Z");
        let s = on_call(&r, at, &[]).unwrap();
        assert_eq!(s.person.as_str(), "a");
        let o = RotationOverride {
            id: 1,
            rotation: "primary".into(),
            person: "c".parse().unwrap(),
            starts_at: utc("2026-03-03T10:00:00Z"),
            ends_at: utc("2026-03-03T18:00:00Z"),
            created_by: "dba".into(),
            created_at: utc("2026-03-03T09:00:00Z"),
        };
        let o2 = on_call(&r, at, std::slice::from_ref(&o)).unwrap();
        assert_eq!(o2.person.as_str(), "c");
        assert_eq!(o2.override_id, Some(1));
        let (now, next) = now_and_next(&r, at, std::slice::from_ref(&o)).unwrap();
        assert_eq!(now.person.as_str(), "c");
        assert_eq!(next.person.as_str(), "a");
        let before = on_call(&r, utc("2026-03-03T09:30:00Z"), &[o]).unwrap();
        assert_eq!(before.until, utc("2026-03-03T10:00:00Z"));
    }
}
