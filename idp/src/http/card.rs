//! Card sign-in over the signed-challenge channel: the page gets a fresh challenge, the local
//! card component signs it with the card after the PIN (the PIN never reaches us), and the page
//! posts the CMS signature back. Then the certificate is validated, and a bound card signs its
//! holder in at `loa-2`; an unbound one leads to the identify step (first-login binding).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::errors::Failure;
use super::form::CheckedForm;
use super::login::{begin_activation, open_session, LoginForm, SignIn};
use super::pages::render_page;
use super::{audit_request, client_address, cookie, csrf, lang_of, removal};
use crate::accounts::binding::{self, IdentifyError, PresentedCard};
use crate::accounts::ownership::OnlineOwnership;
use crate::accounts::{self, AccountState, Person, PersonStatus};
use crate::authn::card::challenge;
use crate::authn::card::trust::CardTrust;
use crate::authn::card::validate::{CardError, CardKind};
use crate::authn::throttle::Admission;
use crate::crypto::random_token;
use crate::error::{now, InfraError};
use crate::oidc::authorize::AuthRequest;
use crate::oidc::ACR_CARD;
use crate::state::AppState;
use crate::store::ephemeral::Key;
use crate::templates::Lang;

/// A challenge lives this long (seconds); it is also single use.
const CHALLENGE_TTL: u64 = 300;
const PENDING_COOKIE: &str = "idp_card";

/// A validated but unbound card waiting for the identify step.
#[derive(Debug, Serialize, Deserialize)]
struct PendingCard {
    card: PresentedCard,
    tx: Option<String>,
}

/// `GET /card/challenge`: a fresh, single-use challenge for the card component to sign.
pub async fn new_challenge(state: web::Data<AppState>) -> Result<HttpResponse, Failure> {
    if state.card.is_none() {
        return Ok(HttpResponse::NotFound().json(json!({ "error": "card sign-in is not configured" })));
    }
    let id = random_token(16);
    let text = format!("idp-card-login:{}:{}", state.config.issuer, random_token(24));
    state.eph.put(&Key::card_challenge(&id), text.as_bytes(), std::time::Duration::from_secs(CHALLENGE_TTL)).await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({ "id": id, "challenge": text })))
}

/// The seeds' message for an error the card component reported (docs/cards-and-pki.md, "The local card component").
fn component_error_key(ret_code: &str, last_error: &str) -> &'static str {
    // The component answers JSON numbers (decimal); its documentation writes them in hex.
    let number = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse::<i64>().ok().map(|n| (n as u64) & 0xffff_ffff),
        }
    };
    match (number(ret_code), number(last_error)) {
        (Some(0x7610_0006), Some(0xa4)) => "err_card_locked",
        (Some(0x7610_0006), _) => "err_card_pin",
        (Some(0x7610_000c), _) => "err_card_no_certificate",
        (Some(0x7650_0001 | 0x7650_0002), _) => "err_card_invalid",
        _ => "err_card_component",
    }
}

pub(crate) fn card_error_key(e: &CardError) -> &'static str {
    match e {
        CardError::TestCertificate => "err_card_test",
        CardError::UnknownAgency { .. } => "err_card_unknown_agency",
        CardError::Invalid(_) => "err_card_invalid",
    }
}

