//! The `claims` request parameter (OpenID Connect Core §5.5): which claims a client wants in
//! the ID token and at userinfo, and which are essential.
//!
//! Consent here is given per scope, so a requested claim is translated to the scope that
//! releases it: the scope is added to the request when the client is allowed it (and goes
//! through consent like any scope), and left out — the claim is simply not released — when it
//! is not. A claims request never releases more than the client's scopes allow. Claims asked
//! for the ID token are put in it, on top of the ones every ID token carries.
//!
//! An essential `acr` with `value` or `values` is a requirement on the sign-in; the gate asks
//! for a card sign-in when one would meet it, and otherwise answers
//! `unmet_authentication_requirements`. A voluntary one changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The scope that releases each claim this provider knows about a person.
const CLAIM_SCOPES: [(&str, &str); 10] = [
    ("name", "profile"),
    ("preferred_username", "profile"),
    ("email", "email"),
    ("email_verified", "email"),
    ("agency_code", "agency"),
    ("agency_name", "agency"),
    ("unit", "agency"),
    ("roles", "roles"),
    ("national_id", "national_id"),
    ("sub", "openid"),
];

/// The most claims one request may name, per target.
const MAX_CLAIMS: usize = 32;

/// A parsed `claims` parameter: per target, the claim names and what was asked of each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimsRequest {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub userinfo: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub id_token: Map<String, Value>,
}

/// Reads the parameter: a JSON object whose `userinfo` and `id_token` members are objects of
/// claim names, each `null` or an object with `essential` (boolean), `value` or `values` (an
/// array). Other top-level members are ignored, as §5.5 allows; anything else is refused.
pub fn parse(text: &str) -> Result<ClaimsRequest, String> {
    let Ok(Value::Object(top)) = serde_json::from_str::<Value>(text) else {
        return Err("claims must be a JSON object".into());
    };
    let mut out = ClaimsRequest::default();
    for (target, slot) in [("userinfo", &mut out.userinfo), ("id_token", &mut out.id_token)] {
        let members = match top.get(target) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(format!("claims.{target} must be an object")),
        };
        if members.len() > MAX_CLAIMS {
            return Err(format!("claims.{target} may name at most {MAX_CLAIMS} claims"));
        }
        for (name, spec) in members {
            match spec {
                Value::Null => {}
                Value::Object(o) => {
                    if o.get("essential").is_some_and(|e| !e.is_boolean()) {
                        return Err(format!("claims.{target}.{name}.essential must be true or false"));
                    }
                    if o.get("values").is_some_and(|v| !v.is_array()) {
                        return Err(format!("claims.{target}.{name}.values must be an array"));
                    }
                }
                _ => return Err(format!("claims.{target}.{name} must be null or an object")),
            }
            slot.insert(name.clone(), spec.clone());
        }
    }
    Ok(out)
}

impl ClaimsRequest {
    /// The scopes that release the claims asked for (each once, in a stable order).
    pub fn scopes(&self) -> Vec<&'static str> {
        let mut scopes: Vec<&'static str> = Vec::new();
        for name in self.userinfo.keys().chain(self.id_token.keys()) {
            if let Some((_, scope)) = CLAIM_SCOPES.iter().find(|(c, _)| c == name) {
                if !scopes.contains(scope) {
                    scopes.push(scope);
                }
            }
        }
        scopes
    }

    /// The claims about the person asked for the ID token.
    pub fn id_token_claims(&self) -> Vec<String> {
        self.id_token.keys().filter(|n| CLAIM_SCOPES.iter().any(|(c, _)| c == n)).cloned().collect()
    }

    /// The `acr` values the ID token's `acr` was asked for as essential, if it was.
    pub fn essential_acr(&self) -> Option<Vec<String>> {
        let spec = self.id_token.get("acr")?.as_object()?;
        if spec.get("essential") != Some(&Value::Bool(true)) {
            return None;
        }
        let mut values: Vec<String> = Vec::new();
        if let Some(v) = spec.get("value").and_then(Value::as_str) {
            values.push(v.to_string());
        }
        for v in spec.get("values").and_then(Value::as_array).into_iter().flatten() {
            if let Some(v) = v.as_str() {
                values.push(v.to_string());
            }
        }
        (!values.is_empty()).then_some(values)
    }
}

