//! Subscriptions over a WebSocket (`graphql-transport-ws`) and Server-Sent Events: events after
//! commits only, filters, each subscriber's own private fields, the same protections as queries,
//! the caps, slow consumers, token expiry and fan-out across instances.

use std::time::Duration;

use serde_json::{Value, json};

use super::helpers::{TestApp, data, error_code, spawn_app, spawn_app_with, test_redis_url};
use super::realtime_client::{EventStream, RawFrame, Received, Socket};
use crate::tcp_proxy::RedisProxy;

const COMMENT_ADDED: &str = "subscription($slug: String!) { commentAdded(slug: $slug) { id body author { username following } article { slug } } }";
const ARTICLE_CHANGED: &str = "subscription($slug: String!) { articleChanged(slug: $slug) { slug deleted article { slug title favorited favoritesCount author { username following } } } }";
const ARTICLE_PUBLISHED: &str = "subscription($tag: String, $author: String) { articlePublished(tag: $tag, author: $author) { slug title tags { name } author { username } } }";

/// A moment for a subscription sent just now to be open on the server (subscribing sends no
/// acknowledgement in the protocol).
/// Waits until `app` follows at least `open` subscriptions (its `/metrics` counts one once it
/// listens for changes): whatever commits after that reaches them.
async fn settle_on(app: &TestApp, open: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        let active = metrics
            .lines()
            .find_map(|line| line.strip_prefix("conduit_subscriptions_active "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if active >= open as f64 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{active} subscriptions open, not {open}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn favorite(app: &TestApp, token: &str, slug: &str) -> Value {
    app.gql_as(
        Some(token),
        "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { favoritesCount } } }",
        json!({ "slug": slug }),
    )
    .await
}

#[tokio::test]
async fn a_comment_reaches_the_subscribers_of_its_article_after_it_commits() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let reader = app.register("reader").await;
    let slug = app.create_article(&author, "Followed", &[]).await;
    let other = app.create_article(&author, "Elsewhere", &[]).await;
    let mut socket = Socket::connect(&app, Some(&reader)).await;
    socket
        .subscribe("1", COMMENT_ADDED, json!({ "slug": slug }))
        .await;
    settle_on(&app, 1).await;

    app.add_comment(&author, &other, "not for this article")
        .await;
    app.add_comment(&author, &slug, "first!").await;

    let event = socket.next_of("1").await;
    let comment = &data(&event)["commentAdded"];
    assert_eq!(comment["body"], "first!");
    assert_eq!(comment["author"]["username"], "author");
    assert_eq!(comment["author"]["following"], false);
    assert_eq!(comment["article"]["slug"], slug.as_str());
    assert!(
        event["extensions"]["cost"]["actualQueryCost"]
            .as_u64()
            .is_some(),
        "{event}"
    );
    socket.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn subscribing_to_an_unknown_article_is_not_found() {
    let app = spawn_app().await;
    let mut socket = Socket::connect(&app, None).await;
    socket
        .subscribe("1", COMMENT_ADDED, json!({ "slug": "no-such-article" }))
        .await;
    let refused = socket.next_of("1").await;
    assert_eq!(error_code(&refused), "NOT_FOUND");
    socket.expect_complete("1").await;
}

#[tokio::test]
async fn published_articles_are_filtered_by_tag_and_author() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut socket = Socket::connect(&app, None).await;
    socket
        .subscribe("rust", ARTICLE_PUBLISHED, json!({ "tag": "rust" }))
        .await;
    socket
        .subscribe("bob", ARTICLE_PUBLISHED, json!({ "author": "bob" }))
        .await;
    settle_on(&app, 2).await;

    app.create_article(&alice, "Alice on Go", &["go"]).await;
    let by_alice = app.create_article(&alice, "Alice on Rust", &["rust"]).await;
    let by_bob = app.create_article(&bob, "Bob on Go", &["go"]).await;

    let mut seen = Vec::new();
    for _ in 0..2 {
        match socket.receive().await {
            Received::Message(message) if message["type"] == "next" => {
                let article = &message["payload"]["data"]["articlePublished"];
                seen.push((
                    message["id"].as_str().unwrap_or_default().to_owned(),
                    article["slug"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![("bob".to_owned(), by_bob), ("rust".to_owned(), by_alice)]
    );
    socket.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn each_subscriber_sees_its_own_private_fields() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let fan = app.register("fan").await;
    let stranger = app.register("stranger").await;
    let slug = app.create_article(&author, "Liked", &[]).await;
    data(
        &app.gql_as(
            Some(&fan),
            "mutation { followUser(username: \"author\") { user { following } } }",
            json!({}),
        )
        .await,
    );
    let mut fan_socket = Socket::connect(&app, Some(&fan)).await;
    let mut stranger_socket = Socket::connect(&app, Some(&stranger)).await;
    let mut anonymous_socket = Socket::connect(&app, None).await;
    for socket in [&mut fan_socket, &mut stranger_socket, &mut anonymous_socket] {
        socket
            .subscribe("1", ARTICLE_CHANGED, json!({ "slug": slug }))
            .await;
    }
    settle_on(&app, 3).await;

    data(&favorite(&app, &fan, &slug).await);

    let fans_view = fan_socket.next_of("1").await;
    let strangers_view = stranger_socket.next_of("1").await;
    let anonymous_view = anonymous_socket.next_of("1").await;
    let article = |view: &Value| data(view)["articleChanged"]["article"].clone();
    assert_eq!(article(&fans_view)["favorited"], true);
    assert_eq!(article(&fans_view)["author"]["following"], true);
    assert_eq!(article(&strangers_view)["favorited"], false);
    assert_eq!(article(&strangers_view)["author"]["following"], false);
    assert_eq!(article(&anonymous_view)["favorited"], false);
    for view in [&fans_view, &strangers_view, &anonymous_view] {
        assert_eq!(article(view)["favoritesCount"], 1);
        assert_eq!(data(view)["articleChanged"]["deleted"], false);
    }
}

#[tokio::test]
async fn a_deleted_article_is_announced_and_its_subscription_completes() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let slug = app.create_article(&author, "Short lived", &[]).await;
    let mut socket = Socket::connect(&app, None).await;
    socket
        .subscribe("1", ARTICLE_CHANGED, json!({ "slug": slug }))
        .await;
    settle_on(&app, 1).await;
    data(
        &app.gql_as(
            Some(&author),
            "mutation($slug: String!) { deleteArticle(slug: $slug) { deletedId } }",
            json!({ "slug": slug }),
        )
        .await,
    );
    let event = socket.next_of("1").await;
    assert_eq!(
        data(&event)["articleChanged"],
        json!({ "slug": slug, "deleted": true, "article": null })
    );
    socket.expect_complete("1").await;
}

#[tokio::test]
async fn failed_mutations_publish_nothing() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let intruder = app.register("intruder").await;
    let slug = app.create_article(&author, "Guarded", &[]).await;
    let mut socket = Socket::connect(&app, None).await;
    socket
        .subscribe("comments", COMMENT_ADDED, json!({ "slug": slug }))
        .await;
    socket
        .subscribe("changes", ARTICLE_CHANGED, json!({ "slug": slug }))
        .await;
    settle_on(&app, 2).await;

    let blank = app
        .gql_as(
            Some(&author),
            "mutation($slug: String!) { addComment(slug: $slug, input: { body: \"  \" }) { comment { id } } }",
            json!({ "slug": slug }),
        )
        .await;
    assert_eq!(error_code(&blank), "BAD_USER_INPUT");
    let forbidden = app
        .gql_as(
            Some(&intruder),
            "mutation($slug: String!) { updateArticle(slug: $slug, input: { title: \"Taken\" }) { article { slug } } }",
            json!({ "slug": slug }),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    socket.expect_silence(Duration::from_millis(500)).await;

    // A committed change still comes through, and it is the first event.
    data(&favorite(&app, &intruder, &slug).await);
    let event = socket.next_of("changes").await;
    assert_eq!(
        data(&event)["articleChanged"]["article"]["title"],
        "Guarded"
    );
}

#[tokio::test]
async fn the_websocket_applies_the_limits_of_http() {
    let app = spawn_app_with(|config| config.limits.max_depth = 3).await;
    let author = app.register("author").await;
    let slug = app.create_article(&author, "Deep", &[]).await;
    let mut socket = Socket::connect(&app, None).await;
    socket
        .subscribe(
            "deep",
            "subscription($slug: String!) { commentAdded(slug: $slug) { article { author { articles { nodes { slug } } } } } }",
            json!({ "slug": slug }),
        )
        .await;
    assert_eq!(error_code(&socket.next_of("deep").await), "QUERY_TOO_DEEP");
    socket.expect_complete("deep").await;

    socket
        .subscribe(
            "two",
            "subscription($slug: String!) { a: commentAdded(slug: $slug) { id } b: articleChanged(slug: $slug) { slug } }",
            json!({ "slug": slug }),
        )
        .await;
    assert_eq!(
        error_code(&socket.next_of("two").await),
        "GRAPHQL_VALIDATION_FAILED"
    );
    socket.expect_complete("two").await;

    // Queries and mutations over the socket pass the same stages and answer once.
    socket
        .subscribe("query", "{ article(slug: \"deep\") { title } }", json!({}))
        .await;
    assert_eq!(
        data(&socket.next_of("query").await)["article"]["title"],
        "Deep"
    );
    socket.expect_complete("query").await;
}

#[tokio::test]
async fn trusted_documents_mode_refuses_other_subscriptions_over_the_websocket() {
    let dir = tempfile::tempdir().expect("a directory");
    let manifest = dir.path().join("trusted.json");
    let trusted = "subscription Trusted($slug: String!) { commentAdded(slug: $slug) { id } }";
    let id = {
        use sha2::{Digest, Sha256};
        Sha256::digest(trusted.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    };
    std::fs::write(
        &manifest,
        json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{ "id": id, "name": "Trusted", "type": "subscription", "body": trusted }]
        })
        .to_string(),
    )
    .expect("manifest written");
    let app = spawn_app_with(|config| config.persisted.trusted_documents = Some(manifest)).await;
    let mut socket = Socket::connect(&app, None).await;
    socket
        .subscribe(
            "1",
            "subscription($slug: String!) { articleChanged(slug: $slug) { slug } }",
            json!({ "slug": "any" }),
        )
        .await;
    assert_eq!(
        error_code(&socket.next_of("1").await),
        "OPERATION_NOT_TRUSTED"
    );
    socket.expect_complete("1").await;

    // The manifest's own subscription runs.
    socket
        .subscribe("2", trusted, json!({ "slug": "no-such-article" }))
        .await;
    assert_eq!(error_code(&socket.next_of("2").await), "NOT_FOUND");
    socket.expect_complete("2").await;

    // Named by its `documentId` alone, as over HTTP.
    socket
        .send(json!({
            "id": "3",
            "type": "subscribe",
            "payload": { "documentId": format!("sha256:{id}"), "variables": { "slug": "no-such-article" } },
        }))
        .await;
    assert_eq!(error_code(&socket.next_of("3").await), "NOT_FOUND");
    socket.expect_complete("3").await;
    socket
        .send(json!({
            "id": "4",
            "type": "subscribe",
            "payload": { "documentId": "sha256:0000", "variables": {} },
        }))
        .await;
    let unknown = socket.next_of("4").await;
    assert_eq!(
        error_code(&unknown),
        "PERSISTED_QUERY_NOT_FOUND",
        "{unknown}"
    );
    socket.expect_complete("4").await;
}

#[tokio::test]
async fn a_subscribe_with_the_id_of_a_running_operation_closes_with_4409() {
    let app = spawn_app().await;
    let token = app.register("twice").await;
    let slug = app.create_article(&token, "Twice", &[]).await;
    let mut socket = Socket::connect(&app, None).await;
    socket
        .subscribe("same", COMMENT_ADDED, json!({ "slug": slug }))
        .await;
    settle_on(&app, 1).await;
    // Once the first has completed, its id may be used again.
    socket
        .subscribe("done", "{ articles(first: 1) { totalCount } }", json!({}))
        .await;
    data(&socket.next_of("done").await);
    socket.expect_complete("done").await;
    socket
        .subscribe("done", "{ articles(first: 1) { totalCount } }", json!({}))
        .await;
    data(&socket.next_of("done").await);
    socket.expect_complete("done").await;
    // The running one may not be replaced.
    socket.subscribe("same", ARTICLE_PUBLISHED, json!({})).await;
    let (code, reason) = socket.expect_close().await;
    assert_eq!(code, 4409, "{reason}");
    assert_eq!(reason, "Subscriber for same already exists");

    // The same in a binary frame, under the older protocol's name for subscribe.
    let mut socket = Socket::connect(&app, None).await;
    socket
        .subscribe("again", COMMENT_ADDED, json!({ "slug": slug }))
        .await;
    settle_on(&app, 1).await;
    socket
        .send_binary(
            json!({ "id": "again", "type": "start", "payload": { "query": ARTICLE_PUBLISHED } }),
        )
        .await;
    assert_eq!(socket.expect_close().await.0, 4409);

    // An id too long for a close frame's reason still gets its close frame.
    let mut socket = Socket::connect(&app, None).await;
    let long = "x".repeat(300);
    for _ in 0..2 {
        socket
            .subscribe(&long, COMMENT_ADDED, json!({ "slug": slug }))
            .await;
    }
    let (code, reason) = socket.expect_close().await;
    assert_eq!(code, 4409, "{reason}");
    assert!(reason.len() <= 123, "{reason}");
}

#[tokio::test]
async fn a_message_that_is_not_a_protocol_message_closes_with_4400() {
    let app = spawn_app().await;
    let mut socket = Socket::connect(&app, None).await;
    socket
        .send(json!({ "type": "no-such-type", "id": "1" }))
        .await;
    let (code, reason) = socket.expect_close().await;
    assert_eq!(code, 4400, "{reason}");
    assert!(!reason.is_empty());
}

#[tokio::test]
async fn subscriptions_are_refused_over_plain_http() {
    let app = spawn_app().await;
    let response = app
        .gql("subscription { articlePublished { slug } }", json!({}))
        .await;
    assert_eq!(error_code(&response), "BAD_REQUEST");
}

#[tokio::test]
async fn an_invalid_token_closes_the_socket_with_4403() {
    let app = spawn_app().await;
    let mut socket = Socket::open(&app).await.expect("the upgrade succeeds");
    socket.init(Some("not-a-token")).await;
    let (code, _) = socket.expect_close().await;
    assert_eq!(code, 4403);
}

#[tokio::test]
async fn a_socket_without_connection_init_is_closed_with_4408() {
    let app = spawn_app_with(|config| config.realtime.init_timeout_secs = 1).await;
    let mut socket = Socket::open(&app).await.expect("the upgrade succeeds");
    let (code, _) = socket.expect_close().await;
    assert_eq!(code, 4408);
}

#[tokio::test]
async fn the_server_pings_and_closes_a_client_that_stopped_answering() {
    let app = spawn_app_with(|config| config.realtime.keepalive_secs = 1).await;
    // A client that answers the pings stays connected well past three intervals.
    let mut answering = Socket::connect(&app, None).await;
    answering.expect_silence(Duration::from_millis(4_500)).await;
    assert!(answering.pings >= 3, "pings: {}", answering.pings);
    answering
        .subscribe("1", "{ tags { totalCount } }", json!({}))
        .await;
    assert_eq!(data(&answering.next_of("1").await)["tags"]["totalCount"], 0);

    // One that sends nothing more after its init is closed after three intervals.
    let mut silent = Socket::connect(&app, None).await;
    let started = std::time::Instant::now();
    loop {
        match silent.receive_raw().await {
            Some(RawFrame::Close(code)) => {
                assert_eq!(code, 3008);
                break;
            }
            Some(_) => continue,
            None => panic!("no close frame"),
        }
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn the_caps_on_connections_and_subscriptions_hold() {
    let app = spawn_app_with(|config| {
        config.realtime.max_ws_per_client = 2;
        config.realtime.max_subscriptions_per_connection = 2;
    })
    .await;
    let mut first = Socket::connect(&app, None).await;
    let _second = Socket::connect(&app, None).await;
    match Socket::open(&app).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
        }
        Err(other) => panic!("expected 429, got {other}"),
        Ok(_) => panic!("a third connection was accepted"),
    }
    // An event stream counts against the same cap.
    let refused = EventStream::open(
        &app,
        None,
        "subscription { articlePublished { slug } }",
        json!({}),
    )
    .await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(error_code(&body), "TOO_MANY_CONNECTIONS");

    for id in ["1", "2"] {
        first
            .subscribe(id, "subscription { articlePublished { slug } }", json!({}))
            .await;
    }
    settle_on(&app, 2).await;
    first
        .subscribe("3", "subscription { articlePublished { slug } }", json!({}))
        .await;
    assert_eq!(
        error_code(&first.next_of("3").await),
        "TOO_MANY_SUBSCRIPTIONS"
    );
    first.expect_complete("3").await;
    // Completing one frees its place.
    first.send(json!({ "type": "complete", "id": "1" })).await;
    first.expect_complete("1").await;
    first
        .subscribe("4", "subscription { articlePublished { slug } }", json!({}))
        .await;
    first.expect_silence(Duration::from_millis(300)).await;

    // Closing a connection frees its place too.
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    Socket::connect(&app, None).await;
}

#[tokio::test]
async fn a_slow_consumer_is_dropped_with_1013_and_memory_stays_bounded() {
    // Budgets aside (each 90 kB event costs its size): the queue's bound in messages ends it.
    let app = spawn_app_with(|config| {
        config.realtime.buffer = 4;
        config.rate_limit.enabled = false;
    })
    .await;
    let author = app.register("author").await;
    let reader = app.register("reader").await;
    let body = "x".repeat(90_000);
    let created = app
        .gql_as(
            Some(&author),
            "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }",
            json!({ "input": { "title": "Heavy", "description": "big", "body": body } }),
        )
        .await;
    let slug = data(&created)["createArticle"]["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_owned();
    // A client with a small receive window that stops reading.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer size");
    let stream = socket.connect(app.addr).await.expect("connected");
    let mut slow = Socket::open_on(&app, stream).await;
    slow.init(Some(&reader)).await;
    match slow.receive().await {
        Received::Message(message) => assert_eq!(message["type"], "connection_ack"),
        other => panic!("expected the ack, got {other:?}"),
    }
    slow.subscribe(
        "1",
        "subscription($slug: String!) { articleChanged(slug: $slug) { article { body favoritesCount } } }",
        json!({ "slug": slug }),
    )
    .await;
    settle_on(&app, 1).await;
    for _ in 0..40 {
        data(&favorite(&app, &author, &slug).await);
        data(
            &app.gql_as(
                Some(&author),
                "mutation($slug: String!) { unfavoriteArticle(slug: $slug) { article { favoritesCount } } }",
                json!({ "slug": slug }),
            )
            .await,
        );
    }
    // The client reads again: some events, then the close.
    let mut events = 0;
    let code = loop {
        match slow.receive().await {
            Received::Message(message) if message["type"] == "next" => events += 1,
            Received::Message(other) => panic!("unexpected {other}"),
            Received::Closed(code, _) => break code,
            Received::Dropped => panic!("dropped without a close frame after {events} events"),
        }
    };
    assert_eq!(code, 1013);
    assert!(
        events < 80,
        "{events} events were buffered for a client that did not read"
    );
}

#[tokio::test]
async fn an_expiring_token_closes_the_socket() {
    let app = spawn_app().await;
    let token = app.register("brief").await;
    let tokens = conduit::auth::Tokens::new(
        super::helpers::JWT_SECRET.as_bytes(),
        Duration::from_secs(60),
    );
    let claims = tokens.verify(&token).expect("a valid token");
    let short = conduit::auth::Tokens::new(
        super::helpers::JWT_SECRET.as_bytes(),
        Duration::from_secs(2),
    )
    .issue(claims.user_id, claims.version)
    .expect("a token");
    let mut subscribed = Socket::connect(&app, Some(&short)).await;
    subscribed
        .subscribe("1", "subscription { articlePublished { slug } }", json!({}))
        .await;
    // A connection without any subscription is closed too.
    let mut idle = Socket::connect(&app, Some(&short)).await;
    let started = std::time::Instant::now();
    for socket in [&mut subscribed, &mut idle] {
        let (code, reason) = socket.expect_close().await;
        assert_eq!(code, 4403, "{reason}");
    }
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn signing_out_everywhere_ends_the_subscriptions_of_the_token() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let reader = app.register("reader").await;
    let slug = app.create_article(&author, "Watched", &[]).await;
    let mut socket = Socket::connect(&app, Some(&reader)).await;
    socket
        .subscribe("1", ARTICLE_CHANGED, json!({ "slug": slug }))
        .await;
    settle_on(&app, 1).await;
    data(
        &app.gql_as(
            Some(&reader),
            "mutation { signOutEverywhere { token } }",
            json!({}),
        )
        .await,
    );
    data(&favorite(&app, &author, &slug).await);
    let (code, _) = socket.expect_close().await;
    assert_eq!(code, 4403);
}

#[tokio::test]
async fn a_revoked_token_can_send_nothing_more_on_an_open_socket() {
    let app = spawn_app_with(|config| config.realtime.keepalive_secs = 1).await;
    let author = app.register("author").await;
    let slug = app.create_article(&author, "Kept", &[]).await;
    let mut busy = Socket::connect(&app, Some(&author)).await;
    let mut idle = Socket::connect(&app, Some(&author)).await;
    data(
        &app.gql_as(
            Some(&author),
            "mutation { signOutEverywhere { token } }",
            json!({}),
        )
        .await,
    );
    busy.subscribe(
        "1",
        "mutation($slug: String!) { deleteArticle(slug: $slug) { deletedId } }",
        json!({ "slug": slug }),
    )
    .await;
    // Refused, and the socket closes (any refusal message before the close frame is skipped).
    assert_eq!(busy.expect_close().await.0, 4403);
    // An idle socket learns of it at the next keep-alive.
    assert_eq!(idle.expect_close().await.0, 4403);
    let still_there = app
        .gql(
            "query($slug: String!) { article(slug: $slug) { title } }",
            json!({ "slug": slug }),
        )
        .await;
    assert_eq!(data(&still_there)["article"]["title"], "Kept");
}

#[tokio::test]
async fn each_event_is_charged_and_a_spent_budget_completes_the_subscription() {
    let app = spawn_app_with(|config| {
        config.rate_limit.capacity = 200;
        config.rate_limit.restore_rate = 1;
    })
    .await;
    let author = app.register("author").await;
    let other = app.register("other").await;
    let reader = app.register("reader").await;
    let slug = app.create_article(&author, "Budget", &[]).await;
    for n in 0..10 {
        app.add_comment(&author, &slug, &format!("comment {n}"))
            .await;
    }
    let mut socket = Socket::connect(&app, Some(&reader)).await;
    // Each event returns ten comments with their authors: it costs the reader far more than a
    // favorite costs the users who make the changes.
    socket
        .subscribe(
            "1",
            "subscription($slug: String!) { articleChanged(slug: $slug) { article { favoritesCount comments(first: 20) { nodes { body author { username } } } } } }",
            json!({ "slug": slug }),
        )
        .await;
    settle_on(&app, 1).await;
    let mut remaining = Vec::new();
    for round in 0..16 {
        let user = if round % 2 == 0 { &author } else { &other };
        let mutation = if (round / 2) % 2 == 0 {
            "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { slug } } }"
        } else {
            "mutation($slug: String!) { unfavoriteArticle(slug: $slug) { article { slug } } }"
        };
        data(
            &app.gql_as(Some(user), mutation, json!({ "slug": slug }))
                .await,
        );
        let event = socket.next_of("1").await;
        if event.get("errors").is_some() {
            assert_eq!(error_code(&event), "RATE_LIMITED");
            assert!(event["errors"][0]["extensions"]["retryAfterSeconds"].is_number());
            socket.expect_complete("1").await;
            assert!(
                remaining.len() >= 2,
                "too few events before the budget ran out: {remaining:?}"
            );
            // Every event was charged: the budget fell with each.
            assert!(
                remaining.windows(2).all(|pair: &[f64]| pair[1] < pair[0]),
                "{remaining:?}"
            );
            return;
        }
        assert!(
            event["extensions"]["cost"]["actualQueryCost"].as_u64() >= Some(20),
            "{event}"
        );
        remaining.push(
            event["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
                .as_f64()
                .expect("the budget is reported"),
        );
    }
    panic!("the budget never ran out: {remaining:?}");
}

#[tokio::test]
async fn events_stream_over_server_sent_events() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let reader = app.register("reader").await;
    let slug = app.create_article(&author, "Streamed", &[]).await;
    let response =
        EventStream::open(&app, Some(&reader), COMMENT_ADDED, json!({ "slug": slug })).await;
    let mut events = EventStream::of(response);
    settle_on(&app, 1).await;
    app.add_comment(&author, &slug, "over SSE").await;
    let event = events.next_payload().await;
    assert_eq!(data(&event)["commentAdded"]["body"], "over SSE");

    // A query over SSE answers once, then completes.
    let query = EventStream::open(
        &app,
        None,
        "{ article(slug: \"streamed\") { title } }",
        json!({}),
    )
    .await;
    let mut answer = EventStream::of(query);
    assert_eq!(
        data(&answer.next_payload().await)["article"]["title"],
        "Streamed"
    );
    assert_eq!(
        answer.next().await.map(|(name, _)| name).as_deref(),
        Some("complete")
    );

    // An unknown article: a next with NOT_FOUND, then complete.
    let unknown = EventStream::open(&app, None, COMMENT_ADDED, json!({ "slug": "nope" })).await;
    let mut refused = EventStream::of(unknown);
    assert_eq!(error_code(&refused.next_payload().await), "NOT_FOUND");
    assert_eq!(
        refused.next().await.map(|(name, _)| name).as_deref(),
        Some("complete")
    );
}

#[tokio::test]
async fn instances_share_events_through_redis_and_only_then() {
    let writer = spawn_app().await;
    let reader_app = writer.sibling().await;
    let author = writer.register("author").await;
    let slug = writer.create_article(&author, "Everywhere", &[]).await;
    let mut socket = Socket::connect(&reader_app, None).await;
    socket
        .subscribe("1", COMMENT_ADDED, json!({ "slug": slug }))
        .await;
    settle_on(&reader_app, 1).await;
    writer
        .add_comment(&author, &slug, "from the other instance")
        .await;
    if test_redis_url().is_some() {
        let event = socket.next_of("1").await;
        assert_eq!(
            data(&event)["commentAdded"]["body"],
            "from the other instance"
        );
    } else {
        // Without Redis, events stay on the instance that committed them (documented).
        socket.expect_silence(Duration::from_millis(800)).await;
        reader_app.add_comment(&author, &slug, "local").await;
        let event = socket.next_of("1").await;
        assert_eq!(data(&event)["commentAdded"]["body"], "local");
    }
}

#[tokio::test]
async fn while_redis_is_down_local_subscribers_still_get_local_events() {
    let Some(redis_url) = test_redis_url() else {
        // Without Redis every event is local: covered by the tests above.
        let app = spawn_app().await;
        let author = app.register("author").await;
        let slug = app.create_article(&author, "Local", &[]).await;
        let mut socket = Socket::connect(&app, None).await;
        socket
            .subscribe("1", COMMENT_ADDED, json!({ "slug": slug }))
            .await;
        settle_on(&app, 1).await;
        app.add_comment(&author, &slug, "local").await;
        assert_eq!(
            data(&socket.next_of("1").await)["commentAdded"]["body"],
            "local"
        );
        return;
    };
    let proxy = RedisProxy::start(&redis_url).await;
    let writer = spawn_app_with(|config| config.redis.url = Some(proxy.url())).await;
    let other = writer.sibling().await;
    let author = writer.register("author").await;
    let slug = writer.create_article(&author, "Outage", &[]).await;
    let mut local = Socket::connect(&writer, None).await;
    let mut remote = Socket::connect(&other, None).await;
    for socket in [&mut local, &mut remote] {
        socket
            .subscribe("1", COMMENT_ADDED, json!({ "slug": slug }))
            .await;
    }
    settle_on(&writer, 1).await;
    settle_on(&other, 1).await;

    proxy.stop();
    writer
        .add_comment(&author, &slug, "during the outage")
        .await;
    assert_eq!(
        data(&local.next_of("1").await)["commentAdded"]["body"],
        "during the outage"
    );
    // The other instance misses what was published meanwhile (documented).
    remote.expect_silence(Duration::from_millis(500)).await;

    // Once Redis is back, the instances listen again by themselves.
    proxy.resume();
    let mut delivered = None;
    for attempt in 0..40 {
        writer
            .add_comment(&author, &slug, &format!("after {attempt}"))
            .await;
        local.next_of("1").await;
        if let Some(Received::Message(message)) =
            remote.receive_within(Duration::from_millis(300)).await
        {
            delivered = Some(message);
            break;
        }
    }
    let message = delivered.expect("the other instance gets events again after Redis is back");
    assert!(
        message["payload"]["data"]["commentAdded"]["body"]
            .as_str()
            .is_some_and(|body| body.starts_with("after")),
        "{message}"
    );
}

#[tokio::test]
async fn stopping_the_server_closes_websockets_with_1012_and_ends_event_streams() {
    let mut app = spawn_app_with(|config| config.server.shutdown_grace_secs = 0).await;
    let mut socket = Socket::connect(&app, None).await;
    socket
        .subscribe("1", "subscription { articlePublished { slug } }", json!({}))
        .await;
    let response = EventStream::open(
        &app,
        None,
        "subscription { articlePublished { slug } }",
        json!({}),
    )
    .await;
    let mut events = EventStream::of(response);
    settle_on(&app, 2).await;
    app.stop();
    let (code, _) = socket.expect_close().await;
    assert_eq!(code, 1012);
    assert_eq!(events.next().await, None, "the event stream ends");
}

#[tokio::test]
async fn one_event_reads_its_rows_once_for_all_subscribers() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let slug = app.create_article(&author, "Crowded", &[]).await;
    let comment_statements = {
        let before = app.statements.get();
        app.add_comment(&author, &slug, "without subscribers").await;
        app.statements.get() - before
    };
    let mut sockets = Vec::new();
    for _ in 0..10 {
        let mut socket = Socket::connect(&app, None).await;
        socket
            .subscribe(
                "1",
                "subscription($slug: String!) { commentAdded(slug: $slug) { body author { username following } } }",
                json!({ "slug": slug }),
            )
            .await;
        sockets.push(socket);
    }
    settle_on(&app, 10).await;
    let before = app.statements.get();
    app.add_comment(&author, &slug, "for everyone").await;
    for socket in &mut sockets {
        assert_eq!(
            data(&socket.next_of("1").await)["commentAdded"]["author"]["username"],
            "author"
        );
    }
    // The new comment and its author are read once for the ten subscribers (the anonymous
    // subscribers' `following` needs no statement).
    let with_subscribers = app.statements.get() - before;
    assert!(
        with_subscribers <= comment_statements + 2,
        "{with_subscribers} statements with ten subscribers, {comment_statements} without"
    );
}
