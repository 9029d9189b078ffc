//! Pricing matches what executes: repeated fields run and are priced once, fields of one key that
//! cannot merge are refused, the limits count what runs, costs saturate, and failed mutations are
//! charged.

use serde_json::{Value, json};

use crate::helpers::{TestApp, cost, data, error_code, spawn_app, spawn_app_with};

/// Three articles with a comment each, by one author.
async fn seed(app: &TestApp) -> String {
    let token = app.register("writer").await;
    for n in 0..3 {
        let slug = app
            .create_article(&token, &format!("Article {n}"), &["t"])
            .await;
        app.add_comment(&token, &slug, "First!").await;
    }
    token
}

/// The response and the SQL statements it took.
async fn measured(app: &TestApp, query: &str) -> (Value, u64) {
    let before = app.statements.get();
    let response = app.gql(query, json!({})).await;
    (response, app.statements.get() - before)
}

#[tokio::test]
async fn a_field_repeated_120_times_is_priced_and_run_once() {
    let app = spawn_app_with(|config| config.cache.enabled = false).await;
    seed(&app).await;
    let one = "articles(first: 100) { totalCount nodes { body } }";
    let (single, single_sql) = measured(&app, &format!("{{ {one} }}")).await;
    assert_eq!(cost(&single)["requestedQueryCost"], 101);

    let repeated = format!("{{ {} }}", vec![one; 120].join(" "));
    let (response, sql) = measured(&app, &repeated).await;
    assert_eq!(data(&response), data(&single));
    assert_eq!(cost(&response)["requestedQueryCost"], 101, "{response}");
    assert_eq!(sql, single_sql, "the merged field ran once");

    // Through fragments and inline fragments alike.
    let spread = format!(
        "{{ {one} ...A ... on Query {{ {one} }} }} fragment A on Query {{ {one} ...B }} fragment B on Query {{ {one} }}"
    );
    let (response, sql) = measured(&app, &spread).await;
    assert_eq!(data(&response), data(&single));
    assert_eq!(cost(&response)["requestedQueryCost"], 101);
    assert_eq!(sql, single_sql);
}

#[tokio::test]
async fn a_cheap_decoy_cannot_hide_an_expensive_field_of_the_same_key() {
    let app = spawn_app().await;
    seed(&app).await;
    let decoys = [
        // The decoy first at every level, the expensive field behind an inline fragment.
        "{ articles(first: 1) { nodes { comments(first: 1) { nodes { body } } } } ... on Query { articles(first: 100) { nodes { comments(first: 1) { nodes { body } } ... on Article { comments(first: 100) { nodes { author { articles(first: 100) { nodes { title } } } } } } } } } }",
        // Behind a named fragment.
        "{ ...Expensive articles(first: 1) { totalCount } } fragment Expensive on Query { articles(first: 100) { totalCount } }",
        // Deeper, between sub-selections of merged fields.
        "{ a: articles(first: 1) { nodes { c: comments(first: 1) { totalCount } } } a: articles(first: 1) { nodes { c: comments(first: 100) { totalCount } } } }",
    ];
    for decoy in decoys {
        let before = app.statements.get();
        let response = app.gql(decoy, json!({})).await;
        assert_eq!(
            error_code(&response),
            "GRAPHQL_VALIDATION_FAILED",
            "{response}"
        );
        let message = response["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("differing arguments"), "{message}");
        assert_eq!(
            response["errors"][0]["locations"].as_array().map(Vec::len),
            Some(2),
            "both fields are located: {response}"
        );
        assert!(response.get("data").is_none());
        assert_eq!(app.statements.get(), before, "nothing ran");
    }
    // Different fields under one key, through an interface.
    let response = app
        .gql(
            "{ node(id: \"x\") { ... on Node { a: id } ... on User { a: username } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&response), "GRAPHQL_VALIDATION_FAILED");
    // Fields that never meet on one object may share a key.
    let response = app
        .gql(
            "{ node(id: \"x\") { ... on User { name: username } ... on Article { name: title } } }",
            json!({}),
        )
        .await;
    assert!(data(&response)["node"].is_null());
}

#[tokio::test]
async fn the_root_field_and_alias_limits_count_what_executes() {
    let app = spawn_app().await;
    // Forty occurrences of one aliased field run as one.
    let aliases = format!("{{ {} }}", vec!["a: __typename"; 40].join(" "));
    let response = app.gql(&aliases, json!({})).await;
    assert_eq!(data(&response)["a"], "Query");
    // Seventeen root fields, two of them skipped: fifteen run.
    let mut fields: Vec<String> = (0..15)
        .map(|i| format!("t{i}: tags(first: 1) {{ totalCount }}"))
        .collect();
    fields.push("s1: tags(first: 1) @skip(if: true) { totalCount }".into());
    fields.push("s2: tags(first: 1) @include(if: $no) { totalCount }".into());
    let query = format!("query($no: Boolean = false) {{ {} }}", fields.join(" "));
    let response = app.gql(&query, json!({})).await;
    assert_eq!(data(&response).as_object().map(|o| o.len()), Some(15));
    // With the second one included, sixteen run: over the limit.
    let response = app.gql(&query, json!({ "no": true })).await;
    assert_eq!(error_code(&response), "QUERY_TOO_COMPLEX");
    assert_eq!(response["errors"][0]["extensions"]["limit"], "rootFields");
    assert_eq!(response["errors"][0]["extensions"]["actual"], 16);
}

#[tokio::test]
async fn costs_saturate_instead_of_wrapping() {
    let app = spawn_app_with(|config| config.limits.max_depth = 100).await;
    let mut inner = String::from("title");
    for _ in 0..11 {
        inner = format!("comments(first: 100) {{ nodes {{ article {{ {inner} }} }} }}");
    }
    let query = format!("{{ articles(first: 100) {{ nodes {{ {inner} }} }} }}");
    let response = app.gql(&query, json!({})).await;
    assert_eq!(error_code(&response), "QUERY_TOO_COMPLEX", "{response}");
    assert_eq!(response["errors"][0]["extensions"]["limit"], "cost");
    assert_eq!(response["errors"][0]["extensions"]["actual"], u64::MAX);
}

#[tokio::test]
async fn failed_mutations_are_charged_their_cost() {
    let app = spawn_app().await;
    app.register("alice").await;
    let bob = app.register("bob").await;
    // Fifteen renames to a taken name: each fails, each is charged.
    let fields: Vec<String> = (0..15)
        .map(|i| {
            format!("u{i}: updateViewer(input: {{ username: \"alice\", bio: \"b{i}\" }}) {{ user {{ id }} }}")
        })
        .collect();
    let query = format!("mutation {{ {} }}", fields.join(" "));
    let response = app.gql_as(Some(&bob), &query, json!({})).await;
    assert_eq!(error_code(&response), "CONFLICT", "{response}");
    let requested = cost(&response)["requestedQueryCost"]
        .as_u64()
        .expect("cost");
    assert_eq!(requested, 15 * (10 + 2));
    assert_eq!(cost(&response)["actualQueryCost"], requested);

    // A successful mutation pays its mutation cost too.
    let response = app
        .gql_as(
            Some(&bob),
            "mutation { updateViewer(input: { bio: \"hi\" }) { user { id } } }",
            json!({}),
        )
        .await;
    data(&response);
    assert_eq!(cost(&response)["actualQueryCost"], 12);
}
