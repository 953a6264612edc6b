//! Malformed ids in paths, per route family: the status, the problem `type` and the fields the
//! answer names, pinned as the server answers them, so the typed path extractors (issue 15,
//! point 2) change nothing a client sees.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{BACKENDS, TestServer};

/// A route with malformed ids in its path, and what it answers an admin: status, problem type
/// and the fields named in `errors` (empty when the problem names none).
struct Case {
    method: Method,
    path: &'static str,
    status: u16,
    problem: &'static str,
    fields: &'static [&'static str],
}

const fn case(
    method: Method,
    path: &'static str,
    status: u16,
    problem: &'static str,
    fields: &'static [&'static str],
) -> Case {
    Case {
        method,
        path,
        status,
        problem,
        fields,
    }
}

/// One route of each family, with an id no newtype accepts (upper case, a `_`). Routes whose
/// service looks the id up answer 404 as for an unknown id, and some check their query or body
/// first: the typed extractors are used only where the answer stays the same.
fn cases() -> Vec<Case> {
    include!("malformed_ids_cases.rs")
}

fn fields_of(body: &Value) -> Vec<String> {
    body.get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.get("field").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn malformed_path_ids_answer_as_before() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let admin = server.admin();
        for case in cases() {
            let body = (case.method != Method::GET).then(|| json!({}));
            let (status, answer) = admin.call(case.method.clone(), case.path, body).await;
            let what = format!("{backend:?} {} {}: {answer}", case.method, case.path);
            assert_eq!(status.as_u16(), case.status, "{what}");
            assert_eq!(
                answer.get("type").and_then(Value::as_str),
                Some(format!("/problems/{}", case.problem).as_str()),
                "{what}"
            );
            assert_eq!(fields_of(&answer), case.fields, "{what}");
        }
        // Authentication comes before the path: no id is judged for an unknown caller.
        let (status, _) = server.anonymous().get("/v1/tenants/Bad_Id/plan").await;
        assert_eq!(status.as_u16(), 401, "{backend:?}");
        server.stop().await;
    }
}
