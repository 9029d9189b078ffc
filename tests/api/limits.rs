//! Static limits: each one passes a request just under it and refuses one just over it with its
//! code, before any SQL runs; hostile documents are refused and leave the server healthy.

use serde_json::{Value, json};

use crate::helpers::{TestApp, cost, data, error_code, spawn_app, spawn_app_with};

/// Sends `query` and asserts it was refused with `code` (and `limit`, when given) without SQL.
async fn assert_refused(app: &TestApp, query: &str, code: &str, limit: Option<&str>) -> Value {
    let before = app.statements.get();
    let response = app.gql(query, json!({})).await;
    assert_eq!(error_code(&response), code, "{response}");
    if let Some(limit) = limit {
        assert_eq!(
            response["errors"][0]["extensions"]["limit"], limit,
            "{response}"
        );
    }
    assert!(response["data"].is_null(), "nothing ran: {response}");
    assert_eq!(app.statements.get(), before, "no SQL for a refused query");
    response
}

/// Sends `query` and asserts it ran without errors.
async fn assert_accepted(app: &TestApp, query: &str) -> Value {
    let response = app.gql(query, json!({})).await;
    data(&response);
    response
}

/// A query `depth` fields deep (at least 4): articles -> author -> articles ... -> title.
fn query_of_depth(depth: usize) -> String {
    // Each `articles(first: 1) { nodes { author {` adds 3 levels; `articles { nodes { title } }` ends with 3.
    let mut query = String::from("{ ");
    let mut level = 0;
    let mut closing = 0;
    while depth - level > 4 {
        query.push_str("articles(first: 1) { nodes { author { ");
        level += 3;
        closing += 3;
    }
    match depth - level {
        4 => query.push_str("articles(first: 1) { nodes { author { username } } }"),
        3 => query.push_str("articles(first: 1) { nodes { title } }"),
        2 => query.push_str("viewer { username }"),
        _ => query.push_str("__typename"),
    }
    query.push_str(&" }".repeat(closing));
    query.push_str(" }");
    query
}

#[tokio::test]
async fn depth_is_limited() {
    let app = spawn_app().await;
    assert_accepted(&app, &query_of_depth(15)).await;
    let response = assert_refused(&app, &query_of_depth(16), "QUERY_TOO_DEEP", Some("depth")).await;
    assert_eq!(response["errors"][0]["extensions"]["maximum"], 15);
    assert_eq!(response["errors"][0]["extensions"]["actual"], 16);
    let message = response["errors"][0]["message"].as_str().expect("message");
    assert!(
        message.contains("16") && message.contains("15"),
        "{message}"
    );
}

#[tokio::test]
async fn cost_is_limited_and_reported() {
    let app = spawn_app().await;
    // 1 + 37 * (1 node + 1 connection + 25 comments) = 1000 points.
    let at_limit = "{ articles(first: 37) { nodes { comments(first: 25) { nodes { body } } } } }";
    let accepted = assert_accepted(&app, at_limit).await;
    assert_eq!(cost(&accepted)["requestedQueryCost"], 1000);
    assert_eq!(
        cost(&accepted)["actualQueryCost"],
        1,
        "no articles yet: only the connection"
    );
    let over = "{ articles(first: 37) { nodes { comments(first: 25) { nodes { body } } } } viewer { username } }";
    let refused = assert_refused(&app, over, "QUERY_TOO_COMPLEX", Some("cost")).await;
    assert_eq!(refused["errors"][0]["extensions"]["actual"], 1001);
    assert_eq!(cost(&refused)["requestedQueryCost"], 1001);
    assert_eq!(cost(&refused)["actualQueryCost"], 0);
}

