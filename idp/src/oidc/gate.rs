//! The one authorization decision. Every path that can end in an authorization code — the
//! authorization endpoint (GET and POST), the end of every sign-in (password, one-time password,
//! each card channel, the health card, step-up) and the consent page — asks [`decide`] what to do
//! next, with the same inputs, and only renders the answer. A new sign-in channel adds nothing here.
//!
//! The decision is a pure function of plain values (no storage, no clock, no HTTP), so the table
//! of rules is tested row by row. Its order follows OpenID Connect Core §3.1.2: the client and the
//! redirect URI first (nothing is redirected until both are trusted), then authentication
//! (`prompt`, `max_age`, `id_token_hint`), then who may use the client (audience), the assurance the
//! client requires, consent, and only then a code.

use super::acr_satisfies;
use super::authorize::AuthRequest;
use super::claims_request;
use super::clients::Client;
use crate::accounts::Person;
use crate::authn::session::Session;

/// The `id_token_hint` of the request, as the caller found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// No hint was sent.
    Absent,
    /// A hint was sent but is not an ID token this provider issued to this client.
    Invalid,
    /// The hint names this subject (as the client knows the person).
    Names(String),
}

/// Everything the decision depends on.
pub struct Inputs<'a> {
    /// The client, as configured now (not as it was when the request started).
    pub client: &'a Client,
    pub request: &'a AuthRequest,
    /// Whether the request names no `resource`, or one an enabled resource server is registered
    /// under (RFC 8707).
    pub resource_served: bool,
    /// The browser's live SSO session, if any, whose account and register entry are active.
    pub session: Option<&'a Session>,
    /// The register entry of the session's person.
    pub person: Option<&'a Person>,
    /// The subject the client knows the session's person by (pairwise or public).
    pub subject: Option<&'a str>,
    pub hint: &'a Hint,
    /// Whether the person has approved at least the requested scopes for this client before.
    pub consent_on_record: bool,
    /// Whether a card sign-in is possible here (so a step-up can be offered).
    pub card_sign_in: bool,
    pub now: i64,
}

/// What happens to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every rule is met: issue a code to the client.
    IssueCode,
    /// The person must sign in (again) first.
    SignIn,
    /// The person is signed in, but the client needs a card: sign in again with one.
    StepUp,
    /// Ask the person to approve the client.
    AskConsent,
    /// Send an error back to the client's redirect URI (trusted by now).
    Redirect { error: &'static str, description: &'static str },
    /// Show an error page; nothing may be sent to the redirect URI.
    Show { key: &'static str },
}

impl Outcome {
    fn redirect(error: &'static str, description: &'static str) -> Self {
        Self::Redirect { error, description }
    }
}

