//! The response cache decides privacy by what ran: private fields reached through named,
//! nested and inline fragments, interfaces, aliases, connections and batches are never stored
//! under the public key nor sent as `Cache-Control: public`. Also: one ETag for a miss and its
//! hits, fields in selection order, keys from the parsed document, invalidation by renames.

use serde_json::{Value, json};

use crate::helpers::{TestApp, data, spawn_app};

/// Sends `query` as `token`'s user; (X-Cache, Cache-Control, body).
async fn send(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> (String, String, Value) {
    let response = app.post_as(token, query, variables, &[]).await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, control) = (header("x-cache"), header("cache-control"));
    (status, control, response.json().await.expect("json"))
}

/// The global id of `token`'s user.
async fn viewer_id(app: &TestApp, token: &str) -> String {
    let response = app
        .gql_as(Some(token), "{ viewer { id } }", json!({}))
        .await;
    data(&response)["viewer"]["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

#[tokio::test]
async fn private_fields_behind_fragments_interfaces_and_aliases_stay_private() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let id = viewer_id(&app, &alice).await;
    let documents = [
        // A named fragment on an interface.
        "query($id: ID!) { node(id: $id) { id ... on User { username } ...P } } fragment P on User { email following }",
        // Nested named fragments.
        "query($id: ID!) { node(id: $id) { ...A } } fragment A on Node { id ...B } fragment B on User { email }",
        // An inline fragment.
        "query($id: ID!) { node(id: $id) { ... on User { email } } }",
        // An alias.
        "query($id: ID!) { node(id: $id) { ... on User { mail: email } } }",
    ];
    for document in documents {
        let variables = json!({ "id": id });
        let (_, control, owner) = send(&app, Some(&alice), document, variables.clone()).await;
        let text = owner.to_string();
        assert!(text.contains("alice@example.com"), "{text}");
        assert!(control.starts_with("private"), "{document}: {control}");
        for other in [None, Some(bob.as_str())] {
            let (status, _, answer) = send(&app, other, document, variables.clone()).await;
            assert!(
                !answer.to_string().contains("alice@example.com"),
                "{document} leaked to {other:?}: {answer}"
            );
            assert_ne!(
                status, "HIT",
                "{document}: the owner's answer is not served to others"
            );
        }
    }
}

#[tokio::test]
async fn private_fields_inside_connections_stay_private() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Mine", &[]).await;
    app.gql_as(
        Some(&bob),
        "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { id } } }",
        json!({ "slug": slug }),
    )
    .await;
    app.gql_as(
        Some(&bob),
        "mutation { followUser(username: \"alice\") { user { id } } }",
        json!({}),
    )
    .await;
    let documents = [
        "{ articles { nodes { ...F } } } fragment F on Article { title favorited }",
        "{ articles { edges { node { author { ...G } } } } } fragment G on User { username following }",
    ];
    for document in documents {
        let (_, control, bobs) = send(&app, Some(&bob), document, json!({})).await;
        assert!(bobs.to_string().contains("true"), "{bobs}");
        assert!(control.starts_with("private"), "{document}: {control}");
        let (status, _, anonymous) = send(&app, None, document, json!({})).await;
        assert_ne!(status, "HIT");
        assert!(!anonymous.to_string().contains("true"), "{anonymous}");
    }
    // Public data selected alone is public.
    let (_, control, _) = send(
        &app,
        Some(&bob),
        "{ articles { nodes { title } } }",
        json!({}),
    )
    .await;
    assert_eq!(control, "public, max-age=60");
}

#[tokio::test]
async fn a_batch_is_never_cached() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let query = "{ viewer { email } }";
    let response = app
        .post_json(
            &json!([{ "query": query }, { "query": "{ __typename }" }]),
            &[("authorization", &format!("Bearer {alice}"))],
        )
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-cache"], "BYPASS");
    let (status, _, anonymous) = send(&app, None, query, json!({})).await;
    assert_eq!(status, "MISS");
    assert!(anonymous["data"]["viewer"].is_null());
}

/// `GET /graphql?query=...`; (status, ETag, body text).
async fn get(app: &TestApp, query: &str, if_none_match: Option<&str>) -> (u16, String, String) {
    let mut request = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", query)]);
    if let Some(etag) = if_none_match {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, etag, response.text().await.expect("text"))
}

#[tokio::test]
async fn a_miss_and_its_hits_share_one_etag_and_keep_the_selection_order() {
    let app = spawn_app().await;
    let token = app.register("writer").await;
    app.create_article(&token, "Ordered", &["x"]).await;
    let query = "{ tags { totalCount } articles { nodes { title slug } } }";
    let (status, miss_etag, miss) = get(&app, query, None).await;
    assert_eq!(status, 200);
    let (_, hit_etag, hit) = get(&app, query, None).await;
    assert_eq!(miss_etag, hit_etag);
    let (status, _, _) = get(&app, query, Some(&miss_etag)).await;
    assert_eq!(status, 304, "the first ETag still matches");
    for body in [&miss, &hit] {
        let position = |key: &str| body.find(key).unwrap_or_else(|| panic!("{key} in {body}"));
        assert!(position("\"data\"") < position("\"extensions\""));
        assert!(position("\"tags\"") < position("\"articles\""), "{body}");
        assert!(position("\"title\"") < position("\"slug\""), "{body}");
        assert!(position("\"requestedQueryCost\"") < position("\"actualQueryCost\""));
    }
}

