//! HTTP hardening: security headers, CORS allow-list, load shedding.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with};

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = spawn_app().await;
    let response = app
        .post_json(&json!({ "query": "{ __typename }" }), &[])
        .await;
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("default-src 'none'")
    );
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn cors_allows_the_configured_origins_only() {
    let app =
        spawn_app_with(|config| config.http.cors_origins = vec!["https://app.example".into()])
            .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example").await.expect("sent");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let refused = preflight("https://evil.example").await.expect("sent");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let response = app
        .post_json(
            &json!({ "query": "{ __typename }" }),
            &[("origin", "https://app.example")],
        )
        .await;
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after") && exposed.contains("ratelimit-remaining"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saturated_server_sheds_load_with_503_and_recovers() {
    let app = spawn_app_with(|config| {
        config.http.max_in_flight = 1;
        config.auth.hash_concurrency = Some(1);
    })
    .await;
    // Each registration hashes a password; with one request in flight the others are shed.
    let bodies: Vec<Value> = (0..12)
        .map(|n| {
            json!({
                "query": "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                "variables": { "input": { "username": format!("user{n}"), "email": format!("user{n}@example.com"), "password": PASSWORD } }
            })
        })
        .collect();
    let attempts = bodies.iter().map(|body| app.post_json(body, &[]));
    let mut shed = 0;
    let mut served = 0;
    for response in futures::future::join_all(attempts).await {
        match response.status().as_u16() {
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                let body: Value = response.json().await.expect("json");
                assert_eq!(
                    body["errors"][0]["extensions"]["code"],
                    "SERVICE_UNAVAILABLE"
                );
                shed += 1;
            }
            200 => served += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(served >= 1, "at least the first request is served");
    assert!(
        shed >= 1,
        "the rest is shed rather than queued ({served} served)"
    );
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    let after = app
        .post_json(&json!({ "query": "{ __typename }" }), &[])
        .await;
    assert_eq!(after.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_over_the_time_limit_are_cut_off_with_503() {
    let app = spawn_app_with(|config| {
        config.http.request_timeout_secs = 1;
        config.auth.hash_concurrency = Some(1);
        config.rate_limit.login_attempts_per_address = 1000;
    })
    .await;
    // 120 logins hash one after another: together they take well over a second.
    let bodies: Vec<Value> = (0..120)
        .map(|n| {
            json!({
                "query": "mutation($input: LoginInput!) { login(input: $input) { token } }",
                "variables": { "input": { "email": format!("nobody{n}@example.com"), "password": "wrong-password" } }
            })
        })
        .collect();
    let attempts = bodies.iter().map(|body| app.post_json(body, &[]));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|response| response.status().as_u16())
        .collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.iter().all(|status| [200, 503].contains(status)));
    assert_eq!(app.get("/health").await.status(), 200);
}
