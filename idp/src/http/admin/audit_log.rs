//! The audit log search: by event, outcome, account, client and Taipei date range, newest first,
//! a page at a time. People appear by account id only; any national-ID-shaped text in a detail
//! is masked on the way out, whatever wrote it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::Operator;
use crate::audit::{self, mask_national_ids, Query};
use crate::http::errors::Failure;
use crate::oidc::params::Params;
use crate::portal::taipei;
use crate::state::AppState;

const PAGE_SIZE: i64 = 50;

/// Events operators commonly look for, offered as suggestions.
const KNOWN_EVENTS: [&str; 20] = [
    "login.password",
    "login.one_time_password",
    "login.card",
    "logout",
    "account.activate",
    "password.reset",
    "consent.deny",
    "token.client_auth",
    "client.create",
    "client.update",
    "client.rotate_secret",
    "client.disable",
    "client.enable",
    "client.delete",
    "registration_token.issue",
    "key.rotate",
    "personnel.import",
    "agencies.import",
    "announcement.create",
    "admin.access",
];

/// The data of `admin_audit.hbs`: the filters as typed, a page of rows, the links to the pages
/// beside it.
#[derive(Debug, Serialize)]
struct AuditPage {
    q: Filters,
    events: Vec<EventRow>,
    known_events: &'static [&'static str],
    page: i64,
    prev: Option<String>,
    next: Option<String>,
    error_key: Option<&'static str>,
}

/// The search form's fields.
#[derive(Debug, Serialize)]
struct Filters {
    event: Option<String>,
    outcome: Option<String>,
    account_id: Option<String>,
    client_id: Option<String>,
    from: String,
    to: String,
}

/// One audit record as operators see it (national IDs masked).
#[derive(Debug, Serialize)]
struct EventRow {
    at: String,
    event: String,
    outcome: String,
    actor: Option<String>,
    account_id: Option<String>,
    client_id: Option<String>,
    address: Option<String>,
    detail: String,
}

fn bounded(s: String) -> Option<String> {
    (!s.is_empty()).then(|| s.chars().take(200).collect())
}

/// `GET /admin/audit?event=&outcome=&account_id=&client_id=&from=&to=&page=`. A GET form: it
/// changes nothing, and its address can be bookmarked or shared between operators.
pub async fn search(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    // A GET form changes nothing, so it carries no CSRF token; its fields are trimmed as a posted one's.
    let field = |p: &Params, name: &str| p.get(name).ok().flatten().unwrap_or("").trim().to_string();
    let (from_text, to_text) = (field(&p, "from"), field(&p, "to"));
    let from = taipei::parse_day(&from_text);
    let until = taipei::parse_day(&to_text).map(|d| d + 86_400);
    let bad_date = (!from_text.is_empty() && from.is_none()) || (!to_text.is_empty() && until.is_none());
    let q = Query {
        event: bounded(field(&p, "event")),
        outcome: bounded(field(&p, "outcome")),
        account_id: bounded(field(&p, "account_id")),
        client_id: bounded(field(&p, "client_id")),
        from,
        until,
    };
    let page_no = field(&p, "page").parse::<i64>().ok().filter(|n| (1..=10_000).contains(n)).unwrap_or(1);
    let query = q.clone();
    // A date that does not parse finds nothing rather than silently widening the search.
    let (rows, more) = if bad_date {
        (vec![], false)
    } else {
        state.db.run(move |c| audit::search(c, &query, (page_no - 1) * PAGE_SIZE, PAGE_SIZE)).await?
    };
    // Looking at the log is itself worth a line in it (filters are ids, never national IDs).
    let filters = format!(
        "event={} outcome={} account={} client={} from={} to={} page={page_no}",
        q.event.as_deref().unwrap_or(""),
        q.outcome.as_deref().unwrap_or(""),
        q.account_id.as_deref().unwrap_or(""),
        q.client_id.as_deref().unwrap_or(""),
        from_text.chars().take(10).collect::<String>(),
        to_text.chars().take(10).collect::<String>(),
    );
    op.audit(&state, "audit.search", "success", None, mask_national_ids(&filters)).await?;
    let events = rows
        .into_iter()
        .map(|r| EventRow {
            at: taipei::format(r.at),
            actor: r.actor.as_deref().map(mask_national_ids),
            detail: mask_national_ids(&r.detail),
            event: r.event,
            outcome: r.outcome,
            account_id: r.account_id,
            client_id: r.client_id,
            address: r.address,
        })
        .collect();
    let link = |n: i64| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("event", q.event.clone().unwrap_or_default()),
            ("outcome", q.outcome.clone().unwrap_or_default()),
            ("account_id", q.account_id.clone().unwrap_or_default()),
            ("client_id", q.client_id.clone().unwrap_or_default()),
            ("from", from_text.clone()),
            ("to", to_text.clone()),
        ] {
            if !v.is_empty() {
                s.append_pair(k, &v);
            }
        }
        s.append_pair("page", &n.to_string());
        format!("/admin/audit?{}", s.finish())
    };
    let page = AuditPage {
        prev: (page_no > 1).then(|| link(page_no - 1)),
        next: more.then(|| link(page_no + 1)),
        q: Filters {
            event: q.event,
            outcome: q.outcome,
            account_id: q.account_id,
            client_id: q.client_id,
            from: from_text,
            to: to_text,
        },
        events,
        known_events: &KNOWN_EVENTS,
        page: page_no,
        error_key: bad_date.then_some("err_audit_date"),
    };
    op.show(&state, &req, StatusCode::OK, "admin_audit", "admin_audit_title", &page)
}