#[tokio::test]
async fn block_strings_that_differ_get_different_cache_entries() {
    let app = spawn_app().await;
    let register = |username: &'static str, email: &'static str| {
        let app = &app;
        async move {
            let response = app
                .gql(
                    "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                    json!({ "input": { "username": username, "email": email, "password": crate::helpers::PASSWORD } }),
                )
                .await;
            data(&response)["register"]["token"]
                .as_str()
                .expect("token")
                .to_owned()
        }
    };
    let three = register("x \" y   z", "three@example.com").await;
    let one = register("x \" y z", "one@example.com").await;
    for (token, bio) in [(&three, "three spaces"), (&one, "one space")] {
        app.gql_as(
            Some(token),
            "mutation($bio: String!) { updateViewer(input: { bio: $bio }) { user { id } } }",
            json!({ "bio": bio }),
        )
        .await;
    }
    let (_, _, first) = send(
        &app,
        None,
        "{ user(username: \"\"\"x \" y   z\"\"\") { bio } }",
        json!({}),
    )
    .await;
    assert_eq!(data(&first)["user"]["bio"], "three spaces");
    let (status, _, second) = send(
        &app,
        None,
        "{ user(username: \"\"\"x \" y z\"\"\") { bio } }",
        json!({}),
    )
    .await;
    assert_eq!(status, "MISS");
    assert_eq!(data(&second)["user"]["bio"], "one space");
}

#[tokio::test]
async fn renaming_a_user_invalidates_the_lists_filtered_by_their_name() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "By alice", &[]).await;
    app.gql_as(
        Some(&alice),
        "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { id } } }",
        json!({ "slug": slug }),
    )
    .await;
    for filter in ["author", "favoritedBy"] {
        let query = format!("{{ articles({filter}: \"alice\") {{ totalCount }} }}");
        let (_, _, before) = send(&app, None, &query, json!({})).await;
        assert_eq!(data(&before)["articles"]["totalCount"], 1);
        let (status, _, _) = send(&app, None, &query, json!({})).await;
        assert_eq!(status, "HIT");
    }
    app.gql_as(
        Some(&alice),
        "mutation { updateViewer(input: { username: \"alicia\" }) { user { id } } }",
        json!({}),
    )
    .await;
    for filter in ["author", "favoritedBy"] {
        let query = format!("{{ articles({filter}: \"alice\") {{ totalCount }} }}");
        let (status, _, after) = send(&app, None, &query, json!({})).await;
        assert_eq!(status, "MISS", "{filter}");
        assert_eq!(data(&after)["articles"]["totalCount"], 0, "{filter}");
    }
}

#[tokio::test]
async fn an_invalidation_completes_even_when_its_request_is_cancelled() {
    let Some(redis_url) = crate::helpers::test_redis_url() else {
        eprintln!("TEST_REDIS_URL is not set: in process, invalidation has no await to be cut at");
        return;
    };
    let proxy = crate::tcp_proxy::RedisProxy::start(&redis_url).await;
    let app = crate::helpers::spawn_app_with(|config| {
        config.redis.url = Some(proxy.url());
        config.redis.timeout_ms = 4_000;
        config.http.request_timeout_secs = 1;
        config.rate_limit.enabled = false;
    })
    .await;
    let writer = app.register("writer").await;
    app.create_article(&writer, "Before", &[]).await;
    let list = "{ articles { nodes { title } } }";
    let (_, _, first) = send(&app, None, list, json!({})).await;
    assert_eq!(
        data(&first)["articles"]["nodes"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(send(&app, None, list, json!({})).await.0, "HIT");

    // Redis hangs: the article commits, then its invalidation waits on Redis past the request's
    // one-second deadline, which cuts the request off.
    proxy.hang();
    // The first call finds its connection cut and reconnects, into the hung proxy.
    app.post_as(None, list, json!({}), &[]).await;
    let cut = app
        .post_as(
            Some(&writer),
            "mutation { createArticle(input: { title: \"After\", description: \"d\", body: \"b\" }) { article { slug } } }",
            json!({}),
            &[],
        )
        .await;
    assert_eq!(cut.status(), 503);
    proxy.resume();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut answered = false;
    for _ in 0..40 {
        let response = app.post_as(None, list, json!({}), &[]).await;
        if response.status() == 200 {
            let status = response.headers()["x-cache"]
                .to_str()
                .unwrap_or_default()
                .to_owned();
            let body: Value = response.json().await.expect("json");
            let titles = body["data"]["articles"]["nodes"].to_string();
            assert!(
                titles.contains("After"),
                "{status}: a stale list was served: {titles}"
            );
            if status != "BYPASS" {
                answered = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(answered, "the cache serves again once Redis is back");
}