/// `POST /card/login`: the signed challenge (or the component's error) from the login page.
pub async fn card_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let LoginForm { form, auth, lang } = LoginForm::read(&state, &req, &body).await?;
    let field = |n: &str| form.text(n);
    let tx = field("tx");
    let tx_opt = (!tx.is_empty()).then_some(tx.as_str());
    let Some(trust) = state.card.clone() else {
        return Err(Failure::page(StatusCode::NOT_FOUND, "err_card_disabled", None));
    };
    let address = client_address(&req);
    let refuse = |status: StatusCode, key: &'static str, outcome: &'static str, detail: Option<String>| {
        let state = state.clone();
        let address = address.clone();
        async move {
            audit_request(&state, "login.card", outcome, None, address).await;
            Failure::page(status, key, detail)
        }
    };
    // The component reports PIN errors itself; show the seeds' wording and unlock guidance.
    let ret_code = field("ret_code");
    if !ret_code.is_empty() && ret_code != "0" {
        let key = component_error_key(&ret_code, &field("last_error"));
        return Err(refuse(StatusCode::UNAUTHORIZED, key, "component_error", None).await);
    }
    let id = field("challenge_id");
    if id.is_empty() || id.len() > 64 {
        return Err(refuse(StatusCode::BAD_REQUEST, "err_card_challenge", "no_challenge", None).await);
    }
    // Taken once: a replayed signature finds no challenge.
    let Some(text) = state.eph.take(&Key::card_challenge(&id)).await? else {
        return Err(refuse(StatusCode::BAD_REQUEST, "err_card_challenge", "stale_challenge", None).await);
    };
    let Ok(cms) = STANDARD.decode(field("signature")) else {
        return Err(refuse(StatusCode::BAD_REQUEST, "err_card_signature", "malformed_signature", None).await);
    };
    let signed = match challenge::verify(&cms, &text) {
        Ok(s) => s,
        Err(e) => {
            return Err(
                refuse(StatusCode::BAD_REQUEST, "err_card_signature", "bad_signature", Some(e.to_string())).await
            )
        }
    };
    let intermediates: Vec<rustls_pki_types::CertificateDer<'_>> =
        signed.others.iter().map(|d| rustls_pki_types::CertificateDer::from(d.as_slice())).collect();
    let card = match validate_card(&state, &trust, &signed.signer, &intermediates).await? {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(reason = %e, "card refused");
            return Err(refuse(StatusCode::FORBIDDEN, card_error_key(&e), card_error_outcome(&e), None).await);
        }
    };
    let presented = PresentedCard::from_validated(&card, &signed.signer);
    if field("purpose") == "bind" {
        return bind_to_viewer(&state, &req, lang, presented).await;
    }
    continue_with_card(&state, &req, lang, presented, card.kind, auth, tx_opt).await
}

/// Validates a presented certificate chain (any channel); the agency table maps the agency OID
/// a certificate carries to an agency code. The inner error is the card's refusal.
pub(crate) async fn validate_card(
    state: &AppState,
    trust: &CardTrust,
    end_entity: &[u8],
    intermediates: &[rustls_pki_types::CertificateDer<'_>],
) -> Result<Result<crate::authn::card::validate::ValidatedCard, CardError>, Failure> {
    let agencies = state.db.run(crate::accounts::register::agency_oids).await?;
    Ok(trust
        .check(end_entity, intermediates, now(), |oid| {
            agencies.iter().find(|(_, o)| o.as_deref() == Some(oid)).map(|(code, _)| code.clone())
        })
        .await)
}

/// The audit outcome of a refused certificate.
pub(crate) fn card_error_outcome(e: &CardError) -> &'static str {
    match e {
        CardError::TestCertificate => "test_certificate",
        CardError::UnknownAgency { .. } => "unknown_agency",
        CardError::Invalid(_) => "invalid_certificate",
    }
}

/// After a card was validated (any channel): a bound card signs its holder in, an unbound one
/// goes to the identify step.
pub(crate) async fn continue_with_card(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    presented: PresentedCard,
    kind: CardKind,
    auth: Option<AuthRequest>,
    tx_opt: Option<&str>,
) -> Result<HttpResponse, Failure> {
    let p = presented.clone();
    let bound = state.db.run(move |c| binding::bound_account(c, &p, now())).await?;
    match bound {
        Some(account_id) => sign_in_bound(state, req, lang, &account_id, &presented, auth, tx_opt, kind).await,
        None => {
            // 找不到對應的憑證資訊: identify first, then bind.
            let token = random_token(32);
            let pending = PendingCard { card: presented, tx: tx_opt.map(str::to_string) };
            state.eph.put_json(&Key::card_pending(&token), &pending, state.config.login.transaction_ttl).await?;
            Ok(HttpResponse::SeeOther()
                .insert_header(("Location", format!("/card/identify?ui_locales={}", lang.tag())))
                .cookie(cookie(state, PENDING_COOKIE, token, Some(state.config.login.transaction_ttl.as_secs() as i64)))
                .finish())
        }
    }
}

