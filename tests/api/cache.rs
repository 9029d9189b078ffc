//! The response cache: hits, private isolation, invalidation by every kind of mutation (seen from
//! a second instance when Redis is configured), expiry, ETags, single flight and Redis outages.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, data, spawn_app, spawn_app_with, test_redis_url};
use crate::tcp_proxy::RedisProxy;

/// Sends `query` as `token`'s user; the `X-Cache` header, `Cache-Control` and the JSON body.
async fn cached(app: &TestApp, token: Option<&str>, query: &str) -> (String, String, Value) {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    let response = app.post_json(&json!({ "query": query }), &headers).await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (x_cache, cache_control) = (header("x-cache"), header("cache-control"));
    (x_cache, cache_control, response.json().await.expect("json"))
}

#[tokio::test]
async fn a_repeated_query_is_a_hit_after_a_miss() {
    let app = spawn_app().await;
    let token = app.register("writer").await;
    app.create_article(&token, "Cached", &["rust"]).await;
    let query = "{ articles(first: 5) { nodes { title tags { name } author { username } } } }";
    let (first, cache_control, miss) = cached(&app, None, query).await;
    assert_eq!(first, "MISS");
    assert_eq!(cache_control, "public, max-age=60");
    let (second, _, hit) = cached(&app, None, query).await;
    assert_eq!(second, "HIT");
    assert_eq!(data(&hit), data(&miss));
    assert_eq!(data(&hit)["articles"]["nodes"][0]["title"], "Cached");
    // Another layout of the same document shares the entry.
    let reformatted = "# the newest\n{\n  articles(first: 5) {\n    nodes { title, tags { name }, author { username } }\n  }\n}";
    assert_eq!(cached(&app, None, reformatted).await.0, "HIT");
    // Every response reports its cost, hits too.
    assert!(hit["extensions"]["cost"]["requestedQueryCost"].as_u64() > Some(0));
}

#[tokio::test]
async fn a_private_response_never_reaches_another_viewer() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let viewer = "{ viewer { username email } }";
    let (status, cache_control, body) = cached(&app, Some(&alice), viewer).await;
    assert_eq!(status, "MISS");
    assert_eq!(cache_control, "private, max-age=60");
    assert_eq!(data(&body)["viewer"]["username"], "alice");
    assert_eq!(cached(&app, Some(&alice), viewer).await.0, "HIT");

    let (status, _, body) = cached(&app, Some(&bob), viewer).await;
    assert_eq!(status, "MISS");
    assert_eq!(data(&body)["viewer"]["username"], "bob");
    assert_eq!(data(&body)["viewer"]["email"], "bob@example.com");
    let (_, _, anonymous) = cached(&app, None, viewer).await;
    assert!(data(&anonymous)["viewer"].is_null());
    // The anonymous answer is not served to a signed-in viewer either.
    let (_, _, alice_again) = cached(&app, Some(&alice), viewer).await;
    assert_eq!(data(&alice_again)["viewer"]["username"], "alice");

    // A public response is shared by everyone.
    let profile = r#"{ user(username: "alice") { username bio } }"#;
    assert_eq!(cached(&app, Some(&alice), profile).await.0, "MISS");
    assert_eq!(cached(&app, Some(&bob), profile).await.0, "HIT");
    assert_eq!(cached(&app, None, profile).await.0, "HIT");
    // `following` depends on the viewer: private.
    let following = r#"{ user(username: "alice") { following } }"#;
    assert!(
        cached(&app, Some(&bob), following)
            .await
            .1
            .starts_with("private")
    );
}

