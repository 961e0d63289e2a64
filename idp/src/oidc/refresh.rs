//! Refresh tokens: stored by hash, rotated on every use. A family is everything rotated from one
//! authorization code; presenting an already-used token revokes the whole family, since either
//! the client or an attacker holds a stolen copy (OAuth 2.0 Security BCP §4.14).

use diesel::prelude::*;

use crate::crypto::{random_token, sha256_b64};
use crate::error::InfraError;
use crate::store::db::models::RefreshTokenRow;
use crate::store::db::schema::refresh_tokens;
use crate::store::db::DbConn;

/// What a refresh token carries forward.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub family_id: String,
    pub account_id: String,
    pub client_id: String,
    pub scope: Vec<String>,
    pub sid: String,
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    pub expires_at: i64,
    /// The DPoP key (JWK SHA-256 thumbprint) a public client's token is bound to (RFC 9449 §5):
    /// it is redeemed only with a proof signed by that key.
    pub dpop_jkt: Option<String>,
    /// The API (RFC 8707 resource) every access token of the family is for.
    pub resource: Option<String>,
}

impl From<RefreshTokenRow> for RefreshGrant {
    fn from(r: RefreshTokenRow) -> Self {
        Self {
            family_id: r.family_id,
            account_id: r.account_id,
            client_id: r.client_id,
            scope: r.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            sid: r.sid,
            auth_time: r.auth_time,
            acr: r.acr,
            amr: serde_json::from_str(&r.amr).unwrap_or_default(),
            expires_at: r.expires_at,
            dpop_jkt: r.dpop_jkt,
            resource: r.resource,
        }
    }
}