/// Signs in the holder of a bound card (or sends a never-activated account to activation).
#[allow(clippy::too_many_arguments)]
async fn sign_in_bound(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    account_id: &str,
    card: &PresentedCard,
    auth: Option<AuthRequest>,
    tx: Option<&str>,
    kind: CardKind,
) -> Result<HttpResponse, Failure> {
    let (id, protector) = (account_id.to_string(), state.protector.clone());
    let found = state.db.run(move |c| accounts::account_with_person(c, &protector, &id)).await?;
    let address = client_address(req);
    let Some((account, person)) = found else {
        return Err(Failure::page(StatusCode::FORBIDDEN, "err_card_invalid", None));
    };
    if person.status == PersonStatus::Separated {
        audit_request(state, "login.card", "separated", Some(account.id.clone()), address).await;
        return Err(Failure::page(StatusCode::FORBIDDEN, "err_separated", None));
    }
    if card.is_agency() {
        // The register may have changed since the card was bound: the holder must still be HR
        // staff of the card's agency, with an activated account.
        let check = binding::agency_holder_check(card.agency_code.as_deref(), Some(account.state), &person);
        if let Err(refusal) = check {
            return Err(refuse_agency_holder(state, &account.id, card, refusal, address).await);
        }
    }
    if account.state == AccountState::Pending {
        return begin_activation(state, lang, &account.id, tx, "login.card", &address).await;
    }
    let acting = match kind {
        CardKind::Agency => card.agency_code.as_deref(),
        CardKind::Citizen => None,
    };
    let sign_in = SignIn {
        account_id: &account.id,
        acr: ACR_CARD,
        amr: &["sc", "pin"],
        acting_agency: acting,
        event: "login.card",
    };
    open_session(state, req, sign_in, auth, tx).await
}

/// Refuses an agency-card sign-in whose bound holder may no longer use the card, and releases the
/// binding so the agency's current HR staff can bind the card (with their own password). Opens
/// no session.
async fn refuse_agency_holder(
    state: &AppState,
    account_id: &str,
    card: &PresentedCard,
    refusal: binding::AgencyRefusal,
    address: String,
) -> Failure {
    let (key, outcome) = match refusal {
        binding::AgencyRefusal::NotActivated => ("err_agency_card_not_activated", "not_activated"),
        binding::AgencyRefusal::NotHrStaff => ("err_agency_card_holder_not_hr", "not_hr_staff"),
        binding::AgencyRefusal::OtherAgency => ("err_agency_card_holder_other_agency", "other_agency"),
    };
    audit_request(state, "login.card", outcome, Some(account_id.to_string()), address.clone()).await;
    let (id, c) = (account_id.to_string(), card.clone());
    match state.db.run(move |conn| binding::release(conn, &id, &c)).await {
        Ok(true) => audit_request(state, "card.unbind", outcome, Some(account_id.to_string()), address).await,
        Ok(false) => {}
        Err(e) => return Failure::from(e),
    }
    Failure::page(StatusCode::FORBIDDEN, key, None)
}

async fn pending_card(state: &AppState, req: &HttpRequest) -> Result<Option<(String, PendingCard)>, InfraError> {
    let Some(c) = req.cookie(PENDING_COOKIE) else { return Ok(None) };
    let token = c.value().to_string();
    if token.len() > 64 {
        return Ok(None);
    }
    Ok(state.eph.get_json::<PendingCard>(&Key::card_pending(&token)).await?.map(|p| (token, p)))
}

/// The data of `card_identify.hbs`: first sign-in with a card, who the person is.
#[derive(Debug, Serialize)]
struct IdentifyPage<'a> {
    csrf: &'a str,
    identifier: &'a str,
    agency: bool,
    error_key: Option<&'a str>,
}

fn identify_form(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    status: StatusCode,
    agency: bool,
    identifier: &str,
    error_key: Option<&str>,
) -> Result<HttpResponse, Failure> {
    let (csrf, csrf_cookie) = csrf::token(state, req);
    let page = IdentifyPage { csrf: &csrf, identifier, agency, error_key };
    render_page(state, lang, status, "card_identify", "card_identify_title", &page, csrf_cookie.into_iter().collect())
}

/// `GET /card/identify`: 找不到對應的憑證資訊 — type your custom account or national ID.
pub async fn identify_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    match pending_card(&state, &req).await? {
        Some((_, p)) => identify_form(&state, &req, lang, StatusCode::OK, p.card.is_agency(), "", None),
        None => Err(Failure::page(StatusCode::BAD_REQUEST, "err_tx", None)),
    }
}

