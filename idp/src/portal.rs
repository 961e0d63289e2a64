//! What the portal shows everyone: operators' announcements (最新公告) and the three home-page
//! figures (目前線上人數 / 今日總計人數 / 累積上線人數).
//!
//! The figures are counted in the database on every request, never kept in a node's memory, so
//! every node behind the load balancer shows the same numbers.

use diesel::dsl::{count, count_star};
use diesel::prelude::*;

use crate::audit::{self, Actor, Event};
use crate::crypto::random_token;
use crate::error::InfraError;
use crate::store::db::models::AnnouncementRow;
use crate::store::db::schema::{announcements, audit_events, sessions};
use crate::store::db::DbConn;

/// Audit events that are a person signing in. Card sign-in joins this list when it arrives.
pub const SIGN_IN_EVENTS: [&str; 3] = ["login.password", "login.one_time_password", "login.card"];

/// The home page's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Figures {
    /// People with a live SSO session.
    pub online: i64,
    /// People who signed in successfully today (Taipei day).
    pub today: i64,
    /// Every successful sign-in ever.
    pub total: i64,
}

/// Counts the figures at `now`. "Today" is the Asia/Taipei calendar day, as people read it.
pub fn figures(conn: &mut DbConn, now: i64) -> Result<Figures, InfraError> {
    let online: i64 = sessions::table
        .filter(sessions::expires_at.gt(now))
        .select(count(sessions::account_id).aggregate_distinct())
        .first(conn)?;
    let signed_in = || {
        audit_events::table
            .filter(audit_events::event.eq_any(SIGN_IN_EVENTS))
            .filter(audit_events::outcome.eq("success"))
    };
    let today: i64 = signed_in()
        .filter(audit_events::at.ge(taipei::start_of_day(now)))
        .select(count(audit_events::account_id).aggregate_distinct())
        .first(conn)?;
    let total: i64 = signed_in().select(count_star()).first(conn)?;
    Ok(Figures { online, today, total })
}

/// An announcement as operators write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncementInput {
    pub title: String,
    pub body: String,
    pub published_at: i64,
    pub expires_at: Option<i64>,
}

/// Why an announcement was not saved; the keys are translation keys.
#[derive(Debug, thiserror::Error)]
pub enum AnnouncementError {
    #[error("invalid: {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<diesel::result::Error> for AnnouncementError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Infra(e.into())
    }
}

fn check(input: &AnnouncementInput) -> Result<(), AnnouncementError> {
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(AnnouncementError::Invalid("err_announcement_title"));
    }
    if input.body.chars().count() > 10_000 {
        return Err(AnnouncementError::Invalid("err_announcement_body"));
    }
    if input.expires_at.is_some_and(|e| e <= input.published_at) {
        return Err(AnnouncementError::Invalid("err_announcement_expiry"));
    }
    Ok(())
}

/// Announcements shown now (published, not expired), newest first.
pub fn live_announcements(conn: &mut DbConn, now: i64, limit: i64) -> Result<Vec<AnnouncementRow>, InfraError> {
    Ok(announcements::table
        .filter(announcements::published_at.le(now))
        .filter(announcements::expires_at.is_null().or(announcements::expires_at.gt(now)))
        .order((announcements::published_at.desc(), announcements::id.asc()))
        .limit(limit)
        .select(AnnouncementRow::as_select())
        .load(conn)?)
}

/// Every announcement, newest first (for operators).
pub fn all_announcements(conn: &mut DbConn) -> Result<Vec<AnnouncementRow>, InfraError> {
    Ok(announcements::table
        .order((announcements::published_at.desc(), announcements::id.asc()))
        .limit(500)
        .select(AnnouncementRow::as_select())
        .load(conn)?)
}

pub fn announcement(conn: &mut DbConn, id: &str) -> Result<Option<AnnouncementRow>, InfraError> {
    Ok(announcements::table.find(id).select(AnnouncementRow::as_select()).get_result(conn).optional()?)
}

/// Creates an announcement for `actor` (whose account id it keeps as its author), audited as
/// `announcement.create` in the same transaction; returns its id.
pub fn create_announcement_by(
    conn: &mut DbConn,
    input: AnnouncementInput,
    actor: &Actor,
    now: i64,
) -> Result<String, AnnouncementError> {
    check(&input)?;
    let row = AnnouncementRow {
        id: random_token(12),
        title: input.title.trim().into(),
        body: input.body.trim().into(),
        published_at: input.published_at,
        expires_at: input.expires_at,
        created_by: actor.id.clone(),
        created_at: now,
        updated_at: now,
    };
    conn.transaction(|c| {
        diesel::insert_into(announcements::table).values(&row).execute(c)?;
        audited(c, actor, "announcement.create", &row.id, now)?;
        Ok(row.id)
    })
}