impl RefreshTokenRow {
    /// Whether the token may still be spent: neither used, revoked nor expired.
    pub fn is_live(&self, now: i64) -> bool {
        self.used_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Stores a new refresh token of a family; returns the token (shown to the client only).
pub fn issue(conn: &mut DbConn, grant: &RefreshGrant, now: i64) -> Result<String, InfraError> {
    let token = random_token(32);
    let row = RefreshTokenRow {
        id: sha256_b64(token.as_bytes()),
        family_id: grant.family_id.clone(),
        account_id: grant.account_id.clone(),
        client_id: grant.client_id.clone(),
        scope: grant.scope.join(" "),
        sid: grant.sid.clone(),
        auth_time: grant.auth_time,
        acr: grant.acr.clone(),
        amr: serde_json::to_string(&grant.amr).map_err(|e| InfraError::Internal(e.to_string()))?,
        created_at: now,
        expires_at: grant.expires_at,
        used_at: None,
        revoked_at: None,
        dpop_jkt: grant.dpop_jkt.clone(),
        resource: grant.resource.clone(),
    };
    diesel::insert_into(refresh_tokens::table).values(&row).execute(conn)?;
    Ok(token)
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Redeem {
    /// Valid and now spent; the caller issues the next one of the family.
    Ok(RefreshGrant),
    /// Unknown, expired, revoked, or issued to another client.
    Invalid,
    /// Already used: the family has been revoked.
    Reused { family_id: String, account_id: String },
    /// Bound to a DPoP key the request did not prove (no proof, or another key's): not spent,
    /// and the family is left alone, since whoever holds the key still holds the token.
    WrongKey { account_id: String },
}

/// Spends a refresh token, atomically: two concurrent uses cannot both succeed, and the loser
/// is treated as reuse.
///
/// The write comes first: a transaction that reads and then writes holds a read snapshot, and on
/// SQLite a commit by another connection in between makes the write fail at once with "database
/// is locked" (the busy timeout cannot help a stale snapshot), which concurrent rotations of
/// different families did. Writing first takes the write lock before anything is read.
///
/// `jkt` is the DPoP key the request proved, if any: a token bound to a key is spent only
/// with a proof of that key.
pub fn redeem(
    conn: &mut DbConn,
    token: &str,
    client_id: &str,
    jkt: Option<&str>,
    now: i64,
) -> Result<Redeem, InfraError> {
    let id = sha256_b64(token.as_bytes());
    conn.transaction(|conn| {
        let live = refresh_tokens::table
            .find(&id)
            .filter(refresh_tokens::client_id.eq(client_id))
            .filter(refresh_tokens::revoked_at.is_null())
            .filter(refresh_tokens::expires_at.gt(now))
            .filter(refresh_tokens::used_at.is_null());
        let spend = refresh_tokens::used_at.eq(now);
        let spent = match jkt {
            Some(k) => {
                diesel::update(live.filter(refresh_tokens::dpop_jkt.is_null().or(refresh_tokens::dpop_jkt.eq(k))))
                    .set(spend)
                    .execute(conn)?
            }
            None => diesel::update(live.filter(refresh_tokens::dpop_jkt.is_null())).set(spend).execute(conn)?,
        };
        let row: Option<RefreshTokenRow> =
            refresh_tokens::table.find(&id).select(RefreshTokenRow::as_select()).get_result(conn).optional()?;
        let Some(row) = row else { return Ok(Redeem::Invalid) };
        if spent == 1 {
            return Ok(Redeem::Ok(row.into()));
        }
        if row.client_id != client_id || row.revoked_at.is_some() || row.expires_at <= now {
            return Ok(Redeem::Invalid);
        }
        if row.dpop_jkt.is_some() && row.dpop_jkt.as_deref() != jkt {
            return Ok(Redeem::WrongKey { account_id: row.account_id });
        }
        // Valid but already used.
        revoke_family(conn, &row.family_id, now)?;
        Ok(Redeem::Reused { family_id: row.family_id, account_id: row.account_id })
    })
}

/// Revokes every token of a family.
pub fn revoke_family(conn: &mut DbConn, family_id: &str, now: i64) -> Result<usize, InfraError> {
    Ok(diesel::update(refresh_tokens::table.filter(refresh_tokens::family_id.eq(family_id)))
        .filter(refresh_tokens::revoked_at.is_null())
        .set(refresh_tokens::revoked_at.eq(now))
        .execute(conn)?)
}

/// Revokes a family and returns the account it belonged to (`None` when it has no tokens).
pub fn revoke_family_owner(conn: &mut DbConn, family_id: &str, now: i64) -> Result<Option<String>, InfraError> {
    revoke_family(conn, family_id, now)?;
    Ok(refresh_tokens::table
        .filter(refresh_tokens::family_id.eq(family_id))
        .select(refresh_tokens::account_id)
        .first(conn)
        .optional()?)
}

/// Looks a refresh token up without spending it (introspection, revocation).
pub fn find(conn: &mut DbConn, token: &str) -> Result<Option<RefreshTokenRow>, InfraError> {
    Ok(refresh_tokens::table
        .find(sha256_b64(token.as_bytes()))
        .select(RefreshTokenRow::as_select())
        .first(conn)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::Db;

    fn db() -> Db {
        let db = Db::connect("sqlite://:memory:", 1).unwrap();
        db.migrate().unwrap();
        db
    }

    fn grant(family_id: &str, account_id: &str, expires_at: i64) -> RefreshGrant {
        RefreshGrant {
            family_id: family_id.into(),
            account_id: account_id.into(),
            client_id: "app".into(),
            scope: vec!["openid".into(), "offline_access".into()],
            sid: "sid-1".into(),
            auth_time: 900,
            acr: "loa-2".into(),
            amr: vec!["hwk".into(), "pin".into()],
            expires_at,
            dpop_jkt: None,
            resource: None,
        }
    }

    fn is_invalid(r: Redeem) -> bool {
        matches!(r, Redeem::Invalid)
    }

    #[test]
    fn a_refresh_token_is_spent_once_and_its_second_use_revokes_the_family() {
        let db = db();
        let mut c = db.get().unwrap();
        let first = issue(&mut c, &grant("fam-1", "acc-1", 5_000), 1_000).unwrap();
        let sibling = issue(&mut c, &grant("fam-1", "acc-1", 5_000), 1_000).unwrap();
        let stranger = issue(&mut c, &grant("fam-2", "acc-1", 5_000), 1_000).unwrap();
        assert_ne!(first, sibling);
        let row = find(&mut c, &first).unwrap().expect("stored");
        assert_eq!(row.id, sha256_b64(first.as_bytes()), "kept by hash, never in clear");
        assert_eq!(row.used_at, None);

        let Redeem::Ok(g) = redeem(&mut c, &first, "app", None, 2_000).unwrap() else {
            panic!("a fresh token is good")
        };
        assert_eq!((g.family_id.as_str(), g.account_id.as_str(), g.client_id.as_str()), ("fam-1", "acc-1", "app"));
        assert_eq!(g.scope, ["openid", "offline_access"]);
        assert_eq!((g.sid.as_str(), g.auth_time, g.acr.as_str()), ("sid-1", 900, "loa-2"));
        assert_eq!(g.amr, ["hwk", "pin"]);
        assert_eq!(g.expires_at, 5_000);

        match redeem(&mut c, &first, "app", None, 2_001).unwrap() {
            Redeem::Reused { family_id, account_id } => {
                assert_eq!((family_id.as_str(), account_id.as_str()), ("fam-1", "acc-1"))
            }
            other => panic!("a second use is reuse, got {other:?}"),
        }
        assert!(is_invalid(redeem(&mut c, &sibling, "app", None, 2_002).unwrap()), "the whole family is revoked");
        assert!(
            matches!(redeem(&mut c, &stranger, "app", None, 2_003).unwrap(), Redeem::Ok(_)),
            "other families are not"
        );
    }

    /// Another connection commits while a rotation is under way (it holds the write lock when
    /// the rotation starts): the rotation waits its turn instead of failing with "database is
    /// locked", which a read-then-write transaction did on SQLite.
    #[test]
    fn a_rotation_waits_for_a_concurrent_writer_on_sqlite() {
        use diesel::connection::SimpleConnection;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("idp.db").display());
        let db = Db::connect(&url, 2).unwrap();
        db.migrate().unwrap();
        let mut c = db.get().unwrap();
        let t = issue(&mut c, &grant("fam-1", "acc-1", 5_000), 1_000).unwrap();
        let mut other = db.get().unwrap();
        other.batch_execute("BEGIN IMMEDIATE").unwrap();
        issue(&mut other, &grant("fam-2", "acc-2", 5_000), 1_000).unwrap();
        let rotation =
            std::thread::spawn(move || redeem(&mut c, &t, "app", None, 2_000).map(|r| matches!(r, Redeem::Ok(_))));
        // Give the rotation time to start under the other connection's lock, then commit.
        std::thread::sleep(std::time::Duration::from_millis(300));
        other.batch_execute("COMMIT").unwrap();
        assert!(rotation.join().unwrap().unwrap(), "the rotation succeeded after the other commit");
    }

    #[test]
    fn a_refresh_token_is_only_for_its_client_and_only_before_it_expires() {
        let db = db();
        let mut c = db.get().unwrap();
        let t = issue(&mut c, &grant("fam-1", "acc-1", 5_000), 1_000).unwrap();
        assert!(is_invalid(redeem(&mut c, "made-up", "app", None, 2_000).unwrap()));
        assert!(is_invalid(redeem(&mut c, &t, "other-app", None, 2_000).unwrap()), "another client");
        assert!(is_invalid(redeem(&mut c, &t, "app", None, 5_000).unwrap()), "expired at expires_at");
        assert!(matches!(redeem(&mut c, &t, "app", None, 4_999).unwrap(), Redeem::Ok(_)), "refusals did not spend it");
    }

    #[test]
    fn a_bound_token_is_spent_only_with_a_proof_of_its_key() {
        let db = db();
        let mut c = db.get().unwrap();
        let bound = RefreshGrant { dpop_jkt: Some("key-a".into()), ..grant("fam-1", "acc-1", 5_000) };
        let t = issue(&mut c, &bound, 1_000).unwrap();
        for (jkt, what) in [(None, "no proof"), (Some("key-b"), "another key")] {
            assert!(
                matches!(redeem(&mut c, &t, "app", jkt, 2_000).unwrap(), Redeem::WrongKey { account_id } if account_id == "acc-1"),
                "{what}"
            );
        }
        let Redeem::Ok(g) = redeem(&mut c, &t, "app", Some("key-a"), 2_000).unwrap() else {
            panic!("the refusals neither spent the token nor revoked its family")
        };
        assert_eq!(g.dpop_jkt.as_deref(), Some("key-a"), "the binding carries on to the next token");
        // An unbound token works with or without a proof (a confidential client's).
        let free = issue(&mut c, &grant("fam-2", "acc-1", 5_000), 1_000).unwrap();
        assert!(matches!(redeem(&mut c, &free, "app", Some("key-b"), 2_000).unwrap(), Redeem::Ok(_)));
    }

    #[test]
    fn revocation_by_family_ends_exactly_those_tokens() {
        let db = db();
        let mut c = db.get().unwrap();
        let a1 = issue(&mut c, &grant("fam-1", "acc-1", 5_000), 1_000).unwrap();
        let a2 = issue(&mut c, &grant("fam-2", "acc-1", 5_000), 1_000).unwrap();
        let a3 = issue(&mut c, &grant("fam-2", "acc-1", 5_000), 1_000).unwrap();
        let b = issue(&mut c, &grant("fam-3", "acc-2", 5_000), 1_000).unwrap();

        assert_eq!(revoke_family(&mut c, "fam-2", 1_500).unwrap(), 2);
        assert_eq!(revoke_family(&mut c, "fam-2", 1_600).unwrap(), 0, "already revoked");
        assert_eq!(find(&mut c, &a2).unwrap().and_then(|r| r.revoked_at), Some(1_500), "the first revocation stays");
        assert!(is_invalid(redeem(&mut c, &a3, "app", None, 2_000).unwrap()));

        assert_eq!(revoke_family_owner(&mut c, "fam-3", 1_700).unwrap().as_deref(), Some("acc-2"));
        assert!(is_invalid(redeem(&mut c, &b, "app", None, 2_000).unwrap()));
        assert_eq!(revoke_family_owner(&mut c, "fam-none", 1_700).unwrap(), None);

        assert!(
            matches!(redeem(&mut c, &a1, "app", None, 2_000).unwrap(), Redeem::Ok(_)),
            "another family of the account"
        );
    }
}
