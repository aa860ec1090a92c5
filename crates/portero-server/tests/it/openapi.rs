//! `/admin/openapi.json` describes the routes the server really has, and every admin answer,
//! an unknown route or method included, is JSON.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::*;

/// (path, method) of every route the admin router declares, read from its source.
fn declared_admin_routes() -> BTreeSet<(String, String)> {
    let source = include_str!("../../src/lib.rs");
    let mut routes = BTreeSet::new();
    for line in source.lines().map(str::trim).filter(|l| l.starts_with(".route(\"/admin/")) {
        let path = line.trim_start_matches(".route(\"").split('"').next().unwrap().to_owned();
        if path.contains("{*") {
            continue; // the catch-all that answers unknown routes
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            if line.contains(&format!(" {method}(")) || line.contains(&format!(".{method}(")) {
                routes.insert((path.clone(), method.to_owned()));
            }
        }
    }
    routes
}

async fn document(server: &Server) -> Value {
    let response = server.http.get(server.url("/admin/openapi.json")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let server = Server::start().await;
    let doc = document(&server).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((path.clone(), method.clone()));
        }
    }
    let documented_admin: BTreeSet<_> = documented.iter().filter(|(p, _)| p.starts_with("/admin/")).cloned().collect();
    assert_eq!(documented_admin, declared_admin_routes(), "the document and the router list the same admin routes");

    // Every documented route answers as a route (not the unknown-route or wrong-method answer).
    for (path, method) in &documented {
        let concrete = path.replace("{id}", "no-such-id").replace("{kid}", "no-such-kid");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request = server.http.request(method.clone(), server.url(&concrete));
        request = if path.starts_with("/admin/") {
            request.bearer_auth(ADMIN_TOKEN).json(&serde_json::json!({}))
        } else {
            request.header("Content-Type", "application/x-www-form-urlencoded").body("")
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(!body.contains("no admin route"), "{method} {path} is documented but not routed: {body}");
        if path.starts_with("/admin/") && !body.is_empty() {
            serde_json::from_str::<Value>(&body).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {body}"));
        }
    }
}

#[tokio::test]
async fn unknown_admin_routes_and_methods_answer_json() {
    let server = Server::start().await;
    let (status, _, body) = send(server.http.get(server.url("/admin/nope")).bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{body}");
    let (status, _, body) = send(server.http.put(server.url("/admin/tenants")).bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!((status, body["error"].as_str()), (405, Some("invalid_request")), "{body}");
    let (status, _, body) = send(server.http.get(server.url("/admin/nope"))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "the token comes first: {body}");
}
