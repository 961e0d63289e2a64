//! The OpenID Connect protocol, free of HTTP-framework types: discovery, the authorization
//! request, codes, the token exchange, userinfo claims and logout.

pub mod access;
pub mod authorize;
pub mod backchannel;
pub mod claims;
pub mod claims_request;
pub mod client_auth;
pub mod client_cache;
pub mod clients;
pub mod consent;
pub mod discovery;
pub mod dpop;
pub mod gate;
pub mod introspection;
pub mod keys;
pub mod logout;
pub mod par;
pub mod params;
pub mod person_tokens;
pub mod refresh;
pub mod registration;
pub mod request_object;
pub mod resource;
pub mod subject;
pub mod token;
pub mod token_error;
pub mod token_use;
pub mod transaction;
pub mod userinfo;

/// Scopes this provider understands; others are ignored, as RFC 6749 §3.3 allows.
pub const SUPPORTED_SCOPES: [&str; 7] =
    ["openid", "profile", "email", "agency", "roles", "national_id", "offline_access"];

/// The DPoP proof algorithms verified (RFC 9449, `dpop_signing_alg_values_supported`).
pub const DPOP_ALGORITHMS: [&str; 5] = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// Assurance of a password or one-time-password sign-in.
pub const ACR_PASSWORD: &str = "loa-1";
/// Assurance of a smart-card sign-in (card and PIN).
pub const ACR_CARD: &str = "loa-2";
/// Every assurance level, weakest first.
pub const ACR_VALUES: [&str; 2] = [ACR_PASSWORD, ACR_CARD];

/// Whether `have` is at least as strong as `want`.
pub fn acr_satisfies(have: &str, want: &str) -> bool {
    let rank = |a: &str| ACR_VALUES.iter().position(|x| *x == a);
    matches!((rank(have), rank(want)), (Some(h), Some(w)) if h >= w)
}