/// `POST /card/identify`: checks the register in the seeds' order and binds the card.
pub async fn identify_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let form = CheckedForm::read(&req, &body)?;
    let Some((token, pending)) = pending_card(&state, &req).await? else {
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_tx", None));
    };
    let identifier = form.text("identifier");
    let agency = pending.card.is_agency();
    // Agency cards name no person: the account's own password proves who is binding.
    let password = agency.then(|| form.secret("password"));
    let address = client_address(&req);
    let refuse = |status: StatusCode, key: &'static str, outcome: &'static str, account: Option<String>| {
        let (state, address) = (state.clone(), address.clone());
        let identifier = identifier.clone();
        let req = req.clone();
        async move {
            audit_request(&state, "card.bind", outcome, account, address).await;
            identify_form(&state, &req, lang, status, agency, &identifier, Some(key))
        }
    };
    if identifier.is_empty() || identifier.chars().count() > 64 {
        return identify_form(
            &state,
            &req,
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            agency,
            &identifier,
            Some("err_identify_not_in_register"),
        );
    }
    let mut attempt = None;
    if let Some(password) = &password {
        if password.is_empty() || password.chars().count() > 128 {
            let (key, outcome) = identify_refusal(&IdentifyError::PasswordRequired);
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, key, outcome, None).await;
        }
        // The same throttle as password sign-in, counted before the password is compared and
        // under the person (so national ID and custom account share one count), by address too.
        let (protector, typed) = (state.protector.clone(), identifier.clone());
        let stored = state.db.run(move |c| crate::authn::password::load(c, &protector, &typed)).await?;
        let key = match stored.person() {
            Some(person) => state.throttle.key_for_person(&person.national_id),
            None => state.throttle.key_for_identifier(&identifier),
        };
        match state.throttle.begin(&state.eph, &key, &address).await {
            Ok(Admission::Allowed(a)) => attempt = Some(a),
            Ok(Admission::Refused { .. }) => {
                return refuse(StatusCode::TOO_MANY_REQUESTS, "err_throttled", "throttled", None).await;
            }
            Err(e) => return Err(Failure::from(e)),
        }
    }
    let (card, protector, ident, pw) = (pending.card.clone(), state.protector.clone(), identifier.clone(), password);
    let lookup = protector.clone();
    let entry = state.db.run(move |c| accounts::find_by_identifier(c, &lookup, &ident)).await;
    let found = match entry {
        Ok(entry) => tokio::task::spawn_blocking(move || binding::identify(entry, &protector, &card, pw.as_deref()))
            .await
            .unwrap_or_else(|e| Err(IdentifyError::Infra(InfraError::Internal(format!("identify: {e}"))))),
        Err(e) => Err(IdentifyError::Infra(e)),
    };
    let identified = match found {
        Ok(p) => p,
        Err(IdentifyError::Infra(e)) => {
            if let Some(a) = attempt.take() {
                let _ = a.abandoned(&state.eph).await;
            }
            return Err(Failure::from(e));
        }
        Err(e) => {
            // The attempt stays counted.
            if let Some(a) = attempt.take() {
                a.failed();
            }
            let (key, outcome) = identify_refusal(&e);
            return refuse(refusal_status(&e), key, outcome, refusal_account(&e)).await;
        }
    };
    let person = identified.person.clone();
    // Outside any database work: the service may be slow. The pending card stays either way, so
    // the person can try again.
    match check_online(&state, &pending.card, &person).await {
        OnlineCheck::Confirmed => {}
        OnlineCheck::NotOwner => {
            return refuse(StatusCode::FORBIDDEN, "err_identify_not_owner", "not_owner_online", None).await;
        }
        OnlineCheck::Unavailable => {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            return refuse(status, "err_ownership_unavailable", "ownership_unavailable", None).await;
        }
    }
    let (card, protector) = (pending.card.clone(), state.protector.clone());
    let result = state
        .db
        .run(move |c| -> Result<_, InfraError> {
            Ok(binding::bind_identified(c, &protector, &card, &identified, now()))
        })
        .await?;
    let (account, _) = match result {
        Ok(found) => found,
        Err(IdentifyError::Infra(e)) => return Err(Failure::from(e)),
        Err(e) => {
            let (key, outcome) = identify_refusal(&e);
            return refuse(refusal_status(&e), key, outcome, refusal_account(&e)).await;
        }
    };
    if let Some(a) = attempt.take() {
        let _ = a.succeeded(&state.throttle, &state.eph).await;
    }
    let _ = state.eph.delete(&Key::card_pending(&token)).await;
    audit_request(&state, "card.bind", "success", Some(account.id.clone()), address.clone()).await;
    let auth = crate::oidc::transaction::load(&state, pending.tx.as_deref()).await.ok().flatten();
    let kind = if agency { CardKind::Agency } else { CardKind::Citizen };
    let mut resp =
        sign_in_bound(&state, &req, lang, &account.id, &pending.card, auth, pending.tx.as_deref(), kind).await?;
    resp.add_cookie(&removal(&state, PENDING_COOKIE))?;
    Ok(resp)
}