/// Reads `query` on `reader` until it is cached, runs `mutation` as `token` on `writer`, then
/// checks that `reader` answers again from the database, with `pointer` now equal to `expected`.
async fn assert_invalidated(
    (writer, reader): (&TestApp, &TestApp),
    token: &str,
    query: &str,
    mutation: (&str, Value),
    (pointer, expected): (&str, Value),
) {
    cached(reader, None, query).await;
    let (status, _, _) = cached(reader, None, query).await;
    assert_eq!(status, "HIT", "{query} is cached before the write");
    let written = writer.gql_as(Some(token), mutation.0, mutation.1).await;
    data(&written);
    let (status, _, body) = cached(reader, None, query).await;
    assert_eq!(status, "MISS", "{query} after {}", mutation.0);
    let value = data(&body).pointer(pointer).cloned().unwrap_or(Value::Null);
    assert_eq!(value, expected, "{query} after {}: {body}", mutation.0);
}

#[tokio::test]
async fn every_kind_of_mutation_invalidates_what_it_changed_on_every_instance() {
    let writer = spawn_app().await;
    // With Redis, a second instance reads what the first one wrote; without, the same instance.
    let sibling = match test_redis_url() {
        Some(_) => Some(writer.sibling().await),
        None => None,
    };
    let reader = sibling.as_ref().unwrap_or(&writer);
    let apps = (&writer, reader);
    let alice = writer.register("alice").await;
    let bob = writer.register("bob").await;
    let slug = writer.create_article(&alice, "First", &["a"]).await;

    let article = format!(
        r#"{{ article(slug: "{slug}") {{ title description favoritesCount comments {{ totalCount }} }} }}"#
    );
    assert_invalidated(
        apps,
        &alice,
        "{ articles { totalCount } tags { nodes { name } } }",
        (
            "mutation { createArticle(input: {title: \"Second\", description: \"d\", body: \"b\", tags: [\"b\"]}) { article { slug } } }",
            json!({}),
        ),
        ("/articles/totalCount", json!(2)),
    )
    .await;
    assert_invalidated(
        apps,
        &alice,
        &article,
        (
            "mutation($slug: String!) { updateArticle(slug: $slug, input: {body: \"changed\", description: \"new\"}) { article { slug } } }",
            json!({ "slug": slug }),
        ),
        ("/article/description", json!("new")),
    )
    .await;
    assert_invalidated(
        apps,
        &bob,
        &article,
        (
            "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { slug } } }",
            json!({ "slug": slug }),
        ),
        ("/article/favoritesCount", json!(1)),
    )
    .await;
    assert_invalidated(
        apps,
        &bob,
        &article,
        (
            "mutation($slug: String!) { unfavoriteArticle(slug: $slug) { article { slug } } }",
            json!({ "slug": slug }),
        ),
        ("/article/favoritesCount", json!(0)),
    )
    .await;
    let comment = writer.add_comment(&bob, &slug, "Nice").await;
    let (_, _, body) = cached(reader, None, &article).await;
    assert_eq!(
        data(&body)["article"]["comments"]["totalCount"],
        1,
        "addComment"
    );
    assert_invalidated(
        apps,
        &bob,
        &article,
        (
            "mutation($id: ID!) { deleteComment(id: $id) { deletedId } }",
            json!({ "id": comment }),
        ),
        ("/article/comments/totalCount", json!(0)),
    )
    .await;
    let profile = r#"{ user(username: "alice") { bio followersCount } }"#;
    assert_invalidated(
        apps,
        &bob,
        profile,
        (
            "mutation { followUser(username: \"alice\") { user { username } } }",
            json!({}),
        ),
        ("/user/followersCount", json!(1)),
    )
    .await;
    assert_invalidated(
        apps,
        &bob,
        profile,
        (
            "mutation { unfollowUser(username: \"alice\") { user { username } } }",
            json!({}),
        ),
        ("/user/followersCount", json!(0)),
    )
    .await;
    assert_invalidated(
        apps,
        &alice,
        profile,
        (
            "mutation { updateViewer(input: {bio: \"Hello\"}) { user { bio } } }",
            json!({}),
        ),
        ("/user/bio", json!("Hello")),
    )
    .await;
    assert_invalidated(
        apps,
        &alice,
        r#"{ user(username: "carol") { username } }"#,
        (
            "mutation { register(input: {username: \"carol\", email: \"carol@example.com\", password: \"password123\"}) { token } }",
            json!({}),
        ),
        ("/user/username", json!("carol")),
    )
    .await;
    assert_invalidated(
        apps,
        &alice,
        &article,
        (
            "mutation($slug: String!) { deleteArticle(slug: $slug) { deletedId } }",
            json!({ "slug": slug }),
        ),
        ("/article", Value::Null),
    )
    .await;
}

