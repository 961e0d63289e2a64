//! The deployment kit: what can be checked without a container engine (none runs on the CI
//! machine) is checked here. The Kubernetes manifests and the compose file parse and say what
//! deploy/README.md says; the configuration they ship is a valid IdP configuration; nginx
//! accepts the shipped site file (`nginx -t`); and nodes starting at once on one PostgreSQL
//! (as the manifests' replicas do) migrate it once, behind the advisory lock.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::behind_nginx::nginx_binary;
use crate::harness::*;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(deploy_dir().join(path)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An IdP configuration as the server reads it: unknown keys and bad values are refused.
fn idp_config(toml_text: &str, what: &str) -> idp::config::Config {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{what} is not a valid IdP configuration: {e}"))
}

#[test]
fn the_kubernetes_manifests_parse_and_run_three_non_root_read_only_replicas_probed_on_readyz_and_healthz() {
    let d = yaml("kubernetes/deployment.yaml");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["spec"]["replicas"], 3);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(c["resources"]["requests"]["cpu"].is_string() && c["resources"]["requests"]["memory"].is_string());
    // The writable paths are volumes, and data_dir is one of them.
    let mounts: Vec<&str> =
        c["volumeMounts"].as_sequence().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
    let cm = yaml("kubernetes/configmap.yaml");
    let config = idp_config(cm["data"]["idp.toml"].as_str().unwrap(), "the ConfigMap's idp.toml");
    assert!(mounts.contains(&config.data_dir.to_str().unwrap()), "data_dir {:?} is a volume", config.data_dir);
    let key_dir = config.secrets.data_key_file.parent().unwrap().to_str().unwrap().to_string();
    assert!(mounts.contains(&key_dir.as_str()), "the data key is mounted from the Secret");
    assert!(!config.metrics.bind.is_empty(), "metrics on their own port");
    // Credentials come from the Secret, never from the ConfigMap.
    let env: Vec<&str> = c["env"].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(env.contains(&"IDP_DATABASE__URL") && env.contains(&"IDP_CACHE__URL"));
    let secret = yaml("kubernetes/secret.example.yaml");
    assert_eq!(secret["kind"], "Secret");
    for key in ["data.key", "IDP_DATABASE__URL", "IDP_CACHE__URL", "IDP_MAIL__SMTP_URL"] {
        assert!(secret["stringData"][key].is_string(), "{key} in the Secret");
    }
    assert_eq!(yaml("kubernetes/pdb.yaml")["kind"], "PodDisruptionBudget");
    let svc = yaml("kubernetes/service.yaml");
    assert_eq!(svc["kind"], "Service");
    let ports = svc["spec"]["ports"].as_sequence().unwrap();
    assert!(ports.iter().all(|p| p["targetPort"] != "metrics"), "the metrics port is not in the Service");
    assert_eq!(yaml("kubernetes/ingress.yaml")["kind"], "Ingress");
    let k = yaml("kubernetes/kustomization.yaml");
    for r in k["resources"].as_sequence().unwrap() {
        assert!(deploy_dir().join("kubernetes").join(r.as_str().unwrap()).is_file(), "{r:?}");
    }
}

