//! Automatic persisted queries and the trusted-documents mode.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, data, error_code, spawn_app, spawn_app_with, test_redis_url};

const QUERY: &str = "query Tags { tags(first: 5) { totalCount } }";

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn send(app: &TestApp, body: Value) -> Value {
    let response = app.post_json(&body, &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn an_unknown_hash_is_registered_with_its_query_then_runs_by_hash() {
    let app = spawn_app().await;
    let hash = sha256(QUERY);
    let miss = send(&app, json!({ "extensions": persisted(&hash) })).await;
    assert_eq!(error_code(&miss), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(miss["errors"][0]["message"], "PersistedQueryNotFound");

    let register = send(
        &app,
        json!({ "query": QUERY, "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(data(&register)["tags"]["totalCount"], 0);

    let hit = send(&app, json!({ "extensions": persisted(&hash) })).await;
    assert_eq!(data(&hit)["tags"]["totalCount"], 0);

    // GET, as Apollo Client sends hashed queries.
    let extensions = persisted(&hash).to_string();
    let get = app
        .client
        .get(app.url("/graphql"))
        .query(&[("extensions", extensions.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(get.status(), 200);
    let get: Value = get.json().await.expect("json");
    assert_eq!(data(&get)["tags"]["totalCount"], 0);

    // Registered queries are shared by the instances of a deployment when Redis is configured.
    let sibling = app.sibling().await;
    let elsewhere = send(&sibling, json!({ "extensions": persisted(&hash) })).await;
    if test_redis_url().is_some() {
        assert_eq!(data(&elsewhere)["tags"]["totalCount"], 0);
    } else {
        assert_eq!(error_code(&elsewhere), "PERSISTED_QUERY_NOT_FOUND");
    }
}

#[tokio::test]
async fn a_query_that_does_not_match_its_hash_is_refused_and_not_registered() {
    let app = spawn_app().await;
    let hash = sha256("{ __typename }");
    let mismatch = send(
        &app,
        json!({ "query": QUERY, "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(error_code(&mismatch), "BAD_REQUEST");
    let miss = send(&app, json!({ "extensions": persisted(&hash) })).await;
    assert_eq!(error_code(&miss), "PERSISTED_QUERY_NOT_FOUND");

    // A document over the limits is not registered either.
    let deep = format!(
        "{{ {}__typename{} }}",
        "viewer { ".repeat(20),
        " }".repeat(20)
    );
    let deep_hash = sha256(&deep);
    let refused = send(
        &app,
        json!({ "query": deep, "extensions": persisted(&deep_hash) }),
    )
    .await;
    assert_eq!(error_code(&refused), "QUERY_TOO_DEEP");
    let miss = send(&app, json!({ "extensions": persisted(&deep_hash) })).await;
    assert_eq!(error_code(&miss), "PERSISTED_QUERY_NOT_FOUND");
}

#[tokio::test]
async fn trusted_documents_mode_runs_only_the_manifest() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let manifest = dir.path().join("manifest.json");
    let listed = "query Tags { tags(first: 5) { totalCount } }";
    std::fs::write(
        &manifest,
        json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{ "id": sha256(listed), "name": "Tags", "type": "query", "body": listed }]
        })
        .to_string(),
    )
    .expect("manifest written");
    let app =
        spawn_app_with(|config| config.persisted.trusted_documents = Some(manifest.clone())).await;

    let by_hash = send(&app, json!({ "extensions": persisted(&sha256(listed)) })).await;
    assert_eq!(data(&by_hash)["tags"]["totalCount"], 0);
    let by_document_id = send(
        &app,
        json!({ "documentId": format!("sha256:{}", sha256(listed)) }),
    )
    .await;
    assert_eq!(data(&by_document_id)["tags"]["totalCount"], 0);
    let by_text = send(&app, json!({ "query": listed })).await;
    assert_eq!(data(&by_text)["tags"]["totalCount"], 0);

    let unlisted = "{ articles { totalCount } }";
    let refused = send(&app, json!({ "query": unlisted })).await;
    assert_eq!(error_code(&refused), "OPERATION_NOT_TRUSTED");
    let register = send(
        &app,
        json!({ "query": unlisted, "extensions": persisted(&sha256(unlisted)) }),
    )
    .await;
    assert_eq!(error_code(&register), "OPERATION_NOT_TRUSTED");
    let unknown = send(&app, json!({ "extensions": persisted(&sha256(unlisted)) })).await;
    assert_eq!(error_code(&unknown), "PERSISTED_QUERY_NOT_FOUND");
}
