//! `/metrics`: on its own listener only, in the Prometheus text format, and the counters move
//! with what people and clients do, with no personal data in any label.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const PW: &str = "Civil-Service-2026";

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text exposition format strictly enough that a malformed line fails the test.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("labels of {line}"));
                let mut labels = BTreeMap::new();
                for pair in split_labels(body) {
                    let (k, v) = pair.split_once('=').unwrap();
                    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or_else(|| panic!("{line}"));
                    labels.insert(k.to_string(), v.replace("\\\"", "\"").replace("\\\\", "\\"));
                }
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'), "name in {line}");
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
        assert!(typed.contains_key(&name) || typed.contains_key(family), "{name} has no # TYPE line");
        samples.push((name, labels, value));
    }
    samples
}

/// Splits `a="x",b="y,z"` at the commas outside quotes.
fn split_labels(body: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for ch in body.chars() {
        match ch {
            '\\' if quoted && !escaped => escaped = true,
            '"' if !escaped => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => escaped = false,
        }
        cur.push(ch);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The value of the sample with this name and (at least) these labels; 0 when absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .sum()
}

async fn scrape(url: &str) -> (String, Vec<Sample>) {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let kind = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/plain") && kind.contains("version=0.0.4"), "{kind}");
    let text = r.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

#[tokio::test]
async fn metrics_on_their_own_listener_count_requests_sign_ins_and_tokens_without_personal_data() {
    let mut idp = Idp::with_env(&[("IDP_METRICS__BIND", "127.0.0.1:0")]);
    let bind = idp.metrics_addr().unwrap();
    idp.import_register();
    let (client_id, secret) = idp.create_client(CB, "http://127.0.0.1:9/");
    idp.start().await;
    let url = format!("http://{bind}/metrics");
    let (_, before) = scrape(&url).await;
    assert!(value(&before, "idp_db_pool_connections", &[("state", "max")]) >= 1.0);
    assert_eq!(value(&before, "idp_backchannel_outbox_pending", &[]), 0.0);
    let signed_in = |s: &[Sample]| value(s, "idp_sign_ins_total", &[("method", "password"), ("outcome", "success")]);
    assert_eq!(signed_in(&before), 0.0);

    // Not on the public listener.
    let public = reqwest::get(format!("{}/metrics", idp.base)).await.unwrap();
    assert_eq!(public.status().as_u16(), 404);

    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    assert_ne!(browser.sign_in_at("/login", "ming.wang", "wrong-password-1").await.status, 303);
    assert_eq!(browser.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let r = browser
        .get(&format!("/authorize?client_id={client_id}&redirect_uri={CB_ENC}&response_type=code&scope=openid"))
        .await;
    let code = query_param(&r.location.unwrap(), "code").unwrap();
    let token = |code: String| {
        let (client_id, secret, base) = (client_id.clone(), secret.clone(), idp.base.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{base}/token"))
                .basic_auth(&client_id, Some(&secret))
                .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)])
                .send()
                .await
                .unwrap()
        }
    };
    let t: Value = token(code.clone()).await.json().await.unwrap();
    assert!(t["id_token"].is_string());
    assert_eq!(token(code).await.status().as_u16(), 400, "a code is redeemed once");
    // A raw path holding a national ID must not become a label.
    assert_eq!(reqwest::get(format!("{}/no-such-page/{MING}", idp.base)).await.unwrap().status().as_u16(), 404);

    let (text, after) = scrape(&url).await;
    assert_eq!(signed_in(&after), 1.0, "one password sign-in succeeded");
    let refused: f64 = after
        .iter()
        .filter(|(n, l, _)| n == "idp_sign_ins_total" && l["method"] == "password" && l["outcome"] != "success")
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(refused, 1.0, "one was refused");
    assert_eq!(value(&after, "idp_tokens_issued_total", &[("grant", "authorization_code")]), 1.0);
    assert_eq!(
        value(&after, "idp_token_refusals_total", &[("grant", "authorization_code"), ("error", "invalid_grant")]),
        1.0
    );
    let token_requests = [("route", "/token"), ("method", "POST")];
    assert_eq!(value(&after, "idp_http_request_duration_seconds_count", &token_requests), 2.0);
    let buckets: Vec<&Sample> = after
        .iter()
        .filter(|(n, l, _)| {
            n == "idp_http_request_duration_seconds_bucket" && l["route"] == "/token" && l["status"] == "200"
        })
        .collect();
    assert!(buckets.len() > 5 && buckets.iter().any(|(_, l, v)| l["le"] == "+Inf" && *v == 1.0), "a latency histogram");
    assert_eq!(
        value(&after, "idp_http_request_duration_seconds_count", &[("route", "unmatched"), ("status", "404")]),
        2.0,
        "the public /metrics and the made-up page"
    );
    for (name, labels, _) in &after {
        if let Some(route) = labels.get("route") {
            assert!(route == "unmatched" || route.starts_with('/') && !route.contains('?'), "{name}: {route}");
        }
    }
    for private in [MING, "ming.wang", "王小明", client_id.as_str(), secret.as_str(), "no-such-page"] {
        assert!(!text.contains(private), "`{private}` is in /metrics");
    }
}