/// Decides what happens to an authorization request, from the rules in the module comment.
pub fn decide(i: &Inputs<'_>) -> Outcome {
    let (client, request) = (i.client, i.request);
    if client.disabled {
        return Outcome::Show { key: "err_client_unknown" };
    }
    if !client.has_redirect_uri(&request.redirect_uri) {
        return Outcome::Show { key: "err_redirect_uri" };
    }
    // RFC 9126 §6: such a client's requests count only if they were pushed (and its tokens so
    // cannot be asked for by a URL someone else put together).
    if client.require_pushed_authorization_requests && !request.pushed {
        return Outcome::redirect("invalid_request", "this application must push its authorization requests (PAR)");
    }
    if !i.resource_served {
        return Outcome::redirect("invalid_target", "the resource is not an API registered here");
    }
    if *i.hint == Hint::Invalid {
        return Outcome::redirect("invalid_request", "id_token_hint is not a valid ID token for this client");
    }
    let prompt = |p: &str| request.prompt.iter().any(|x| x == p);
    let interactive = !prompt("none");

    // Authentication: a live session that is fresh enough, of the person the hint names, and
    // opened for this request when the client asked for a new sign-in.
    let (session, person) = match (i.session, i.person) {
        (Some(s), Some(p)) => (s, p),
        _ if interactive => return Outcome::SignIn,
        _ => return Outcome::redirect("login_required", "the person is not signed in"),
    };
    let fresh_for_request = request.interaction.signed_in.as_deref() == Some(session.sid.as_str());
    let stale = request.max_age.is_some_and(|m| i.now - session.auth_time > m);
    let other_person = matches!(i.hint, Hint::Names(h) if Some(h.as_str()) != i.subject);
    let must_sign_in = (prompt("login") && !fresh_for_request) || stale || other_person;
    if must_sign_in {
        if fresh_for_request && other_person {
            // Signed in just now, as someone else than the client named: asking again would loop.
            return Outcome::redirect("login_required", "the signed-in person is not the one id_token_hint names");
        }
        if interactive && !fresh_for_request {
            return Outcome::SignIn;
        }
        return Outcome::redirect("login_required", "the person must sign in again");
    }

    // Who may use the client, as the register says today.
    if !client.audience.admits(person) {
        return Outcome::redirect("access_denied", "this application is not available to this person");
    }

    // The assurance the client requires: a card, or nothing.
    if let Some(min) = &client.min_acr {
        if !acr_satisfies(&session.acr, min) {
            if interactive && i.card_sign_in {
                return Outcome::StepUp;
            }
            return Outcome::redirect("unmet_authentication_requirements", "this application requires a card sign-in");
        }
    }
    // The assurance the request asks for as essential (`claims` parameter, OIDC Core §5.5.1.1).
    if let Some(wanted) = request.claims.as_ref().and_then(|c| c.essential_acr()) {
        if !claims_request::acr_met(&session.acr, &wanted) {
            if interactive && i.card_sign_in && claims_request::acr_reachable(&wanted) {
                return Outcome::StepUp;
            }
            return Outcome::redirect(
                "unmet_authentication_requirements",
                "the sign-in cannot meet the essential acr the request asks for",
            );
        }
    }

    // Consent: on record for these scopes (and not asked for again), or just given in this session.
    if client.consent_required {
        let given_now = request.interaction.consent_given.as_deref() == Some(session.sid.as_str());
        let needed = prompt("consent") || !i.consent_on_record;
        if needed && !given_now {
            if !interactive {
                return Outcome::redirect("consent_required", "the person has not approved this application");
            }
            return Outcome::AskConsent;
        }
    }
    Outcome::IssueCode
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::PersonStatus;
    use crate::oidc::authorize::Interaction;
    use crate::oidc::clients::Audience;

    fn client() -> Client {
        let mut c = Client::default();
        c.client_id = "app".into();
        c.redirect_uris = vec!["https://app.example/cb".into()];
        c
    }

    fn request() -> AuthRequest {
        AuthRequest {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: vec!["openid".into()],
            state: None,
            nonce: None,
            code_challenge: None,
            prompt: vec![],
            max_age: None,
            login_hint: None,
            ui_locales: None,
            response_mode: "query".into(),
            acr_values: vec![],
            id_token_hint: None,
            claims: None,
            interaction: Interaction::default(),
            dpop_jkt: None,
            pushed: false,
            resource: None,
        }
    }

    fn session(acr: &str) -> Session {
        Session {
            sid: "sid-1".into(),
            account_id: "acc-1".into(),
            auth_time: 1_000,
            acr: acr.into(),
            amr: vec![],
            expires_at: 100_000,
            acting_agency: None,
        }
    }

    fn person(unit: &str, category: &str) -> Person {
        Person {
            id: "p-1".into(),
            national_id: crate::national_id::NationalId::parse("A123456789").expect("valid"),
            name: "王小明".into(),
            agency_code: "A21000000I".into(),
            unit: unit.into(),
            person_category: category.into(),
            concurrent_duty: String::new(),
            status: PersonStatus::Active,
            email: "ming@example.gov.tw".into(),
        }
    }

    /// One row of the table: how the inputs differ from a signed-in employee asking a plain client.
    struct Row {
        rule: &'static str,
        client: fn(&mut Client),
        request: fn(&mut AuthRequest),
        signed_in: bool,
        acr: &'static str,
        hr_staff: bool,
        hint: Hint,
        consent_on_record: bool,
        card_sign_in: bool,
        resource_served: bool,
        now: i64,
        want: Outcome,
    }

    fn row(rule: &'static str, want: Outcome) -> Row {
        Row {
            rule,
            client: |_| {},
            request: |_| {},
            signed_in: true,
            acr: "loa-1",
            hr_staff: false,
            hint: Hint::Absent,
            consent_on_record: false,
            card_sign_in: true,
            resource_served: true,
            now: 2_000,
            want,
        }
    }

    fn redirect(error: &'static str) -> Outcome {
        Outcome::Redirect { error, description: "" }
    }

    fn run(r: &Row) -> Outcome {
        let mut c = client();
        (r.client)(&mut c);
        let mut q = request();
        (r.request)(&mut q);
        let s = session(r.acr);
        let p = if r.hr_staff { person("人事室", "08") } else { person("資訊處", "01") };
        let inputs = Inputs {
            client: &c,
            request: &q,
            resource_served: r.resource_served,
            session: r.signed_in.then_some(&s),
            person: r.signed_in.then_some(&p),
            subject: r.signed_in.then_some("sub-of-ming"),
            hint: &r.hint,
            consent_on_record: r.consent_on_record,
            card_sign_in: r.card_sign_in,
            now: r.now,
        };
        match decide(&inputs) {
            // Descriptions are prose; the table compares the error codes.
            Outcome::Redirect { error, .. } => redirect(error),
            other => other,
        }
    }

    #[test]
    fn every_rule_of_the_gate() {
        let rows = vec![
            row("a signed-in employee gets a code for a plain client", Outcome::IssueCode),
            Row {
                client: |c| c.disabled = true,
                ..row("a disabled client is shown as unknown", Outcome::Show { key: "err_client_unknown" })
            },
            Row {
                client: |c| c.redirect_uris = vec!["https://other.example/cb".into()],
                ..row("a redirect URI no longer registered is never used", Outcome::Show { key: "err_redirect_uri" })
            },
            Row { hint: Hint::Invalid, ..row("a forged id_token_hint is refused", redirect("invalid_request")) },
            Row {
                resource_served: false,
                ..row("a resource no registered API answers to gets no code", redirect("invalid_target"))
            },
            Row {
                resource_served: false,
                signed_in: false,
                ..row("nor a sign-in page first", redirect("invalid_target"))
            },
            Row {
                client: |c| c.require_pushed_authorization_requests = true,
                ..row(
                    "a client that requires PAR gets nothing for a request that was not pushed",
                    redirect("invalid_request"),
                )
            },
            Row {
                client: |c| c.require_pushed_authorization_requests = true,
                signed_in: false,
                ..row("not even a sign-in page for an unpushed request of such a client", redirect("invalid_request"))
            },
            Row {
                client: |c| c.require_pushed_authorization_requests = true,
                request: |q| q.pushed = true,
                ..row("a client that requires PAR gets a code for a pushed request", Outcome::IssueCode)
            },
            Row { signed_in: false, ..row("nobody signed in: sign in", Outcome::SignIn) },
            Row {
                signed_in: false,
                request: |q| q.prompt = vec!["none".into()],
                ..row("nobody signed in, prompt=none: login_required", redirect("login_required"))
            },
            Row {
                request: |q| q.prompt = vec!["login".into()],
                ..row("prompt=login with an older session: sign in again", Outcome::SignIn)
            },
            Row {
                request: |q| {
                    q.prompt = vec!["login".into()];
                    q.interaction.signed_in = Some("sid-1".into());
                },
                ..row("prompt=login satisfied by the sign-in made for this request", Outcome::IssueCode)
            },
            Row {
                request: |q| {
                    q.prompt = vec!["login".into()];
                    q.interaction.signed_in = Some("sid-other".into());
                },
                ..row("prompt=login: a sign-in for this request in another session does not count", Outcome::SignIn)
            },
            Row { request: |q| q.max_age = Some(500), ..row("max_age exceeded: sign in again", Outcome::SignIn) },
            Row { request: |q| q.max_age = Some(1_000), ..row("max_age met to the second", Outcome::IssueCode) },
            Row { request: |q| q.max_age = Some(999), ..row("max_age exceeded by one second", Outcome::SignIn) },
            Row {
                request: |q| q.max_age = Some(0),
                now: 1_000,
                ..row("max_age=0 is met in the second of the sign-in", Outcome::IssueCode)
            },
            Row {
                request: |q| q.max_age = Some(0),
                now: 1_001,
                ..row("max_age=0 is exceeded the second after", Outcome::SignIn)
            },
            Row {
                request: |q| {
                    q.max_age = Some(500);
                    q.prompt = vec!["none".into()];
                },
                ..row("max_age exceeded, prompt=none: login_required", redirect("login_required"))
            },
            Row {
                hint: Hint::Names("sub-of-someone-else".into()),
                ..row("a hint naming someone else: sign in", Outcome::SignIn)
            },
            Row { hint: Hint::Names("sub-of-ming".into()), ..row("a hint naming the person", Outcome::IssueCode) },
            Row {
                hint: Hint::Names("sub-of-someone-else".into()),
                request: |q| q.interaction.signed_in = Some("sid-1".into()),
                ..row("signed in just now as someone other than the hint: no loop", redirect("login_required"))
            },
            Row {
                client: |c| c.audience = Audience::HrStaff,
                ..row("outside the audience: access_denied", redirect("access_denied"))
            },
            Row {
                client: |c| c.audience = Audience::HrStaff,
                hr_staff: true,
                ..row("HR staff inside an HR-only audience", Outcome::IssueCode)
            },
            Row {
                client: |c| c.audience = Audience::Agencies(vec!["A00000000A".into()]),
                ..row("another agency's client: access_denied", redirect("access_denied"))
            },
            Row {
                client: |c| c.audience = Audience::Agencies(vec!["A21000000I".into()]),
                ..row("own agency's client", Outcome::IssueCode)
            },
            Row {
                client: |c| {
                    c.audience = Audience::HrStaff;
                    c.min_acr = Some("loa-2".into());
                },
                ..row("audience is decided before assurance: no step-up for outsiders", redirect("access_denied"))
            },
            Row {
                client: |c| c.min_acr = Some("loa-2".into()),
                ..row("password session, card required: step up", Outcome::StepUp)
            },
            Row {
                client: |c| c.min_acr = Some("loa-2".into()),
                card_sign_in: false,
                ..row("card required but no card sign-in here", redirect("unmet_authentication_requirements"))
            },
            Row {
                client: |c| c.min_acr = Some("loa-2".into()),
                request: |q| q.prompt = vec!["none".into()],
                ..row("card required, prompt=none", redirect("unmet_authentication_requirements"))
            },
            Row {
                client: |c| c.min_acr = Some("loa-2".into()),
                acr: "loa-2",
                ..row("card session meets the card requirement", Outcome::IssueCode)
            },
            Row {
                client: |c| c.min_acr = Some("loa-2".into()),
                acr: "made-up",
                ..row("an unknown acr meets nothing", Outcome::StepUp)
            },
            Row {
                client: |c| c.consent_required = true,
                ..row("consent required, none on record: ask", Outcome::AskConsent)
            },
            Row {
                client: |c| c.consent_required = true,
                consent_on_record: true,
                ..row("consent on record", Outcome::IssueCode)
            },
            Row {
                client: |c| c.consent_required = true,
                request: |q| q.prompt = vec!["none".into()],
                ..row("consent missing, prompt=none: consent_required", redirect("consent_required"))
            },
            Row {
                client: |c| c.consent_required = true,
                consent_on_record: true,
                request: |q| q.prompt = vec!["consent".into()],
                ..row("prompt=consent asks even with consent on record", Outcome::AskConsent)
            },
            Row {
                client: |c| c.consent_required = true,
                request: |q| {
                    q.prompt = vec!["consent".into()];
                    q.interaction.consent_given = Some("sid-1".into());
                },
                ..row("consent just given in this session", Outcome::IssueCode)
            },
            Row {
                client: |c| c.consent_required = true,
                request: |q| q.interaction.consent_given = Some("sid-other".into()),
                ..row("consent given in another session does not count", Outcome::AskConsent)
            },
            Row {
                client: |c| {
                    c.consent_required = true;
                    c.audience = Audience::HrStaff;
                },
                request: |q| q.interaction.consent_given = Some("sid-1".into()),
                ..row("consent never overrides the audience", redirect("access_denied"))
            },
            Row {
                client: |c| {
                    c.consent_required = true;
                    c.min_acr = Some("loa-2".into());
                },
                request: |q| q.interaction.consent_given = Some("sid-1".into()),
                ..row("consent never overrides the card requirement", Outcome::StepUp)
            },
            Row {
                client: |c| c.consent_required = true,
                consent_on_record: true,
                request: |q| q.max_age = Some(10),
                ..row("consent on record never overrides max_age", Outcome::SignIn)
            },
            Row {
                request: |q| {
                    q.claims =
                        claims_request::parse(r#"{"id_token":{"acr":{"essential":true,"values":["loa-2"]}}}"#).ok()
                },
                ..row("an essential loa-2 with a password session: step up", Outcome::StepUp)
            },
            Row {
                request: |q| {
                    q.claims =
                        claims_request::parse(r#"{"id_token":{"acr":{"essential":true,"values":["loa-2"]}}}"#).ok()
                },
                card_sign_in: false,
                ..row("an essential loa-2 with no card sign-in here", redirect("unmet_authentication_requirements"))
            },
            Row {
                request: |q| {
                    q.claims = claims_request::parse(r#"{"id_token":{"acr":{"essential":true,"value":"loa-2"}}}"#).ok();
                    q.prompt = vec!["none".into()];
                },
                ..row("an essential loa-2, prompt=none", redirect("unmet_authentication_requirements"))
            },
            Row {
                request: |q| {
                    q.claims =
                        claims_request::parse(r#"{"id_token":{"acr":{"essential":true,"values":["urn:gold"]}}}"#).ok()
                },
                ..row("an essential acr nobody can reach: no step-up", redirect("unmet_authentication_requirements"))
            },
            Row {
                request: |q| {
                    q.claims =
                        claims_request::parse(r#"{"id_token":{"acr":{"essential":true,"values":["loa-2"]}}}"#).ok()
                },
                acr: "loa-2",
                ..row("a card session meets an essential loa-2", Outcome::IssueCode)
            },
            Row {
                request: |q| q.claims = claims_request::parse(r#"{"id_token":{"acr":{"values":["loa-2"]}}}"#).ok(),
                ..row("a voluntary acr changes nothing", Outcome::IssueCode)
            },
            Row {
                client: |c| c.audience = Audience::HrStaff,
                request: |q| {
                    q.claims =
                        claims_request::parse(r#"{"id_token":{"acr":{"essential":true,"values":["loa-2"]}}}"#).ok()
                },
                ..row("an essential acr never comes before the audience", redirect("access_denied"))
            },
        ];
        let mut failures = Vec::new();
        for r in &rows {
            let got = run(r);
            if got != r.want {
                failures.push(format!("{}: wanted {:?}, got {got:?}", r.rule, r.want));
            }
        }
        assert!(failures.is_empty(), "rules broken:\n{}", failures.join("\n"));
    }
}