/// Whether a sign-in of assurance `have` meets an essential `acr` request: one of the values
/// asked for is met by it.
pub fn acr_met(have: &str, wanted: &[String]) -> bool {
    wanted.iter().any(|w| super::acr_satisfies(have, w))
}

/// Whether some sign-in this provider offers could meet it (a card, at best).
pub fn acr_reachable(wanted: &[String]) -> bool {
    acr_met(super::ACR_CARD, wanted)
}

/// The claims of `released` (what the granted scopes release, as userinfo gives them) that were
/// asked for the ID token.
pub fn pick(released: &Value, names: &[String]) -> Map<String, Value> {
    names
        .iter()
        .filter(|n| n.as_str() != "sub")
        .filter_map(|n| released.get(n).map(|v| (n.clone(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_claims_request_is_read_and_bad_shapes_are_refused() {
        let r = parse(r#"{"userinfo":{"email":null,"unit":{"essential":true}},"id_token":{"name":null},"other":1}"#)
            .unwrap();
        assert_eq!(r.userinfo.len(), 2);
        assert_eq!(r.id_token_claims(), ["name"]);
        assert_eq!(r.scopes(), ["email", "agency", "profile"]);
        for bad in [
            "[]",
            "not json",
            r#"{"userinfo":[]}"#,
            r#"{"id_token":{"acr":"loa-2"}}"#,
            r#"{"id_token":{"acr":{"essential":"yes"}}}"#,
            r#"{"id_token":{"acr":{"values":"loa-2"}}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let many: Map<String, Value> = (0..=MAX_CLAIMS).map(|i| (format!("c{i}"), Value::Null)).collect();
        assert!(parse(&json!({ "userinfo": many }).to_string()).is_err());
        assert_eq!(parse("{}").unwrap(), ClaimsRequest::default());
    }

    #[test]
    fn only_an_essential_acr_with_values_is_a_requirement() {
        let acr = |spec: Value| parse(&json!({ "id_token": { "acr": spec } }).to_string()).unwrap().essential_acr();
        assert_eq!(acr(json!({"essential": true, "values": ["loa-2"]})), Some(vec!["loa-2".to_string()]));
        assert_eq!(acr(json!({"essential": true, "value": "loa-1"})), Some(vec!["loa-1".to_string()]));
        assert_eq!(acr(json!({"values": ["loa-2"]})), None, "voluntary");
        assert_eq!(acr(json!({"essential": false, "value": "loa-2"})), None);
        assert_eq!(acr(json!({"essential": true})), None, "no value to meet");
        assert_eq!(parse(r#"{"userinfo":{"acr":{"essential":true,"value":"loa-2"}}}"#).unwrap().essential_acr(), None);
    }

    #[test]
    fn assurance_is_met_by_an_equal_or_stronger_sign_in_and_unknown_values_never() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(acr_met("loa-2", &v(&["loa-1"])));
        assert!(acr_met("loa-1", &v(&["loa-2", "loa-1"])));
        assert!(!acr_met("loa-1", &v(&["loa-2"])));
        assert!(acr_reachable(&v(&["loa-2"])));
        assert!(!acr_reachable(&v(&["urn:gold"])));
        assert!(!acr_met("loa-2", &v(&["urn:gold"])));
    }

    #[test]
    fn only_released_claims_are_picked_for_the_id_token() {
        let released = json!({ "sub": "s", "email": "a@b", "name": "王" });
        let names = vec!["email".to_string(), "national_id".to_string(), "sub".to_string()];
        assert_eq!(Value::Object(pick(&released, &names)), json!({ "email": "a@b" }));
    }
}