/// The seeds' message and the audit outcome for a refused identify step.
fn identify_refusal(e: &IdentifyError) -> (&'static str, &'static str) {
    match e {
        IdentifyError::NotInRegister => ("err_identify_not_in_register", "not_in_register"),
        IdentifyError::Separated => ("err_separated", "separated"),
        IdentifyError::NotOwner => ("err_identify_not_owner", "not_owner"),
        IdentifyError::NotHrStaff => ("err_identify_not_hr", "not_hr_staff"),
        IdentifyError::OtherAgency => ("err_identify_other_agency", "other_agency"),
        IdentifyError::PasswordRequired => ("err_identify_password_required", "password_required"),
        IdentifyError::NotActivated => ("err_agency_card_not_activated", "not_activated"),
        IdentifyError::BadPassword { .. } => ("err_credentials", "bad_password"),
        IdentifyError::BoundElsewhere | IdentifyError::Infra(_) => ("err_card_bound_elsewhere", "bound_elsewhere"),
    }
}

/// The status of a refused identify step: a wrong password is 401, a missing one 422.
fn refusal_status(e: &IdentifyError) -> StatusCode {
    match e {
        IdentifyError::BadPassword { .. } => StatusCode::UNAUTHORIZED,
        IdentifyError::PasswordRequired => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::FORBIDDEN,
    }
}

/// The account a refused attempt was against, where the refusal names one (its audit trail).
fn refusal_account(e: &IdentifyError) -> Option<String> {
    match e {
        IdentifyError::BadPassword { account_id } => Some(account_id.clone()),
        _ => None,
    }
}

/// What the certificate authority's online ownership service said.
enum OnlineCheck {
    /// The owner, or the service is off or does not apply to this card.
    Confirmed,
    NotOwner,
    /// No usable answer: bind nothing and let the person retry later.
    Unavailable,
}

/// Asks the CA's online ownership service (when configured, for citizen certificates) whether the
/// card belongs to `person`. Runs after the local checks passed and before anything is bound.
async fn check_online(state: &AppState, card: &PresentedCard, person: &Person) -> OnlineCheck {
    let Some(service) = state.ownership.as_deref() else { return OnlineCheck::Confirmed };
    if !OnlineOwnership::applies_to(card) {
        return OnlineCheck::Confirmed;
    }
    let Some(certificate) = card.certificate.as_deref() else {
        // A card pending from before an upgrade carries no certificate; binding it unchecked
        // would defeat the switch.
        tracing::warn!("ownership check impossible: the certificate was not kept with the card");
        return OnlineCheck::Unavailable;
    };
    match service.is_owner(&state.http, certificate, &person.national_id).await {
        Ok(true) => OnlineCheck::Confirmed,
        Ok(false) => OnlineCheck::NotOwner,
        Err(e) => {
            tracing::warn!(reason = %e, "ownership service unavailable");
            OnlineCheck::Unavailable
        }
    }
}