#[test]
fn the_compose_file_parses_and_runs_three_nodes_behind_the_shipped_nginx_site_with_postgres_redis_and_mail() {
    let c = yaml("compose.yaml");
    let services = c["services"].as_mapping().unwrap();
    for s in ["idp1", "idp2", "idp3", "postgres", "redis", "nginx", "mail"] {
        assert!(services.contains_key(s), "service {s}");
    }
    // The merge key (<<: *idp) or an alias makes each node the same service.
    for node in ["idp1", "idp2", "idp3"] {
        assert_eq!(c["services"][node]["image"], "idp:local", "{node}");
        assert_eq!(c["services"][node]["build"]["dockerfile"], "deploy/Dockerfile");
    }
    let nginx = &c["services"]["nginx"];
    let command = nginx["command"].as_sequence().unwrap().last().unwrap().as_str().unwrap().to_string();
    let site = std::fs::read_to_string(deploy_dir().join("nginx/idp.conf")).unwrap();
    assert!(command.contains("s/server 127.0.0.1:8080;/"), "the upstream line is what compose rewrites");
    assert!(site.contains("server 127.0.0.1:8080;"), "deploy/nginx/idp.conf still has the line compose rewrites");
    let volumes: Vec<&str> = nginx["volumes"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(volumes.iter().any(|v| v.starts_with("./nginx/idp.conf:")), "the shipped site file is used");
    let config =
        idp_config(&std::fs::read_to_string(deploy_dir().join("compose/idp.toml")).unwrap(), "compose/idp.toml");
    let nginx_ip = nginx["networks"]["idp"]["ipv4_address"].as_str().unwrap();
    assert_eq!(config.certificates.trusted_proxies, vec![nginx_ip.to_string()], "only nginx is a trusted proxy");
    assert_eq!(config.certificates.proxy_header, "x-ssl-client-cert");
    assert!(deploy_dir().join("Dockerfile").is_file());
}

#[test]
fn the_dockerfile_is_multi_stage_runs_as_a_numeric_non_root_user_and_checks_healthz() {
    let text = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(lines.iter().filter(|l| l.starts_with("FROM ")).count() >= 2, "multi-stage");
    assert!(lines.iter().any(|l| l.starts_with("COPY --from=build")), "the runtime stage takes the binary only");
    let build = lines.iter().find(|l| l.starts_with("RUN cargo build")).expect("a cargo build line");
    assert!(build.contains("--no-default-features"), "the image is built without the test PKI: {build}");
    let user = lines.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert!(user.split(':').all(|id| id.parse::<u32>().is_ok_and(|n| n > 0)), "numeric non-root: {user}");
    let check = text.split("HEALTHCHECK").nth(1).expect("a HEALTHCHECK");
    assert!(check.lines().take(3).collect::<String>().contains("/healthz"));
    let unit = std::fs::read_to_string(deploy_dir().join("systemd/idp.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/idp serve") && unit.contains("User=idp"));
}

#[test]
fn nginx_accepts_the_shipped_site_configuration() {
    let Some(bin) = nginx_binary() else {
        assert!(std::env::var_os("CI").is_none(), "nginx is required in CI (apt-get install nginx)");
        eprintln!("skipped: nginx is not installed (apt-get install nginx)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["sso.example.gov.tw".to_string()]).unwrap();
    std::fs::write(d.join("server.crt"), cert.cert.pem()).unwrap();
    std::fs::write(d.join("server.key"), cert.signing_key.serialize_pem()).unwrap();
    // The file as shipped; only the certificate paths point at this test's throw-away pair.
    let site = std::fs::read_to_string(deploy_dir().join("nginx/idp.conf"))
        .unwrap()
        .replace("/etc/nginx/tls/sso.example.gov.tw.crt", &d.join("server.crt").display().to_string())
        .replace("/etc/nginx/tls/sso.example.gov.tw.key", &d.join("server.key").display().to_string());
    std::fs::write(d.join("idp.conf"), site).unwrap();
    let p = d.display();
    std::fs::write(
        d.join("nginx.conf"),
        format!(
            "pid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{}}\nhttp {{\n  client_body_temp_path {p}/body;\n  \
             proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  \
             scgi_temp_path {p}/scgi;\n  include {p}/idp.conf;\n}}\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["-t", "-p", &p.to_string(), "-e", &format!("{p}/error.log"), "-c", &format!("{p}/nginx.conf")])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("test is successful"), "nginx -t: {said}");
}

#[tokio::test]
async fn several_nodes_starting_at_once_on_a_fresh_postgresql_migrate_it_once_and_all_serve() {
    if !Idp::several_nodes_possible("deploy: nodes starting at once") {
        return;
    }
    let first = Idp::new();
    // Four migrations at the same instant on the empty database, as replicas starting together.
    let outs: Vec<std::process::Output> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..4).map(|_| s.spawn(|| first.cli(&["migrate"]))).collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for o in &outs {
        assert!(o.status.success(), "idp migrate failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    let folders =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgresql")).unwrap().count();
    let applied: i64 = {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let url = first.env_value("IDP_DATABASE__URL").unwrap();
        let mut pg = <diesel::PgConnection as diesel::Connection>::establish(&url).unwrap();
        diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
            .get_result::<Count>(&mut pg)
            .unwrap()
            .n
    };
    assert_eq!(applied, folders as i64, "every migration applied, once");
    // And servers starting together on a second fresh database all come up.
    let mut a = Idp::new();
    // The shared data key exists before the nodes do, as a deployment's Secret does.
    std::fs::create_dir_all(a.dir.path().join("data")).unwrap();
    let key: [u8; 32] = rand::random();
    std::fs::write(
        a.dir.path().join("data/data.key"),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key),
    )
    .unwrap();
    let mut b = a.peer(&[]);
    let mut c = a.peer(&[]);
    let (x, y, z) = (&mut a, &mut b, &mut c);
    tokio::join!(x.start(), y.start(), z.start());
    for node in [&a, &b, &c] {
        let r = reqwest::get(format!("{}/readyz", node.base)).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}
