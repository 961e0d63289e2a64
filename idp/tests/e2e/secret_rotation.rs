//! Client secret rotation with overlap: the replaced secret keeps working beside the new one until
//! the time the operator chose, then stops — on every node, whatever their client caches hold.

use diesel::prelude::*;
use serde_json::Value;

use crate::admin::secret_works;
use crate::harness::*;

const RP: &str = "http://127.0.0.1:9/callback";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `idp clients rotate-secret --json`: the new secret and until when the old one works.
fn rotate(idp: &Idp, client_id: &str, old_valid_for: &str) -> (String, Option<i64>) {
    let out = idp.cli_ok(&["clients", "rotate-secret", client_id, "--old-valid-for", old_valid_for, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    (v["client_secret"].as_str().unwrap().to_string(), v["old_secret_valid_until"].as_i64())
}

/// Moves the end of the running overlap, as the passing of time would (tests do not wait).
fn end_overlap_at(idp: &Idp, client_id: &str, at: i64) {
    use idp::store::db::schema::clients;
    let db = idp.db();
    let mut c = db.get().unwrap();
    let n = diesel::update(clients::table.find(client_id))
        .set(clients::previous_secret_expires_at.eq(Some(at)))
        .execute(&mut *c)
        .unwrap();
    assert_eq!(n, 1);
}

async fn all_accept(nodes: &[&Idp], client_id: &str, secret: &str) -> bool {
    let mut all = true;
    for n in nodes {
        all &= secret_works(n, client_id, secret).await;
    }
    all
}

async fn none_accepts(nodes: &[&Idp], client_id: &str, secret: &str) -> bool {
    let mut none = true;
    for n in nodes {
        none &= !secret_works(n, client_id, secret).await;
    }
    none
}

#[tokio::test]
async fn a_rotated_secret_overlaps_until_the_chosen_time_then_stops_on_every_node() {
    let mut a = Idp::new();
    let (client_id, first) = a.create_client(RP, "http://127.0.0.1:9/");
    let (other_id, other_secret) = a.create_client(RP, "http://127.0.0.1:9/");
    a.start().await;
    // The CLI writes the database behind the server's back, as another node would; on
    // PostgreSQL a second node proves it across processes that both cache the client.
    let mut b = None;
    if Idp::several_nodes_possible("a_rotated_secret_overlaps_until_the_chosen_time_then_stops_on_every_node") {
        let mut peer = a.peer(&[]);
        peer.start().await;
        b = Some(peer);
    }
    let nodes: Vec<&Idp> = std::iter::once(&a).chain(b.as_ref()).collect();
    // Every node has the client cached with the first secret.
    assert!(all_accept(&nodes, &client_id, &first).await);

    let (second, until) = rotate(&a, &client_id, "1h");
    let until = until.expect("an overlap was asked for");
    assert!((now() + 3590..=now() + 3600).contains(&until), "{until}");
    // Both work everywhere at once: the new one although the caches predate it.
    assert!(all_accept(&nodes, &client_id, &second).await);
    assert!(all_accept(&nodes, &client_id, &first).await);
    // The overlap is this client's: neither secret opens another client, and a wrong one stays wrong.
    assert!(none_accepts(&nodes, &other_id, &first).await);
    assert!(none_accepts(&nodes, &client_id, &other_secret).await);
    assert!(none_accepts(&nodes, &client_id, "not-the-secret").await);

    // The chosen time comes: the old secret stops on every node, the new one carries on.
    end_overlap_at(&a, &client_id, now() - 1);
    assert!(none_accepts(&nodes, &client_id, &first).await);
    assert!(all_accept(&nodes, &client_id, &second).await);

    // Never more than two: rotating during an overlap ends the older secret. Cutting a secret
    // short is a client change like any other: a node that cached the client before it refuses
    // the cut secret once it re-reads the client — at once when it meets the new secret (as
    // here), within the 5 s client cache otherwise.
    let (third, _) = rotate(&a, &client_id, "1h");
    let (fourth, _) = rotate(&a, &client_id, "7d");
    assert!(all_accept(&nodes, &client_id, &fourth).await);
    assert!(all_accept(&nodes, &client_id, &third).await);
    assert!(none_accepts(&nodes, &client_id, &second).await);

    // Audited with when the old one stops, never a secret.
    let db = a.db();
    let mut c = db.get().unwrap();
    use idp::store::db::schema::audit_events;
    let details: Vec<String> = audit_events::table
        .filter(audit_events::event.eq("client.rotate_secret"))
        .filter(audit_events::client_id.eq(&client_id))
        .select(audit_events::detail)
        .load(&mut *c)
        .unwrap();
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(details.iter().all(|d| d.starts_with("old secret valid until ")), "{details:?}");
    for secret in [&first, &second, &third, &fourth] {
        assert!(!details.iter().any(|d| d.contains(secret.as_str())));
    }
}

#[tokio::test]
async fn rotation_refuses_overlaps_out_of_bounds_and_clients_without_a_secret() {
    let idp = Idp::new();
    let (client_id, secret) = idp.create_client(RP, "http://127.0.0.1:9/");
    for bad in ["59s", "31d", "forever", "-1h"] {
        let out = idp.cli(&["clients", "rotate-secret", &client_id, "--old-valid-for", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: a usage error");
    }
    let public = idp.cli_ok(&["clients", "create", "--name", "SPA", "--redirect-uri", RP, "--public", "--json"]);
    let public: Value = serde_json::from_str(&public).unwrap();
    let out = idp.cli(&["clients", "rotate-secret", public["client_id"].as_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("with a secret"));
    // Nothing above changed the secret, and a rotation without an overlap says so.
    let out = idp.cli_ok(&["clients", "rotate-secret", &client_id]);
    assert!(out.contains("old secret valid until:     (stopped now)"), "{out}");
    assert!(!out.contains(&secret));
    assert_eq!(idp.audit_count("client.rotate_secret", "success"), 1);
}
