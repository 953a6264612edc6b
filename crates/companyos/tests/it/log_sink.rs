//! A failing log sink never takes the server down: stderr on `/dev/full`, or on a pipe whose
//! reader has gone, and every request is still answered.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Server, cli, stderr, tenant};

/// One HTTP/1.1 request on a fresh connection; returns the status code.
fn status_of(url: &str, method: &str, path: &str, token: Option<&str>) -> u16 {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap_or("");
    status
        .parse()
        .unwrap_or_else(|_| panic!("no answer from the server: {response:?}"))
}

/// Requests that log (at debug level every request logs; a 401 also writes a warning).
fn exercise(server: &mut Server) {
    let admin = server.admin_token.clone().unwrap();
    for _ in 0..50 {
        assert_eq!(status_of(&server.url, "GET", "/healthz", None), 200);
        assert_eq!(
            status_of(&server.url, "GET", "/v1/tenants", Some("not-a-token")),
            401
        );
        assert_eq!(
            status_of(&server.url, "GET", "/v1/tenants", Some(&admin)),
            200
        );
    }
    tenant(server, "acme");
    let output = cli(server, Some(&admin), &["tenant", "show", "acme"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
    assert_eq!(server.terminate(), Some(0), "a clean shutdown");
}

#[test]
fn serve_with_stderr_on_dev_full_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut server = Server::start_with_stderr(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &[("COMPANYOS_LOG", "debug")],
        Stdio::from(full),
    );
    exercise(&mut server);
}

#[test]
fn serve_with_stderr_on_a_pipe_whose_reader_died_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_stderr(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &[("COMPANYOS_LOG", "debug")],
        Stdio::piped(),
    );
    // Closing the only read end: every later write to the server's stderr fails with EPIPE.
    drop(server.child.stderr.take());
    exercise(&mut server);
}
