//! The catalog CLI and forward auth by feature and metric behind the real nginx `auth_request`
//! (issue 16): `plan apply` prints the diff and writes only what changed, `--dry-run` writes
//! nothing, bad files are usage errors (exit 2); nginx answers 200, 403 for a missing feature
//! and 429 with `Retry-After` for a used-up hard quota.

use serde_json::{Value, json};

use crate::support::{Server, cli, event, free_port, stderr, stdout};

const PLANS: &str = r#"
[plans.metered]
name = "Metered"
currency = "USD"
base_fee = "10.00"
features = ["api"]

[[plans.metered.quotas]]
metric = "requests"
period = "month"
included = "3"
thresholds_percent = [100]
enforcement = "hard"
overage_unit_price = "0.01"
"#;

fn apply(server: &Server, file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["plan", "apply", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    cli(server, server.admin_token.as_deref(), &args)
}

#[test]
fn plan_apply_prints_the_diff_and_writes_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let file = dir.path().join("plans.toml");
    std::fs::write(&file, PLANS).unwrap();

    let dry = apply(&server, &file, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("+ metered (new)"), "{}", stdout(&dry));
    assert!(stdout(&dry).contains("dry run: nothing was written"));
    let list = cli(&server, server.admin_token.as_deref(), &["plan", "list"]);
    assert!(!stdout(&list).contains("metered"), "{}", stdout(&list));

    let written = apply(&server, &file, &[]);
    assert_eq!(written.status.code(), Some(0), "{}", stderr(&written));
    assert!(
        stdout(&written).contains("now version 1"),
        "{}",
        stdout(&written)
    );
    let again = apply(&server, &file, &[]);
    assert!(
        stdout(&again).contains("= metered (unchanged)"),
        "{}",
        stdout(&again)
    );

    std::fs::write(&file, PLANS.replace("included = \"3\"", "included = \"5\"")).unwrap();
    let changed = apply(&server, &file, &[]);
    let text = stdout(&changed);
    assert!(
        text.contains("~ metered (changed, now version 2)"),
        "{text}"
    );
    assert!(text.contains("~ quotas:"), "{text}");

    let show = cli(
        &server,
        server.admin_token.as_deref(),
        &[
            "plan",
            "show",
            "metered",
            "--version",
            "1",
            "--output",
            "json",
        ],
    );
    let value: Value = serde_json::from_str(&stdout(&show)).unwrap();
    assert_eq!(value["quotas"][0]["included"], json!("3"));

    // Bad usage: an unknown field, invalid TOML, a missing file; a quota on an undeclared
    // metric is refused by the server, naming the field (exit 2 too).
    std::fs::write(&file, PLANS.replace("currency", "currencyy")).unwrap();
    let bad = apply(&server, &file, &[]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("currencyy"), "{}", stderr(&bad));
    std::fs::write(&file, "[plans.x\n").unwrap();
    assert_eq!(apply(&server, &file, &[]).status.code(), Some(2));
    let missing = apply(&server, &dir.path().join("nope.toml"), &[]);
    assert_eq!(missing.status.code(), Some(2));
    std::fs::write(
        &file,
        PLANS.replace("metric = \"requests\"", "metric = \"gpu_seconds\""),
    )
    .unwrap();
    let undeclared = apply(&server, &file, &[]);
    assert_eq!(undeclared.status.code(), Some(2), "{}", stderr(&undeclared));
    assert!(
        stderr(&undeclared).contains("HTTP 400"),
        "{}",
        stderr(&undeclared)
    );
}

/// nginx in front of two apps: `/app/` needs the `requests` quota, `/sso/` the `sso` feature.
/// `auth_request` only passes 2xx, 401 and 403 on; any other answer of the check (our 429) is
/// a 500, so `error_page 500` asks the check again in a named location, whose answer (429 with
/// `Retry-After`) the client then gets as it is.
fn nginx_config(prefix: &std::path::Path, port: u16, upstream: &str) -> String {
    let app = |path: &str, query: &str| {
        format!(
            "    location = /_auth{path} {{\n      internal;\n      proxy_pass http://{upstream}/v1/authz/check?{query};\n\
               proxy_pass_request_body off;\n      proxy_set_header Content-Length \"\";\n    }}\n\
             location @denied{path} {{\n      rewrite ^ /v1/authz/check?{query} break;\n      proxy_pass http://{upstream};\n    }}\n\
             location /{path}/ {{\n      auth_request /_auth{path};\n      error_page 500 = @denied{path};\n\
               rewrite ^ /healthz break;\n      proxy_pass http://{upstream};\n    }}\n"
        )
    };
    format!(
        "worker_processes 1;\ndaemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n\
           fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n{}{}  }}\n}}\n",
        app("app", "metric=requests"),
        app("sso", "feature=sso"),
        prefix = prefix.display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_answers_feature_and_quota_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let admin = server.admin_token.clone().unwrap();
    let file = dir.path().join("plans.toml");
    std::fs::write(&file, PLANS).unwrap();
    assert_eq!(apply(&server, &file, &[]).status.code(), Some(0));
    let created = cli(
        &server,
        Some(&admin),
        &[
            "tenant", "create", "acme", "--name", "Acme", "--plan", "metered", "--output", "json",
        ],
    );
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    let key = serde_json::from_str::<Value>(&stdout(&created)).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();

    let port = free_port();
    let prefix = dir.path().join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let conf = prefix.join("nginx.conf");
    let upstream = server.url.trim_start_matches("http://").to_owned();
    std::fs::write(&conf, nginx_config(&prefix, port, &upstream)).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let nginx = crate::nginx::start_nginx(&prefix, &conf, &format!("{base}/app/x")).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).bearer_auth(&key).send();

    assert_eq!(get("/app/orders").await.unwrap().status().as_u16(), 200);
    assert_eq!(
        get("/sso/login").await.unwrap().status().as_u16(),
        403,
        "not entitled to sso"
    );

    // Three requests use up the hard quota of 3: the access path closes with 429.
    let events: Vec<Value> = (0..3).map(|i| event("acme", &format!("e{i}"))).collect();
    let sent = http
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(&admin)
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 200);
    let refused = get("/app/orders").await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    let retry_after: i64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=31 * 86_400).contains(&retry_after), "{retry_after}");

    // A top-up for this period reopens it.
    let output = cli(
        &server,
        Some(&admin),
        &["plan", "assign", "acme", "metered", "--reason", "no change"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let topped = http
        .post(format!("{}/v1/tenants/acme/quota-top-ups", server.url))
        .bearer_auth(&admin)
        .json(&json!({"metric": "requests", "quantity": "10", "reason": "incident"}))
        .send()
        .await
        .unwrap();
    assert_eq!(topped.status().as_u16(), 201);
    assert_eq!(get("/app/orders").await.unwrap().status().as_u16(), 200);
    drop(nginx);
}

/// README.md's catalog example applies as written.
#[test]
fn the_readme_catalog_example_applies() {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Plans, entitlements and quotas"))
        .expect("README.md has the catalog section");
    let toml = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a toml block");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let file = dir.path().join("plans.toml");
    std::fs::write(&file, toml).unwrap();
    let output = apply(&server, &file, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("+ pro (new, now version 1)"),
        "{}",
        stdout(&output)
    );
}
