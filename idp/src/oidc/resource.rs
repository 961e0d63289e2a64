//! Resource indicators (RFC 8707): a client names the one API it wants an access token for
//! (`resource`), at the authorization request, the pushed request or the token request. The
//! API must be a registered resource server with that `resource_uri`; the token's `aud` is then
//! that URI, so the API can tell a token meant for it from one meant for another, and userinfo
//! refuses it (it is not for the provider itself).
//!
//! One resource per grant: what a code or a refresh token was granted for, every token from it is
//! for, and a token request can only name the same again (RFC 8707 §2.2 lets it narrow among
//! several; with one there is nothing to narrow to).

use super::params::Params;

/// Why a `resource` was refused: RFC 8707 §2's `invalid_target`, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid_target: {0}")]
pub struct InvalidTarget(pub String);

/// A resource URI as RFC 8707 §2 has it: absolute, without a fragment; without a query too, so
/// one API has one name.
pub fn check_uri(uri: &str) -> Result<(), String> {
    let parsed = url::Url::parse(uri).map_err(|_| format!("`{uri}` is not an absolute URI"))?;
    if parsed.cannot_be_a_base() || !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!("`{uri}` is not an http(s) URI"));
    }
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err(format!("`{uri}` has a fragment"));
    }
    if parsed.query().is_some() {
        return Err(format!("`{uri}` has a query"));
    }
    Ok(())
}

/// The `resource` a request names, if any: one value, a valid URI. Read before duplicates are
/// refused in general, so several resources get `invalid_target`, not `invalid_request`.
pub fn requested(params: &Params) -> Result<Option<String>, InvalidTarget> {
    let mut values = params.pairs().filter(|(k, _)| *k == "resource").map(|(_, v)| v);
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(InvalidTarget("one resource per request".into()));
    }
    check_uri(first).map_err(|e| InvalidTarget(format!("resource {e}")))?;
    Ok(Some(first.to_string()))
}

/// The resource the tokens of a grant are for: the one `granted` (at the authorization request,
/// or when a refresh token was issued), or, for a grant without one being redeemed for its first
/// tokens (`first`), the one the token request `asked` for.
pub fn settle(granted: Option<&str>, asked: Option<&str>, first: bool) -> Result<Option<String>, InvalidTarget> {
    match (granted, asked) {
        (Some(g), Some(a)) if g != a => Err(InvalidTarget("the grant is for another resource".into())),
        (None, Some(_)) if !first => Err(InvalidTarget("the grant was not for a resource".into())),
        (g, a) => Ok(g.or(a).map(str::to_string)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_is_one_absolute_uri_without_fragment_or_query() {
        assert!(check_uri("https://api.example.gov.tw/hr").is_ok());
        assert!(check_uri("http://127.0.0.1:8080/").is_ok());
        for bad in ["/hr", "api.example.gov.tw", "https://api.example/#x", "https://api.example/?a=1", "urn:x:y", ""] {
            assert!(check_uri(bad).is_err(), "{bad}");
        }
        let p = |q: &str| Params::parse(q.as_bytes()).unwrap();
        assert_eq!(requested(&p("a=1")), Ok(None));
        assert_eq!(requested(&p("resource=https%3A%2F%2Fapi.example%2F")), Ok(Some("https://api.example/".into())));
        assert!(requested(&p("resource=https%3A%2F%2Fa.example%2F&resource=https%3A%2F%2Fb.example%2F")).is_err());
        assert!(requested(&p("resource=relative")).is_err());
    }

    #[test]
    fn a_grant_keeps_its_resource() {
        let (a, b) = (Some("https://a.example/"), Some("https://b.example/"));
        assert_eq!(settle(a, None, false), Ok(a.map(String::from)), "a refresh keeps it");
        assert_eq!(settle(a, a, false), Ok(a.map(String::from)), "naming it again is fine");
        assert!(settle(a, b, true).is_err(), "not another one at the code exchange");
        assert!(settle(a, b, false).is_err(), "nor at a refresh");
        assert_eq!(settle(None, b, true), Ok(b.map(String::from)), "first tokens may name one");
        assert!(settle(None, b, false).is_err(), "a refresh cannot add one");
        assert_eq!(settle(None, None, false), Ok(None));
    }
}
