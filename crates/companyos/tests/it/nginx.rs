//! Forward auth behind a real nginx `auth_request` (issue 6): an active tenant's key passes, a
//! suspended tenant's key gets 403, an unknown key 401. nginx is installed by `.ci/run`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Server, cli, free_port, tenant};

fn nginx_binary() -> String {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nginx is required (.ci/run installs nginx-light)")
        .to_owned()
}

/// An nginx started for a test, stopped when dropped.
pub struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts nginx with its `prefix` folder and `conf` file, and waits (20 s at most) until
/// `probe_url` answers.
pub async fn start_nginx(prefix: &Path, conf: &Path, probe_url: &str) -> Nginx {
    let nginx = Nginx(
        Command::new(nginx_binary())
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(probe_url).send().await.is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nginx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_admits_active_tenants_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let key = tenant(&server, "acme");
    let upstream = server.url.trim_start_matches("http://").to_owned();
    let port = free_port();
    let prefix = dir.path().join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let config = format!(
        "worker_processes 1;\ndaemon off;\npid {pid};\nerror_log {prefix}/logs/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n\
           fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n\
             location = /_companyos_auth {{\n      internal;\n      proxy_pass http://{upstream}/v1/authz/check;\n\
               proxy_pass_request_body off;\n      proxy_set_header Content-Length \"\";\n    }}\n\
             location /app/ {{\n      auth_request /_companyos_auth;\n      auth_request_set $tenant $upstream_http_x_tenant_id;\n\
               add_header X-Tenant $tenant always;\n      rewrite ^ /healthz break;\n      proxy_pass http://{upstream};\n    }}\n  }}\n}}\n",
        pid = prefix.join("nginx.pid").display(),
        prefix = prefix.display(),
    );
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, config).unwrap();
    let url = format!("http://127.0.0.1:{port}/app/orders");
    let nginx = start_nginx(&prefix, &conf, &url).await;
    let http = reqwest::Client::new();
    let get = |token: Option<String>| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let mut request = http.get(&url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let tenant = response
                .headers()
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (response.status().as_u16(), tenant)
        }
    };
    let (status, tenant_header) = get(Some(key.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(
        tenant_header, "acme",
        "nginx got the tenant from X-Tenant-Id"
    );
    assert_eq!(get(Some("cos_tk_unknown".to_owned())).await.0, 401);
    assert_eq!(get(None).await.0, 401);
    let admin = server.admin_token.clone().unwrap();
    let output = cli(
        &server,
        Some(&admin),
        &["tenant", "suspend", "acme", "--reason", "unpaid"],
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        get(Some(key.clone())).await.0,
        403,
        "a suspended tenant is refused at once"
    );
    cli(
        &server,
        Some(&admin),
        &["tenant", "reactivate", "acme", "--reason", "paid"],
    );
    assert_eq!(get(Some(key)).await.0, 200);
    drop(nginx);
}
