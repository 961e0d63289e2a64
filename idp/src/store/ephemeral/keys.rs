//! Every name under which something is kept in the ephemeral store, built here and nowhere
//! else. A [`Key`] can only come from one of these constructors, so two features can never
//! pick the same prefix by accident, and a secret (a code, a hand-off token) is always stored
//! under its hash, never as itself.

use crate::crypto::sha256_b64;

/// A name in the ephemeral store (before the deployment's `cache.prefix`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    /// An authorization code, by its hash: a leaked store dump redeems nothing.
    pub fn code(code: &str) -> Self {
        Self(format!("code:{}", sha256_b64(code.as_bytes())))
    }

    /// A login transaction (the authorization request waiting for a sign-in).
    pub fn login_transaction(tx: &str) -> Self {
        Self(format!("tx:{tx}"))
    }

    /// An activation step (the register entry checked, the password not yet chosen).
    pub fn activation(token: &str) -> Self {
        Self(format!("act:{token}"))
    }

    /// A revoked access token's id, listed until the token would have expired.
    pub fn revoked_access_token(jti: &str) -> Self {
        Self(format!("revoked:{jti}"))
    }

    /// A client assertion's `jti`, per client: an assertion is used once.
    pub fn client_assertion(client_id: &str, jti: &str) -> Self {
        Self(format!("jti:{client_id}:{}", sha256_b64(jti.as_bytes())))
    }

    /// A signed request object's `jti`, per client: a request object is used once.
    pub fn request_object(client_id: &str, jti: &str) -> Self {
        Self(format!("reqobj:{client_id}:{}", sha256_b64(jti.as_bytes())))
    }

    /// A DPoP proof's `jti`, per key: a proof is accepted once (RFC 9449 §11.1).
    pub fn dpop_proof(jkt: &str, jti: &str) -> Self {
        Self(format!("dpop:{jkt}:{}", sha256_b64(jti.as_bytes())))
    }

    /// A pushed authorization request (RFC 9126), by the hash of its `request_uri`: a leaked
    /// store dump names no usable request URI.
    pub fn pushed_request(request_uri: &str) -> Self {
        Self(format!("par:{}", sha256_b64(request_uri.as_bytes())))
    }

    /// A card sign-in challenge.
    pub fn card_challenge(id: &str) -> Self {
        Self(format!("cardch:{id}"))
    }

    /// A card waiting for its first-login identification.
    pub fn card_pending(token: &str) -> Self {
        Self(format!("cardpending:{token}"))
    }

    /// The hand-off from the card TLS listener to the main site, by the token's hash.
    pub fn card_handoff(token: &str) -> Self {
        Self(format!("cardhandoff:{}", sha256_b64(token.as_bytes())))
    }

    /// A person's (or unknown identifier's) sign-in failure counter.
    pub fn throttle_account(name: &str) -> Self {
        Self(format!("thr:acct:{name}"))
    }

    /// A person's gate: one sign-in attempt at a time.
    pub fn throttle_gate(name: &str) -> Self {
        Self(format!("thr:gate:{name}"))
    }

    /// A client address's sign-in counter.
    pub fn throttle_address(address: &str) -> Self {
        Self(format!("thr:addr:{address}"))
    }

    /// What `/readyz` reads to see that the store answers (nothing is ever kept there).
    pub fn readiness_probe() -> Self {
        Self("readyz".into())
    }

    /// Any name, for the store's own tests.
    #[cfg(test)]
    pub(crate) fn named(name: &str) -> Self {
        Self(name.into())
    }

    /// The name as stored (the deployment's prefix is added by the store).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A namespace that gives one feature its own copy of a shared key scheme (the sign-in
/// throttle's counters, reused by 忘記密碼 without sharing a single count with sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// 忘記密碼 requests per person.
    ForgotPerson,
    /// 忘記密碼 requests per typed e-mail address.
    ForgotMail,
}

impl Scope {
    pub(super) fn prefix(self) -> &'static str {
        match self {
            Scope::ForgotPerson => "forgot:person:",
            Scope::ForgotMail => "forgot:mail:",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stored_under_their_hash_and_prefixes_differ() {
        let code = Key::code("the-code");
        assert!(!code.as_str().contains("the-code"));
        assert!(!Key::card_handoff("hand-off").as_str().contains("hand-off"));
        assert!(!Key::client_assertion("c", "jti-1").as_str().contains("jti-1"));
        assert!(!Key::request_object("c", "jti-1").as_str().contains("jti-1"));
        assert!(!Key::pushed_request("urn:ietf:params:oauth:request_uri:r-1").as_str().contains("r-1"));
        let all = [
            Key::code("x"),
            Key::login_transaction("x"),
            Key::activation("x"),
            Key::revoked_access_token("x"),
            Key::client_assertion("x", "x"),
            Key::request_object("x", "x"),
            Key::dpop_proof("x", "x"),
            Key::pushed_request("x"),
            Key::card_challenge("x"),
            Key::card_pending("x"),
            Key::card_handoff("x"),
            Key::throttle_account("x"),
            Key::throttle_gate("x"),
            Key::throttle_address("x"),
        ];
        let prefixes: std::collections::HashSet<&str> =
            all.iter().map(|k| k.as_str().split(':').next().unwrap_or("")).collect();
        // thr:acct/gate/addr share "thr" and differ in the second part.
        assert_eq!(prefixes.len(), all.len() - 2);
        let names: std::collections::HashSet<&str> = all.iter().map(Key::as_str).collect();
        assert_eq!(names.len(), all.len());
    }
}