#[tokio::test]
async fn a_follow_invalidates_the_followers_feed() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    app.create_article(&alice, "By Alice", &[]).await;
    let feed = "{ feed { totalCount } }";
    assert_eq!(cached(&app, Some(&bob), feed).await.0, "MISS");
    let (status, cache_control, body) = cached(&app, Some(&bob), feed).await;
    assert_eq!(status, "HIT");
    assert!(cache_control.starts_with("private"));
    assert_eq!(data(&body)["feed"]["totalCount"], 0);
    app.gql_as(
        Some(&bob),
        "mutation { followUser(username: \"alice\") { user { username } } }",
        json!({}),
    )
    .await;
    let (status, _, body) = cached(&app, Some(&bob), feed).await;
    assert_eq!(status, "MISS");
    assert_eq!(data(&body)["feed"]["totalCount"], 1);
}

#[tokio::test]
async fn entries_expire() {
    let app = spawn_app_with(|config| config.cache.max_ttl_secs = 1).await;
    let query = "{ articles { totalCount } }";
    assert_eq!(cached(&app, None, query).await.0, "MISS");
    assert_eq!(cached(&app, None, query).await.0, "HIT");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(cached(&app, None, query).await.0, "MISS");
}

#[tokio::test]
async fn mutations_and_errors_are_never_cached() {
    let app = spawn_app().await;
    let token = app.register("writer").await;
    let mutation =
        json!({ "query": "mutation { followUser(username: \"nobody\") { user { username } } }" });
    for _ in 0..2 {
        let response = app
            .post_json(&mutation, &[("authorization", &format!("Bearer {token}"))])
            .await;
        assert_eq!(response.headers()["x-cache"], "BYPASS");
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    // An error (the feed needs a viewer) is computed each time and not stored.
    for _ in 0..2 {
        let (status, cache_control, body) = cached(&app, None, "{ feed { totalCount } }").await;
        assert_eq!(status, "MISS");
        assert_eq!(cache_control, "no-store");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }
    // Refused requests carry the headers too.
    let refused = app
        .post_bytes(b"nonsense".to_vec(), "application/json")
        .await;
    assert_eq!(refused.headers()["x-cache"], "BYPASS");
    assert_eq!(refused.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn queries_over_get_carry_an_etag_and_answer_304_when_unchanged() {
    let app = spawn_app().await;
    let token = app.register("writer").await;
    let query = "{ articles { totalCount } }";
    let first = app.get_graphql(query).await;
    let etag = first.headers()["etag"].to_str().expect("ascii").to_owned();
    let get_with = |etag: String| {
        app.client
            .get(app.url("/graphql"))
            .query(&[("query", query)])
            .header("if-none-match", etag)
            .send()
    };
    let unchanged = get_with(etag.clone()).await.expect("sent");
    assert_eq!(unchanged.status(), 304);
    assert_eq!(unchanged.headers()["etag"], etag.as_str());
    assert_eq!(unchanged.headers()["x-cache"], "HIT");
    assert_eq!(
        unchanged.headers()["vary"],
        "accept, accept-encoding, authorization"
    );
    assert!(unchanged.bytes().await.expect("body").is_empty());

    app.create_article(&token, "New", &[]).await;
    let changed = get_with(etag.clone()).await.expect("sent");
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"], etag.as_str());
    let body: Value = changed.json().await.expect("json");
    assert_eq!(data(&body)["articles"]["totalCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_concurrent_misses_run_the_query_once() {
    // Twenty requests at once from one address: a budget that holds them all.
    let app = spawn_app_with(|config| config.rate_limit.capacity = 100_000).await;
    let token = app.register("writer").await;
    for n in 0..3 {
        app.create_article(&token, &format!("Article {n}"), &["t"])
            .await;
    }
    let query = "{ articles { nodes { title author { username } tags { name } } } }";
    // What one execution costs, measured with the cache off for this query's variant.
    let before = app.statements.get();
    app.gql(
        "{ articles { nodes { title author { username } tags { name } } } __typename }",
        json!({}),
    )
    .await;
    let one_execution = app.statements.get() - before;

    let before = app.statements.get();
    let requests = (0..20).map(|_| cached(&app, None, query));
    let results = futures::future::join_all(requests).await;
    assert_eq!(
        app.statements.get() - before,
        one_execution,
        "the query ran once"
    );
    let misses = results
        .iter()
        .filter(|(status, _, _)| status == "MISS")
        .count();
    assert_eq!(misses, 1);
    for (_, _, body) in &results {
        assert_eq!(
            data(body)["articles"]["nodes"].as_array().map(Vec::len),
            Some(3)
        );
    }
}

#[tokio::test]
async fn a_redis_outage_leaves_every_request_answered_and_nothing_stale() {
    let Some(redis_url) = test_redis_url() else {
        // Without Redis: a configured but unreachable Redis is an outage that never ends.
        let app =
            spawn_app_with(|config| config.redis.url = Some("redis://127.0.0.1:1".into())).await;
        let token = app.register("writer").await;
        let slug = app.create_article(&token, "Before", &[]).await;
        let query = format!(r#"{{ article(slug: "{slug}") {{ title }} }}"#);
        let (status, _, body) = cached(&app, None, &query).await;
        assert_eq!(status, "BYPASS");
        assert_eq!(data(&body)["article"]["title"], "Before");
        return;
    };
    let proxy = RedisProxy::start(&redis_url).await;
    let app = spawn_app_with(|config| config.redis.url = Some(proxy.url())).await;
    let token = app.register("writer").await;
    let slug = app.create_article(&token, "Before", &[]).await;
    let query = format!(r#"{{ article(slug: "{slug}") {{ title }} }}"#);
    assert_eq!(cached(&app, None, &query).await.0, "MISS");
    assert_eq!(cached(&app, None, &query).await.0, "HIT");

    proxy.stop();
    for _ in 0..5 {
        let (status, _, body) = cached(&app, None, &query).await;
        assert_eq!(status, "BYPASS");
        assert_eq!(data(&body)["article"]["title"], "Before");
    }
    // Writes still work; the entry cached before (still in Redis) must never be served again.
    let updated = app
        .gql_as(
            Some(&token),
            "mutation($slug: String!) { updateArticle(slug: $slug, input: {title: \"After\"}) { article { slug } } }",
            json!({ "slug": slug }),
        )
        .await;
    let new_slug = data(&updated)["updateArticle"]["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_owned();
    let (_, _, body) = cached(&app, None, &query).await;
    assert!(data(&body)["article"].is_null(), "the old slug is gone");

    proxy.resume();
    let new_query = format!(r#"{{ article(slug: "{new_slug}") {{ title }} }}"#);
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let (status, _, body) = cached(&app, None, &query).await;
        assert!(data(&body)["article"].is_null(), "nothing stale: {body}");
        let (_, _, body) = cached(&app, None, &new_query).await;
        assert_eq!(data(&body)["article"]["title"], "After");
        statuses.push(status);
        if statuses.ends_with(&["MISS".to_owned(), "HIT".to_owned()]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        statuses.ends_with(&["MISS".to_owned(), "HIT".to_owned()]),
        "caching resumes: {statuses:?}"
    );
}
