//! Attacks on the protections themselves: hostile login input and memory, persisted queries
//! registered by refused requests, a stuck circuit breaker, slow bodies, spoofed client addresses,
//! lookalike usernames, and `/metrics` kept off the public port.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{
    PASSWORD, TestApp, data, error_code, names_field, spawn_app, spawn_app_with, test_redis_url,
};
use crate::process::Server;
use crate::tcp_proxy::RedisProxy;

const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { token } }";

#[tokio::test]
async fn hostile_login_emails_leave_memory_bounded() {
    let server = Server::start_sqlite(&[("CONDUIT_LOG", "error")]).await;
    let client = reqwest::Client::new();
    let login = |email: String| {
        client
            .post(format!("{}/graphql", server.url))
            .json(&json!({ "query": LOGIN, "variables": { "input": { "email": email, "password": "whatever-it-is" } } }))
            .send()
    };
    let warm: Value = login(format!("{}@example.com", "w".repeat(256 * 1024)))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(error_code(&warm), "BAD_USER_INPUT", "{warm}");
    let before = server.rss();
    for i in 0..200 {
        let email = format!("{i}{}@example.com", "x".repeat(256 * 1024));
        let response: Value = login(email)
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        let code = error_code(&response);
        assert!(
            code == "BAD_USER_INPUT" || code == "RATE_LIMITED",
            "{response}"
        );
    }
    let growth = server.rss().saturating_sub(before);
    assert!(
        growth < 16 * 1024 * 1024,
        "200 logins with 256 KiB emails grew the server by {growth} bytes"
    );
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

#[tokio::test]
async fn persisted_queries_are_registered_only_after_admission() {
    let app = spawn_app_with(|config| config.rate_limit.capacity = 50).await;
    let first = "{ articles(first: 30) { nodes { title } } }";
    let second = "{ articles(first: 29) { nodes { slug } } }";
    let response = app
        .post_json(
            &json!([
                { "query": first, "extensions": persisted(&sha256(first)) },
                { "query": second, "extensions": persisted(&sha256(second)) },
            ]),
            &[],
        )
        .await;
    assert_eq!(response.status(), 429);
    for query in [first, second] {
        let lookup = app
            .post_json(&json!({ "extensions": persisted(&sha256(query)) }), &[])
            .await;
        let body: Value = lookup.json().await.expect("json");
        assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
    }
}

#[tokio::test]
async fn each_client_registers_a_bounded_number_of_persisted_queries() {
    let app = spawn_app_with(|config| config.persisted.apq_registrations_per_hour = 2).await;
    let queries: Vec<String> = (1..=3)
        .map(|n| format!("{{ tags(first: {n}) {{ totalCount }} }}"))
        .collect();
    for query in &queries {
        let response = app
            .post_json(
                &json!({ "query": query, "extensions": persisted(&sha256(query)) }),
                &[],
            )
            .await;
        let body: Value = response.json().await.expect("json");
        data(&body);
    }
    let mut found = 0;
    for query in &queries {
        let body: Value = app
            .post_json(&json!({ "extensions": persisted(&sha256(query)) }), &[])
            .await
            .json()
            .await
            .expect("json");
        if body.get("errors").is_none() {
            found += 1;
        } else {
            assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_FOUND");
        }
    }
    assert_eq!(found, 2, "the third registration was refused");
}

#[tokio::test]
async fn the_shared_persisted_query_store_is_bounded_in_bytes() {
    let Some(redis_url) = test_redis_url() else {
        eprintln!("TEST_REDIS_URL is not set: the shared store is Redis's");
        return;
    };
    let app = spawn_app_with(|config| {
        config.redis.url = Some(redis_url);
        config.persisted.apq_max_bytes = 2048;
    })
    .await;
    // A second instance has an empty process store: what it finds comes from Redis.
    let sibling = app.sibling().await;
    let queries: Vec<String> = (0..6)
        .map(|n| {
            format!(
                "{{ tags(first: {n}) {{ totalCount }} }} # {}",
                "x".repeat(600)
            )
        })
        .collect();
    for query in &queries {
        let body: Value = app
            .post_json(
                &json!({ "query": query, "extensions": persisted(&sha256(query)) }),
                &[],
            )
            .await
            .json()
            .await
            .expect("json");
        data(&body);
    }
    let lookup = |query: &String| {
        let body = json!({ "extensions": persisted(&sha256(query)) });
        let sibling = &sibling;
        async move {
            let body: Value = sibling
                .post_json(&body, &[])
                .await
                .json()
                .await
                .expect("json");
            body.get("errors").is_none()
        }
    };
    assert!(!lookup(&queries[0]).await, "the oldest was dropped");
    assert!(lookup(&queries[5]).await, "the newest is kept");
}

#[tokio::test]
async fn a_cancelled_probe_does_not_leave_the_redis_breaker_open() {
    let Some(redis_url) = test_redis_url() else {
        eprintln!("TEST_REDIS_URL is not set: the breaker guards Redis");
        return;
    };
    let proxy = RedisProxy::start(&redis_url).await;
    let app = spawn_app_with(|config| {
        config.redis.url = Some(proxy.url());
        config.redis.timeout_ms = 4_000;
        config.http.request_timeout_secs = 1;
        config.rate_limit.enabled = false;
    })
    .await;
    let query = "{ tags { totalCount } }";
    let status = |response: &reqwest::Response| {
        response
            .headers()
            .get("x-cache")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(status(&app.get_graphql(query).await), "MISS");
    proxy.stop();
    for _ in 0..4 {
        app.get_graphql(query).await;
    }
    proxy.hang();
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    // The half-open probe hangs; the request is cut off at 1 s and the probe dropped with it.
    let cut = app.get_graphql(query).await;
    assert_eq!(cut.status(), 503);
    proxy.resume();
    let mut recovered = false;
    for _ in 0..40 {
        let response = app.get_graphql(query).await;
        if response.status() == 200 && status(&response) != "BYPASS" {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(recovered, "the breaker closes once Redis answers again");
}

#[tokio::test]
async fn slow_bodies_do_not_starve_other_requests() {
    let app = spawn_app().await;
    let mut trickling = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(app.addr).await.expect("connect");
        stream
            .write_all(
                b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
            )
            .await
            .expect("headers");
        trickling.push(stream);
    }
    let feeder = tokio::spawn(async move {
        loop {
            for stream in &mut trickling {
                let _ = stream.write_all(b" ").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another client (another address: the trickling one is at its cap of connections).
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let response = other
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("answered within a second");
    assert_eq!(response.status(), 200);
    feeder.abort();
}

/// A failed login for a new unknown email, through proxies that wrote `forwarded` lines.
async fn failed_login(app: &TestApp, forwarded: &[&str], n: usize) -> Value {
    let mut request = app.client.post(app.url("/graphql")).json(&json!({
        "query": LOGIN,
        "variables": { "input": { "email": format!("nobody{n}@example.com"), "password": "wrong-password" } }
    }));
    for line in forwarded {
        request = request.header("x-forwarded-for", *line);
    }
    request
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

/// How many failed logins pass before the address is throttled (stops at `limit` + 5).
async fn failures_before_throttled(
    app: &TestApp,
    forwarded: impl Fn(usize) -> Vec<String>,
    limit: usize,
) -> usize {
    for n in 0..limit + 5 {
        let lines = forwarded(n);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let response = failed_login(app, &lines, n).await;
        if error_code(&response) == "RATE_LIMITED" {
            return n;
        }
        assert_eq!(error_code(&response), "UNAUTHENTICATED", "{response}");
    }
    limit + 5
}

#[tokio::test]
async fn a_client_cannot_choose_its_address_behind_trusted_proxies() {
    let app = spawn_app_with(|config| {
        config.http.client_ip_header = Some("x-forwarded-for".into());
        config.rate_limit.login_attempts_per_address = 5;
    })
    .await;
    // One proxy: the client writes what it likes, the proxy adds the address it saw (another line).
    let spoofed = |n: usize| vec![format!("198.51.100.{n}"), "203.0.113.7".to_owned()];
    assert_eq!(failures_before_throttled(&app, spoofed, 5).await, 5);

    let app = spawn_app_with(|config| {
        config.http.client_ip_header = Some("x-forwarded-for".into());
        config.http.trusted_proxies = Some(2);
        config.rate_limit.login_attempts_per_address = 5;
    })
    .await;
    let two_hops = |n: usize| vec![format!("198.51.100.{n}, 203.0.113.8, 10.0.0.2")];
    assert_eq!(failures_before_throttled(&app, two_hops, 5).await, 5);

    // IPv6 clients share their /64.
    let app = spawn_app_with(|config| {
        config.http.client_ip_header = Some("x-forwarded-for".into());
        config.rate_limit.login_attempts_per_address = 5;
    })
    .await;
    let same_network = |n: usize| vec![format!("2001:db8:1:2::{:x}", n + 1)];
    assert_eq!(failures_before_throttled(&app, same_network, 5).await, 5);
    let other_network = failed_login(&app, &["2001:db8:1:3::1"], 99).await;
    assert_eq!(error_code(&other_network), "UNAUTHENTICATED");
}

#[tokio::test]
async fn lookalike_spellings_of_an_email_share_one_login_budget() {
    let app = spawn_app().await;
    app.register("alice").await;
    for email in [
        "ALICE@example.com",
        " alice@example.com",
        "Alice@Example.Com ",
        "alice@EXAMPLE.com",
        "aLiCe@example.com",
    ] {
        let response = app
            .gql(
                LOGIN,
                json!({ "input": { "email": email, "password": "wrong-password" } }),
            )
            .await;
        assert_eq!(error_code(&response), "UNAUTHENTICATED", "{response}");
    }
    let right = app
        .post_json(
            &json!({ "query": LOGIN, "variables": { "input": { "email": "alice@example.com", "password": PASSWORD } } }),
            &[],
        )
        .await;
    assert_eq!(right.status(), 429);
    let right: Value = right.json().await.expect("json");
    assert_eq!(error_code(&right), "RATE_LIMITED");
}

#[tokio::test]
async fn usernames_are_normalised_and_invisible_characters_refused() {
    let app = spawn_app().await;
    let registered = app
        .gql(
            "mutation($input: RegisterInput!) { register(input: $input) { user { username } } }",
            json!({ "input": { "username": "ｊａｋｅ", "email": "jake@example.com", "password": PASSWORD } }),
        )
        .await;
    assert_eq!(data(&registered)["register"]["user"]["username"], "jake");
    let found = app
        .gql("{ user(username: \"JAKE\") { username } }", json!({}))
        .await;
    assert_eq!(data(&found)["user"]["username"], "jake");
    for (n, hostile) in ["ja\u{200B}ke", "ja\u{202E}ke", "ja\u{7}ke", "\u{2066}jake"]
        .iter()
        .enumerate()
    {
        let response = app
            .gql(
                "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                json!({ "input": { "username": hostile, "email": format!("h{n}@example.com"), "password": PASSWORD } }),
            )
            .await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{hostile:?}");
        assert!(names_field(&response, "username"));
    }
}

#[tokio::test]
async fn metrics_can_be_served_on_a_listener_of_their_own() {
    let app = spawn_app_with(|config| {
        config.server.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    data(&app.gql("{ tags { totalCount } }", json!({})).await);
    let metrics_addr = app.metrics_addr.expect("a metrics listener");
    let response = app
        .client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .expect("text")
            .contains("conduit_graphql_responses_total")
    );
}
