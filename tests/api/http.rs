//! The HTTP surface: GET queries, health, playground, the schema contract, request ids.

use serde_json::{Value, json};

use crate::helpers::{data, error_code, spawn_app};

#[tokio::test]
async fn queries_work_over_get_and_mutations_over_get_are_refused() {
    let app = spawn_app().await;
    let response = app.get_graphql("{ articles { totalCount } }").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(data(&body)["articles"]["totalCount"], 0);

    let mutation = app
        .get_graphql("mutation { register(input: {username: \"x\", email: \"x@example.com\", password: \"password123\"}) { token } }")
        .await;
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
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(health.json::<Value>().await.expect("json")["status"], "ok");

    let playground = app.get("/playground").await;
    assert_eq!(playground.status(), 200);
    let csp = playground.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    let page = playground.text().await.expect("text");
    assert!(
        page.contains("/playground/playground.js"),
        "the embedded bundle"
    );
    assert!(!page.contains("https://"), "nothing from another host");
    let script = app.get("/playground/playground.js").await;
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/javascript")
    );
    assert!(script.text().await.expect("text").contains("/graphql"));
    assert_eq!(app.get("/playground/nothing.js").await.status(), 404);
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

#[tokio::test]
async fn every_type_field_and_argument_is_described() {
    let app = spawn_app().await;
    let query = "{ __schema { types { name description fields { name description args { name description } } inputFields { name description } enumValues { name description } } } }";
    let response = app.gql(query, json!({})).await;
    let mut missing = Vec::new();
    for ty in data(&response)["__schema"]["types"]
        .as_array()
        .expect("types")
    {
        let name = ty["name"].as_str().expect("name");
        // Introspection types and the spec's built-in scalars are described by the GraphQL spec.
        if name.starts_with("__") || ["ID", "String", "Int", "Float", "Boolean"].contains(&name) {
            continue;
        }
        let described = |item: &Value| {
            item["description"]
                .as_str()
                .is_some_and(|text| !text.trim().is_empty())
        };
        if !described(ty) {
            missing.push(name.to_owned());
        }
        for list in ["fields", "inputFields", "enumValues"] {
            for item in ty[list].as_array().into_iter().flatten() {
                let item_name = format!("{name}.{}", item["name"].as_str().expect("name"));
                if !described(item) {
                    missing.push(item_name.clone());
                }
                for arg in item["args"].as_array().into_iter().flatten() {
                    if !described(arg) {
                        missing.push(format!(
                            "{item_name}({})",
                            arg["name"].as_str().expect("name")
                        ));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "undescribed: {missing:?}");
}

#[tokio::test]
async fn a_database_failure_reaches_the_client_as_an_opaque_internal_error() {
    use sea_orm::{ConnectionTrait, Database};

    let app = spawn_app().await;
    let token = app.register("author").await;
    let slug = app.create_article(&token, "Broken", &[]).await;
    let db = Database::connect(&app.database_url).await.expect("connect");
    db.execute_unprepared("DROP TABLE comments")
        .await
        .expect("drop a table");

    let response = app
        .gql(
            "query($slug: String!) { article(slug: $slug) { title comments { totalCount } } }",
            json!({ "slug": slug }),
        )
        .await;
    let error = &response["errors"][0];
    assert_eq!(error["extensions"]["code"], "INTERNAL_SERVER_ERROR");
    assert!(
        error["extensions"]["requestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(error["message"], "Internal server error");
    let text = response.to_string().to_lowercase();
    for leak in [
        "comments\\\"",
        "select",
        "sqlx",
        "no such table",
        "relation",
        "database",
    ] {
        assert!(!text.contains(leak), "{leak:?} leaked: {response}");
    }
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200, "the server keeps serving");
}

#[tokio::test]
async fn a_deprecated_field_works_is_reported_and_counted() {
    let app = spawn_app().await;
    let token = app.register("writer").await;
    let slug = app.create_article(&token, "Tagged", &["b", "a"]).await;
    let query = format!(r#"{{ article(slug: "{slug}") {{ tagList tags {{ name }} }} }}"#);
    let response = app.gql(&query, json!({})).await;
    assert_eq!(data(&response)["article"]["tagList"], json!(["a", "b"]));
    let deprecations = &response["extensions"]["deprecations"];
    assert_eq!(deprecations[0]["field"], "Article.tagList");
    assert!(
        deprecations[0]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("tags"))
    );
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("conduit_deprecated_field_uses_total{field=\"Article.tagList\"} 1"),
        "{metrics}"
    );
    // Its replacement is not reported.
    let current = app
        .gql(
            &format!(r#"{{ article(slug: "{slug}") {{ tags {{ name }} }} }}"#),
            json!({}),
        )
        .await;
    assert!(current["extensions"]["deprecations"].is_null());
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let app = crate::helpers::spawn_app_with(|config| config.server.introspection = false).await;
    let response = app.gql("{ __schema { types { name } } }", json!({})).await;
    assert_eq!(
        error_code(&response),
        "GRAPHQL_VALIDATION_FAILED",
        "{response}"
    );
    assert_eq!(app.get("/schema.graphql").await.status(), 404);
    let still_served = app.gql("{ articles { totalCount } }", json!({})).await;
    assert_eq!(data(&still_served)["articles"]["totalCount"], 0);
}