/// 方法二: a signed-in person binds a card from 我的專區, with the same ownership checks as the
/// identify step (against their own register entry).
async fn bind_to_viewer(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    card: PresentedCard,
) -> Result<HttpResponse, Failure> {
    let viewer = super::viewer::require_signed_in(state, req).await?;
    let address = client_address(req);
    let agency_check = card
        .is_agency()
        .then(|| binding::agency_holder_check(card.agency_code.as_deref(), Some(viewer.account.state), &viewer.person));
    let refusal = if let Some(Err(r)) = agency_check {
        let (key, outcome) = identify_refusal(&r.into());
        Some((StatusCode::FORBIDDEN, key, outcome))
    } else if !binding::card_matches(&state.protector, &card, &viewer.person) {
        Some((StatusCode::FORBIDDEN, "err_identify_not_owner", "not_owner"))
    } else {
        match check_online(state, &card, &viewer.person).await {
            OnlineCheck::Confirmed => None,
            OnlineCheck::NotOwner => Some((StatusCode::FORBIDDEN, "err_identify_not_owner", "not_owner_online")),
            OnlineCheck::Unavailable => {
                Some((StatusCode::SERVICE_UNAVAILABLE, "err_ownership_unavailable", "ownership_unavailable"))
            }
        }
    };
    if let Some((status, key, outcome)) = refusal {
        audit_request(state, "card.bind", outcome, Some(viewer.account.id.clone()), address).await;
        return Err(Failure::page(status, key, None));
    }
    let id = viewer.account.id.clone();
    let result = state.db.run(move |c| -> Result<_, InfraError> { Ok(binding::bind(c, &id, &card, now())) }).await?;
    match result {
        Ok(()) => {
            audit_request(state, "card.bind", "success", Some(viewer.account.id.clone()), address).await;
            Ok(super::viewer::see_other(&format!("/me?ui_locales={}", lang.tag())))
        }
        Err(IdentifyError::Infra(e)) => Err(Failure::from(e)),
        Err(_) => {
            audit_request(state, "card.bind", "bound_elsewhere", Some(viewer.account.id.clone()), address).await;
            Err(Failure::page(StatusCode::CONFLICT, "err_card_bound_elsewhere", None))
        }
    }
}

/// `POST /me/cards/unbind`: removes one of the signed-in person's bound cards.
pub async fn unbind(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = super::viewer::require_signed_in(&state, &req).await?;
    let form = CheckedForm::read(&req, &body)?;
    let binding_id = form.text("binding");
    let id = viewer.account.id.clone();
    let removed = state.db.run(move |c| binding::unbind(c, &id, &binding_id)).await?;
    let outcome = if removed { "success" } else { "not_found" };
    audit_request(&state, "card.unbind", outcome, Some(viewer.account.id.clone()), client_address(&req)).await;
    Ok(super::viewer::see_other(&format!("/me?ui_locales={}", lang.tag())))
}

/// `POST /card/health`: a health-card token from NHI's local component. NHI's verification
/// service says whose card it is; a bound card signs its holder in, an unbound one goes to the
/// identify step (checked against the full national ID the service returned).
pub async fn health_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let LoginForm { form, auth, lang } = LoginForm::read(&state, &req, &body).await?;
    let field = |n: &str| form.text(n);
    let tx = field("tx");
    let tx_opt = (!tx.is_empty()).then_some(tx.as_str());
    if !state.config.certificates.health_enabled() {
        return Err(Failure::page(StatusCode::NOT_FOUND, "err_card_disabled", None));
    }
    let address = client_address(&req);
    let identity = crate::authn::card::health::verify(
        &state.http,
        &state.config.certificates.health_verifier_url,
        &form.secret("card_token"),
    )
    .await;
    let identity = match identity {
        Ok(i) => i,
        Err(e) => {
            tracing::info!(reason = %e, "health card refused");
            let (status, key, outcome) = match e {
                crate::authn::card::health::HealthError::Refused => {
                    (StatusCode::FORBIDDEN, "err_health_refused", "refused")
                }
                _ => (StatusCode::BAD_GATEWAY, "err_health_unavailable", "verifier_unavailable"),
            };
            audit_request(&state, "login.health_card", outcome, None, address).await;
            return Err(Failure::page(status, key, None));
        }
    };
    let presented = PresentedCard::health(&identity.card_number, state.protector.index(identity.national_id.expose()));
    let p = presented.clone();
    let bound = state.db.run(move |c| binding::bound_account(c, &p, now())).await?;
    match bound {
        Some(account_id) => {
            sign_in_bound(&state, &req, lang, &account_id, &presented, auth, tx_opt, CardKind::Citizen).await
        }
        None => {
            let token = random_token(32);
            let pending = PendingCard { card: presented, tx: tx_opt.map(str::to_string) };
            state.eph.put_json(&Key::card_pending(&token), &pending, state.config.login.transaction_ttl).await?;
            Ok(HttpResponse::SeeOther()
                .insert_header(("Location", format!("/card/identify?ui_locales={}", lang.tag())))
                .cookie(cookie(
                    &state,
                    PENDING_COOKIE,
                    token,
                    Some(state.config.login.transaction_ttl.as_secs() as i64),
                ))
                .finish())
        }
    }
}
