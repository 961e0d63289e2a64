//! The discovery documents: they advertise exactly what works, nothing more.
//!
//! Two views of one description: `/.well-known/openid-configuration` (OpenID Connect Discovery)
//! and `/.well-known/oauth-authorization-server` (RFC 8414), for API gateways and OAuth-only
//! libraries. The second is the first restricted to the members RFC 8414 §2 (and the later
//! OAuth RFCs that register authorization-server metadata) define, so the two can never
//! disagree: same issuer, same endpoints, same methods.

use serde_json::{json, Value};

use super::clients::{AUTH_METHODS, GRANT_TYPES, REQUEST_OBJECT_ALGS};
use super::SUPPORTED_SCOPES;

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
        "pushed_authorization_request_endpoint": format!("{base}/par"),
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
        "claims_parameter_supported": true,
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": REQUEST_OBJECT_ALGS,
        "request_uri_parameter_supported": false,
        "require_request_uri_registration": false,
        "authorization_response_iss_parameter_supported": true,
        // Per client (`require_pushed_authorization_requests` in its metadata); not for all.
        "require_pushed_authorization_requests": false,
        "dpop_signing_alg_values_supported": super::DPOP_ALGORITHMS,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
    })
}

/// The members of RFC 8414 §2, plus those later OAuth RFCs registered in the same IANA
/// "OAuth Authorization Server Metadata" registry (RFC 9207 `iss`, RFC 9126 PAR, RFC 9449 DPoP).
/// Left out are OpenID Connect's own: `userinfo_endpoint`, `end_session_endpoint`, subject
/// types, ID token algorithms, ACR values, claims, prompt values, request objects and logout.
pub const OAUTH_METADATA_MEMBERS: &[&str] = &[
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "registration_endpoint",
    "scopes_supported",
    "response_types_supported",
    "response_modes_supported",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "service_documentation",
    "ui_locales_supported",
    "op_policy_uri",
    "op_tos_uri",
    "revocation_endpoint",
    "revocation_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint",
    "introspection_endpoint_auth_methods_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
    "code_challenge_methods_supported",
    "authorization_response_iss_parameter_supported",
    "pushed_authorization_request_endpoint",
    "require_pushed_authorization_requests",
    "dpop_signing_alg_values_supported",
];

/// Builds `/.well-known/oauth-authorization-server` (RFC 8414 §3) for an issuer: the OpenID
/// configuration restricted to [`OAUTH_METADATA_MEMBERS`].
pub fn oauth_authorization_server(issuer: &str, card_sign_in: bool) -> Value {
    let Value::Object(all) = document(issuer, card_sign_in) else { unreachable!("the document is an object") };
    Value::Object(all.into_iter().filter(|(k, _)| OAUTH_METADATA_MEMBERS.contains(&k.as_str())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_metadata_is_the_openid_configuration_without_openid_connect_members() {
        let oidc = document("https://idp.example", true);
        let oauth = oauth_authorization_server("https://idp.example", true);
        let oauth = oauth.as_object().unwrap();
        for (k, v) in oauth {
            assert_eq!(&oidc[k], v, "{k} agrees");
        }
        for required in ["issuer", "authorization_endpoint", "token_endpoint", "response_types_supported"] {
            assert!(oauth.contains_key(required), "RFC 8414 §2 requires {required}");
        }
        for oidc_only in ["userinfo_endpoint", "end_session_endpoint", "subject_types_supported", "claims_supported"] {
            assert!(!oauth.contains_key(oidc_only), "{oidc_only} is OpenID Connect's");
        }
    }
}