/// Replaces an announcement's text and times for `actor`, audited as `announcement.update` in
/// the same transaction; returns whether it exists.
pub fn update_announcement_by(
    conn: &mut DbConn,
    id: &str,
    input: AnnouncementInput,
    actor: &Actor,
    now: i64,
) -> Result<bool, AnnouncementError> {
    check(&input)?;
    conn.transaction(|c| {
        let changed = diesel::update(announcements::table.find(id))
            .set((
                announcements::title.eq(input.title.trim()),
                announcements::body.eq(input.body.trim()),
                announcements::published_at.eq(input.published_at),
                announcements::expires_at.eq(input.expires_at),
                announcements::updated_at.eq(now),
            ))
            .execute(c)?
            > 0;
        if changed {
            audited(c, actor, "announcement.update", id, now)?;
        }
        Ok(changed)
    })
}

/// Ends an announcement now for `actor` (kept for the record), audited as
/// `announcement.expire` in the same transaction; returns whether it exists.
pub fn expire_announcement_by(conn: &mut DbConn, id: &str, actor: &Actor, now: i64) -> Result<bool, InfraError> {
    conn.transaction(|c| {
        let changed = diesel::update(announcements::table.find(id))
            .set((announcements::expires_at.eq(Some(now)), announcements::updated_at.eq(now)))
            .execute(c)?
            > 0;
        if changed {
            audited(c, actor, "announcement.expire", id, now)?;
        }
        Ok(changed)
    })
}

/// The audit record of an operator's change to an announcement (its id, never its text).
fn audited(c: &mut DbConn, actor: &Actor, event: &str, id: &str, now: i64) -> Result<(), InfraError> {
    audit::record(c, Event { detail: format!("announcement {id}"), ..actor.event(event, "success") }, now)
}

/// Taipei wall-clock time (UTC+8 all year: Taiwan has no daylight saving), without a time-zone
/// database: pages show and accept local times, the database keeps epoch seconds.
pub mod taipei {
    const OFFSET: i64 = 8 * 3600;
    const DAY: i64 = 86_400;

    /// Midnight (Taipei) of the day `t` falls in.
    pub fn start_of_day(t: i64) -> i64 {
        (t + OFFSET).div_euclid(DAY) * DAY - OFFSET
    }

    /// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn civil_from_days(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
    }

    /// `YYYY-MM-DD HH:MM` in Taipei time.
    pub fn format(t: i64) -> String {
        let local = t + OFFSET;
        let (y, m, d) = civil_from_days(local.div_euclid(DAY));
        let secs = local.rem_euclid(DAY);
        format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", secs / 3600, secs % 3600 / 60)
    }

    /// `YYYY-MM-DDTHH:MM`, the value of an `<input type="datetime-local">`.
    pub fn format_input(t: i64) -> String {
        format(t).replacen(' ', "T", 1)
    }

    fn parse_date(s: &str) -> Option<i64> {
        let mut it = s.split('-');
        let (y, m, d) = (it.next()?.parse::<i64>().ok()?, it.next()?.parse::<i64>().ok()?, it.next()?.parse().ok()?);
        if it.next().is_some() || !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        let days = days_from_civil(y, m, d);
        // Reject 2026-02-31 and the like: the date must come back unchanged.
        (civil_from_days(days) == (y, m, d)).then_some(days)
    }

    /// Midnight (Taipei) starting a `YYYY-MM-DD` date.
    pub fn parse_day(s: &str) -> Option<i64> {
        Some(parse_date(s.trim())? * DAY - OFFSET)
    }

    /// A Taipei `YYYY-MM-DDTHH:MM` (or with a space, optionally `:SS`) as epoch seconds.
    pub fn parse_local(s: &str) -> Option<i64> {
        let s = s.trim();
        let (date, time) = s.split_once(['T', ' '])?;
        let mut it = time.split(':');
        let h: i64 = it.next()?.parse().ok()?;
        let mi: i64 = it.next()?.parse().ok()?;
        let sec: i64 = it.next().map(str::parse).transpose().ok()?.unwrap_or(0);
        if it.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..60).contains(&sec) {
            return None;
        }
        Some(parse_date(date)? * DAY + h * 3600 + mi * 60 + sec - OFFSET)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn taipei_days_and_times() {
            // 2026-01-01 00:00 Taipei = 2025-12-31 16:00 UTC = 1767196800.
            assert_eq!(parse_local("2026-01-01T00:00"), Some(1_767_196_800));
            assert_eq!(parse_day("2026-01-01"), Some(1_767_196_800));
            assert_eq!(start_of_day(1_767_196_800 + 86_399), 1_767_196_800);
            assert_eq!(start_of_day(1_767_196_800 - 1), 1_767_196_800 - 86_400);
            assert_eq!(format(1_767_196_800 + 3661), "2026-01-01 01:01");
            assert_eq!(format_input(1_767_196_800), "2026-01-01T00:00");
            assert_eq!(parse_day("2026-02-31"), None);
            assert_eq!(parse_local("2026-01-01T24:00"), None);
            assert_eq!(parse_local("2024-02-29 12:30"), Some(1_709_181_000));
        }
    }
}
