//! The discovery document: it advertises exactly what works, nothing more.

use serde_json::{json, Value};

use super::authorize::SUPPORTED_SCOPES;
use super::clients::{AUTH_METHODS, GRANT_TYPES};

/// Builds `/.well-known/openid-configuration` for an issuer.
///
/// `loa-2` is listed only when card sign-in is configured, since only a card reaches it.
pub fn document(issuer: &str, card_sign_in: bool) -> Value {
    let acr: &[&str] = if card_sign_in { &super::ACR_VALUES } else { &[super::ACR_PASSWORD] };
    let base = issuer.trim_end_matches('/');
    let signing = ["ES256", "RS256"];
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "end_session_endpoint": format!("{base}/logout"),
        "introspection_endpoint": format!("{base}/introspect"),
        "revocation_endpoint": format!("{base}/revoke"),
        "registration_endpoint": format!("{base}/register"),
        "scopes_supported": SUPPORTED_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": GRANT_TYPES,
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": signing,
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": acr,
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp", "at_hash",
            "name", "preferred_username", "email", "email_verified", "agency_code", "agency_name", "unit", "roles",
            "national_id"
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": ["zh-TW", "en"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_request_uri_registration": false,
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
    })
}