#[tokio::test]
async fn aliases_root_fields_and_selections_are_limited() {
    let app = spawn_app().await;
    let aliases = |n: usize| {
        let fields: Vec<String> = (0..n).map(|i| format!("a{i}: __typename")).collect();
        format!("{{ {} }}", fields.join(" "))
    };
    assert_accepted(&app, &aliases(30)).await;
    assert_refused(&app, &aliases(31), "QUERY_TOO_COMPLEX", Some("aliases")).await;

    let roots = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("t{i}: tags(first: 1) {{ totalCount }}"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    assert_accepted(&app, &roots(15)).await;
    assert_refused(&app, &roots(16), "QUERY_TOO_COMPLEX", Some("rootFields")).await;

    let selections = |n: usize| format!("{{ {} }}", "__typename ".repeat(n));
    assert_accepted(&app, &selections(500)).await;
    assert_refused(&app, &selections(501), "QUERY_TOO_COMPLEX", Some("fields")).await;
}

#[tokio::test]
async fn directives_per_field_are_limited() {
    let app = spawn_app_with(|config| config.limits.max_directives = 2).await;
    assert_accepted(&app, "{ __typename @include(if: true) @skip(if: false) }").await;
    assert_refused(
        &app,
        "{ __typename @include(if: true) @skip(if: false) @include(if: true) }",
        "QUERY_TOO_COMPLEX",
        Some("directives"),
    )
    .await;
}

#[tokio::test]
async fn document_size_and_tokens_are_limited() {
    let app = spawn_app().await;
    let padded = |bytes: usize| {
        let query = "{ __typename }\n#";
        format!("{query}{}", "x".repeat(bytes - query.len()))
    };
    assert_accepted(&app, &padded(65_536)).await;
    assert_refused(
        &app,
        &padded(65_537),
        "QUERY_TOO_COMPLEX",
        Some("documentBytes"),
    )
    .await;

    let app = spawn_app_with(|config| config.limits.max_tokens = 40).await;
    // `{`, n fields, `}`: n + 2 tokens.
    let tokens = |n: usize| format!("{{ {} }}", "__typename ".repeat(n));
    assert_accepted(&app, &tokens(38)).await;
    assert_refused(&app, &tokens(39), "QUERY_TOO_COMPLEX", Some("tokens")).await;
}

#[tokio::test]
async fn fragment_nesting_is_limited_and_cycles_are_refused() {
    let app = spawn_app().await;
    let chain = |n: usize| {
        let mut query = String::from("{ ...F1 }");
        for i in 1..n {
            query.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        query.push_str(&format!(" fragment F{n} on Query {{ __typename }}"));
        query
    };
    assert_accepted(&app, &chain(10)).await;
    assert_refused(&app, &chain(11), "QUERY_TOO_DEEP", Some("fragmentDepth")).await;
    let cycle = "{ ...A } fragment A on Query { articles { nodes { ...B } } } fragment B on Article { author { ...C } } fragment C on User { articles { nodes { ...B } } }";
    let refused = assert_refused(&app, cycle, "QUERY_TOO_DEEP", Some("fragmentDepth")).await;
    let message = refused["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains("B -> C -> B"), "{message}");
}

#[tokio::test]
async fn batches_are_limited() {
    let app = spawn_app().await;
    let batch = |n: usize| Value::Array(vec![json!({ "query": "{ __typename }" }); n]);
    let accepted = app.post_json(&batch(10), &[]).await;
    assert_eq!(accepted.status(), 200);
    let responses: Value = accepted.json().await.expect("json");
    assert_eq!(responses.as_array().map(Vec::len), Some(10));
    assert_eq!(responses[9]["data"]["__typename"], "Query");

    let refused = app.post_json(&batch(11), &[]).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX");
    assert_eq!(body["errors"][0]["extensions"]["limit"], "batchSize");
}

#[tokio::test]
async fn first_above_100_is_bad_user_input_before_any_sql() {
    let app = spawn_app().await;
    assert_accepted(&app, "{ articles(first: 100) { totalCount } }").await;
    let refused = assert_refused(
        &app,
        "{ articles(first: 101) { totalCount } }",
        "BAD_USER_INPUT",
        None,
    )
    .await;
    assert!(refused["errors"][0]["extensions"]["fields"]["first"].is_string());
    // Through a variable, deep inside the query, too.
    let before = app.statements.get();
    let response = app
        .gql(
            "query($n: Int) { articles(first: 1) { nodes { comments(first: $n) { totalCount } } } }",
            json!({ "n": 100_000 }),
        )
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT");
    assert_eq!(app.statements.get(), before);
}

#[tokio::test]
async fn the_full_introspection_query_runs_under_the_default_limits() {
    let app = spawn_app().await;
    let query = include_str!("fixtures/introspection.graphql");
    let response = app
        .post_json(
            &json!({ "query": query, "operationName": "IntrospectionQuery" }),
            &[],
        )
        .await;
    let body: Value = response.json().await.expect("json");
    let types = data(&body)["__schema"]["types"].as_array().expect("types");
    assert!(types.iter().any(|ty| ty["name"] == "Article"));
    assert!(cost(&body)["requestedQueryCost"].as_u64() < Some(10));

    // Nesting introspection lists to blow the response up is refused.
    assert_refused(
        &app,
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
        "QUERY_TOO_DEEP",
        Some("introspectionDepth"),
    )
    .await;
}

#[tokio::test]
async fn hostile_documents_are_refused_and_the_server_stays_healthy() {
    let app = spawn_app().await;
    let expensive =
        "articles(first: 100) { nodes { author { articles(first: 100) { nodes { title } } } } }";
    let aliases: Vec<String> = (0..500).map(|i| format!("a{i}: {expensive}")).collect();
    assert_refused(
        &app,
        &format!("{{ {} }}", aliases.join(" ")),
        "QUERY_TOO_COMPLEX",
        None,
    )
    .await;
    assert_refused(
        &app,
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        "QUERY_TOO_DEEP",
        None,
    )
    .await;
    let deep = format!(
        "{{ {}title{} }}",
        "articles { nodes { author { ".repeat(50),
        " } } }".repeat(50)
    );
    assert_refused(&app, &deep, "QUERY_TOO_DEEP", None).await;
    let braces = format!("{}{}", "{ a ".repeat(100_000), "}".repeat(100_000));
    let response = app.post_json(&json!({ "query": braces }), &[]).await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert_refused(
        &app,
        "{ articles(first: 100000) { nodes { title } } }",
        "BAD_USER_INPUT",
        None,
    )
    .await;

    let batch = Value::Array(vec![json!({ "query": "{ __typename }" }); 500]);
    assert_eq!(app.post_json(&batch, &[]).await.status(), 400);

    let huge = vec![b' '; 5 * 1024 * 1024];
    let too_large = app.post_bytes(huge, "application/json").await;
    assert_eq!(too_large.status(), 413);
    let body: Value = too_large.json().await.expect("json");
    assert_eq!(error_code(&body), "PAYLOAD_TOO_LARGE");

    for (bytes, content_type, status) in [
        (
            b"{\"query\": \"\xff\xfe\"}".to_vec(),
            "application/json",
            400,
        ),
        (b"42".to_vec(), "application/json", 400),
        (b"[1, 2]".to_vec(), "application/json", 400),
        (b"\"{ __typename }\"".to_vec(), "application/json", 400),
        (b"{\"query\": ".to_vec(), "application/json", 400),
        (b"{}".to_vec(), "application/json", 400),
        (b"{ __typename }".to_vec(), "text/plain", 415),
    ] {
        let response = app.post_bytes(bytes.clone(), content_type).await;
        assert_eq!(
            response.status(),
            status,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let body: Value = response.json().await.expect("a JSON error");
        let message = body["errors"][0]["message"].as_str().expect("a message");
        assert!(!message.is_empty());
        assert!(body["errors"][0]["extensions"]["code"].is_string());
    }

    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    assert_accepted(&app, "{ articles { totalCount } }").await;
}
