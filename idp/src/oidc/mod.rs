//! The OpenID Connect protocol, free of HTTP-framework types: discovery, the authorization
//! request, codes, the token exchange, userinfo claims and logout.

pub mod authorize;
pub mod claims;
pub mod clients;
pub mod discovery;
pub mod keys;
pub mod params;
pub mod token;

/// The authentication context classes this provider can assert today.
pub const ACR_PASSWORD: &str = "loa-1";
