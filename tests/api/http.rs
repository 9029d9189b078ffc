//! The HTTP surface: GET queries, health, playground, the schema contract, request ids.

use serde_json::{Value, json};

use crate::helpers::{data, spawn_app};

#[tokio::test]
async fn queries_work_over_get_and_mutations_over_get_are_refused() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ articles { totalCount } }")])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(data(&body)["articles"]["totalCount"], 0);

    let mutation = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "mutation { register(input: {username: \"x\", email: \"x@example.com\", password: \"password123\"}) { token } }")])
        .send()
        .await
        .expect("sent");
    assert_eq!(mutation.status(), 405);
    let users = app
        .gql(r#"{ user(username: "x") { username } }"#, json!({}))
        .await;
    assert!(
        data(&users)["user"].is_null(),
        "the refused mutation did not run"
    );
}

#[tokio::test]
async fn health_playground_and_request_ids_are_served() {
    let app = spawn_app().await;
    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(health.json::<Value>().await.expect("json")["status"], "ok");

    let playground = app
        .client
        .get(app.url("/playground"))
        .send()
        .await
        .expect("sent");
    assert_eq!(playground.status(), 200);
    let page = playground.text().await.expect("text");
    assert!(
        page.contains("graphiql") || page.contains("GraphiQL"),
        "a GraphiQL page"
    );
    assert!(page.contains("/graphql"));
}

#[tokio::test]
async fn errors_from_the_document_carry_codes() {
    let app = spawn_app().await;
    let parse = app.gql("{ articles { ", json!({})).await;
    assert_eq!(
        parse["errors"][0]["extensions"]["code"],
        "GRAPHQL_PARSE_FAILED"
    );
    let validation = app.gql("{ nothingHere }", json!({})).await;
    assert_eq!(
        validation["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
}

#[tokio::test]
async fn the_committed_schema_is_the_served_schema() {
    let app = spawn_app().await;
    let committed = include_str!("../../schema.graphql");
    let served = app
        .client
        .get(app.url("/schema.graphql"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert_eq!(
        served, committed,
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql` and review the change"
    );
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_conduit"))
        .arg("schema")
        .output()
        .expect("conduit schema runs");
    assert!(printed.status.success());
    assert_eq!(String::from_utf8_lossy(&printed.stdout), committed);
}