/// A dependency that hangs is counted as a timeout, apart from one that refuses: Redis cut
/// (connections refused) moves `idp_dependency_errors_total` only; Redis or PostgreSQL hanging
/// moves `idp_dependency_timeouts_total` too.
#[tokio::test]
async fn a_hanging_dependency_counts_as_a_timeout_and_a_refusing_one_does_not() {
    use crate::outages::{address_of, dependency, Relay, BOUNDS};
    let Some(cache) = dependency("IDP_TEST_CACHE_URL") else { return };
    let mut env = BOUNDS.to_vec();
    env.push(("IDP_METRICS__BIND", "127.0.0.1:0"));
    let mut idp = Idp::with_env(&env);
    let redis = Relay::start(address_of(&cache));
    idp.set_env("IDP_CACHE__URL", &redis.url_for(&cache));
    let postgres = idp.env_value("IDP_DATABASE__URL").map(|url| {
        let relay = Relay::start(address_of(&url));
        idp.set_env("IDP_DATABASE__URL", &relay.url_for(&url));
        relay
    });
    idp.import_register();
    let (client_id, _) = idp.create_client(CB, "http://127.0.0.1:9/");
    idp.start().await;
    let url = format!("http://{}/metrics", idp.metrics_addr().unwrap());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // A new sign-in starts with a login transaction in Redis.
    let authorize = format!(
        "{}/authorize?client_id={client_id}&redirect_uri={CB_ENC}&response_type=code&scope=openid&state=s",
        idp.base
    );
    let count = |s: &[Sample], name: &str, dep: &str| value(s, name, &[("dependency", dep)]);
    let (_, before) = scrape(&url).await;

    redis.cut();
    let r = http.get(&authorize).send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().contains("temporarily_unavailable"));
    let (_, cut) = scrape(&url).await;
    assert!(
        count(&cut, "idp_dependency_errors_total", "ephemeral")
            > count(&before, "idp_dependency_errors_total", "ephemeral")
    );
    assert_eq!(
        count(&cut, "idp_dependency_timeouts_total", "ephemeral"),
        count(&before, "idp_dependency_timeouts_total", "ephemeral"),
        "a refused connection is not a timeout"
    );

    // Back, then hanging: connections accepted, nothing answered.
    redis.restore();
    redis.hang();
    let r = http.get(&authorize).send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().contains("temporarily_unavailable"));
    let (_, hung) = scrape(&url).await;
    assert!(
        count(&hung, "idp_dependency_timeouts_total", "ephemeral")
            > count(&cut, "idp_dependency_timeouts_total", "ephemeral")
    );
    assert!(
        count(&hung, "idp_dependency_errors_total", "ephemeral")
            > count(&cut, "idp_dependency_errors_total", "ephemeral")
    );
    redis.restore();

    if let Some(postgres) = postgres {
        let (_, fine) = scrape(&url).await;
        postgres.hang();
        assert_eq!(http.get(format!("{}/", idp.base)).send().await.unwrap().status().as_u16(), 503);
        let (_, hung) = scrape(&url).await;
        assert!(
            count(&hung, "idp_dependency_timeouts_total", "database")
                > count(&fine, "idp_dependency_timeouts_total", "database")
        );
        postgres.restore();
    }
}
