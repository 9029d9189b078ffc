//! Cost-based rate limiting per client, shared through Redis; sign-in and sign-up throttling.

use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestApp, cost, data, error_code, spawn_app, spawn_app_with, test_redis_url,
};

/// 1 + 50 * (1 node + 1 author) = 101 points requested.
const EXPENSIVE: &str = "{ articles(first: 50) { nodes { title author { username } } } }";

/// Sends `query` from client address `address` (through the trusted proxy header).
async fn from_address(app: &TestApp, address: &str, query: &str) -> (u16, Option<String>, Value) {
    let response = app
        .post_json(&json!({ "query": query }), &[("x-forwarded-for", address)])
        .await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (status, retry_after, response.json().await.expect("json"))
}

#[tokio::test]
async fn every_response_reports_its_cost_and_the_budget() {
    let app = spawn_app().await;
    let token = app.register("reader").await;
    app.create_article(&token, "One", &[]).await;
    let response = app
        .post_json(
            &json!({ "query": EXPENSIVE }),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["ratelimit-limit"], "2000");
    let remaining: u64 = response.headers()["ratelimit-remaining"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number");
    let body: Value = response.json().await.expect("json");
    let cost = cost(&body);
    assert_eq!(cost["requestedQueryCost"], 101);
    assert_eq!(cost["actualQueryCost"], 3, "one article and its author");
    let throttle = &cost["throttleStatus"];
    assert_eq!(throttle["maximumAvailable"], 2000);
    assert_eq!(throttle["restoreRate"], 100);
    let available = throttle["currentlyAvailable"].as_u64().expect("a number");
    assert!(available <= 2000, "{available}");
    assert!(
        available >= 2000 - 101,
        "what was not used is refunded: {available}"
    );
    assert_eq!(available, remaining);

    // Errors carry the cost too.
    let invalid = app.gql("{ nope }", json!({})).await;
    assert_eq!(error_code(&invalid), "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(invalid["extensions"]["cost"]["actualQueryCost"], 0);
}

/// Publishes `n` articles by a new author (whose own budget pays for them).
async fn seed_articles(app: &TestApp, n: usize) {
    let author = app.register("author").await;
    for i in 0..n {
        app.create_article(&author, &format!("Article {i}"), &[])
            .await;
    }
}

/// Asks for the `first` newest articles and their authors: 1 + 2 * first points, all of them
/// used when that many articles exist.
fn listing(first: usize) -> String {
    format!("{{ articles(first: {first}) {{ nodes {{ title author {{ username }} }} }} }}")
}

#[tokio::test]
async fn a_client_over_budget_gets_429_while_another_client_is_served() {
    let app = spawn_app_with(|config| {
        config.rate_limit.capacity = 250;
        config.rate_limit.restore_rate = 1;
        config.http.client_ip_header = Some("x-forwarded-for".into());
    })
    .await;
    seed_articles(&app, 20).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        let (status, retry_after, body) = from_address(&app, "203.0.113.7", &listing(20)).await;
        statuses.push(status);
        if status == 429 {
            refused = Some((retry_after, body));
        } else {
            assert_eq!(cost(&body)["actualQueryCost"], 41, "{body}");
        }
        // Another client, at the same time, is served.
        let (other, _, body) = from_address(
            &app,
            "198.51.100.9",
            "{ articles(first: 5) { totalCount } }",
        )
        .await;
        assert_eq!(other, 200, "{body}");
    }
    // 250 points pay for six requests of 41; the bucket refills 1 point a second.
    assert_eq!(statuses[..6], [200; 6], "{statuses:?}");
    assert_eq!(statuses[6..], [429, 429], "{statuses:?}");
    let (retry_after, body) = refused.expect("a refused request");
    assert_eq!(error_code(&body), "RATE_LIMITED");
    let seconds = body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .expect("retryAfterSeconds");
    assert!(seconds >= 1);
    assert_eq!(retry_after, Some(seconds.to_string()));
    assert!(body["data"].is_null());
    assert!(cost(&body)["throttleStatus"]["currentlyAvailable"].as_u64() < Some(41));
}

/// Sends `query` as `token`'s user until it is refused; how many were served.
async fn served_until_refused(app: &TestApp, token: Option<&str>, query: &str) -> usize {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    for served in 0..20 {
        let response = app.post_json(&json!({ "query": query }), &headers).await;
        if response.status() == 429 {
            return served;
        }
        assert_eq!(response.status(), 200);
    }
    panic!("never refused")
}

#[tokio::test]
async fn a_signed_in_client_has_a_budget_of_its_own() {
    let app = spawn_app_with(|config| {
        config.rate_limit.capacity = 150;
        config.rate_limit.restore_rate = 1;
    })
    .await;
    seed_articles(&app, 10).await;
    let spender = app.register("spender").await;
    let saver = app.register("saver").await;
    // 150 points: seven listings of 21.
    assert_eq!(
        served_until_refused(&app, Some(&spender), &listing(10)).await,
        7
    );
    let response = app
        .post_json(
            &json!({ "query": listing(10) }),
            &[("authorization", &format!("Bearer {saver}"))],
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn instances_share_the_budget_through_redis() {
    let app = spawn_app_with(|config| {
        config.rate_limit.capacity = 150;
        config.rate_limit.restore_rate = 1;
    })
    .await;
    seed_articles(&app, 10).await;
    let sibling = app.sibling().await;
    // The anonymous budget also paid for the author's registration (10 points).
    assert_eq!(served_until_refused(&app, None, &listing(10)).await, 6);
    let other_instance = sibling
        .post_json(&json!({ "query": listing(10) }), &[])
        .await;
    if test_redis_url().is_some() {
        // One budget for the deployment: what was spent on one instance is gone on the other.
        assert_eq!(other_instance.status(), 429);
    } else {
        // Without Redis each instance keeps its own buckets.
        assert_eq!(other_instance.status(), 200);
    }
}

async fn login(app: &TestApp, address: &str, email: &str, password: &str) -> (u16, Value) {
    let response = app
        .post_json(
            &json!({
                "query": "mutation($input: LoginInput!) { login(input: $input) { token } }",
                "variables": { "input": { "email": email, "password": password } }
            }),
            &[("x-forwarded-for", address)],
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn password_guessing_is_throttled_per_account_and_per_address() {
    let app = spawn_app_with(|config| {
        config.http.client_ip_header = Some("x-forwarded-for".into());
        config.rate_limit.login_attempts_per_address = 8;
    })
    .await;
    app.register("victim").await;
    app.register("bystander").await;
    for _ in 0..5 {
        let (status, body) =
            login(&app, "203.0.113.1", "victim@example.com", "wrong-password").await;
        assert_eq!(status, 200);
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    // The account is locked for a while, even for the right password, from any address.
    let (status, body) = login(&app, "203.0.113.2", "victim@example.com", PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(error_code(&body), "RATE_LIMITED");
    assert!(body["errors"][0]["extensions"]["retryAfterSeconds"].as_u64() >= Some(1));
    // Other accounts still sign in.
    let (_, body) = login(&app, "203.0.113.2", "bystander@example.com", PASSWORD).await;
    data(&body);

    // One address guessing across many accounts is throttled too (8 failures per window).
    for n in 0..3 {
        let (_, body) = login(&app, "203.0.113.1", &format!("nobody{n}@example.com"), "x").await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    let (status, body) = login(&app, "203.0.113.1", "bystander@example.com", PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(error_code(&body), "RATE_LIMITED");
}

#[tokio::test]
async fn successful_logins_are_not_counted_as_failures() {
    let app = spawn_app().await;
    app.register("regular").await;
    for _ in 0..8 {
        let (status, body) = login(&app, "-", "regular@example.com", PASSWORD).await;
        assert_eq!(status, 200);
        assert!(data(&body)["login"]["token"].is_string());
    }
}

#[tokio::test]
async fn registrations_are_throttled_per_address() {
    let app = spawn_app_with(|config| config.rate_limit.registrations_per_hour = 2).await;
    app.register("first").await;
    app.register("second").await;
    let response = app
        .post_json(
            &json!({
                "query": "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                "variables": { "input": { "username": "third", "email": "third@example.com", "password": PASSWORD } }
            }),
            &[],
        )
        .await;
    assert_eq!(response.status(), 429);
    let response: Value = response.json().await.expect("json");
    assert_eq!(error_code(&response), "RATE_LIMITED");
    let user = app
        .gql(r#"{ user(username: "third") { username } }"#, json!({}))
        .await;
    assert!(data(&user)["user"].is_null(), "nothing was written");
}

#[tokio::test]
async fn an_unreachable_redis_degrades_to_in_process_state() {
    // Nothing listens on port 1: every Redis call fails at once.
    let app = spawn_app_with(|config| {
        config.redis.url = Some("redis://127.0.0.1:1".into());
        config.rate_limit.capacity = 150;
        config.rate_limit.restore_rate = 1;
    })
    .await;
    seed_articles(&app, 10).await;
    // Budgets still apply, kept by this instance.
    assert_eq!(served_until_refused(&app, None, &listing(10)).await, 6);
    // Persisted queries still register and run.
    let query = "{ articles(first: 1) { totalCount } }";
    let hash = conduit::gateway::persisted::sha256_hex(query);
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let author = app.register("reader").await;
    let headers = [("authorization", format!("Bearer {author}"))];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let registered = app
        .post_json(
            &json!({ "query": query, "extensions": extensions }),
            &headers,
        )
        .await;
    let registered: Value = registered.json().await.expect("json");
    assert_eq!(data(&registered)["articles"]["totalCount"], 10);
    let hit = app
        .post_json(&json!({ "extensions": extensions }), &headers)
        .await;
    let hit: Value = hit.json().await.expect("json");
    assert_eq!(data(&hit)["articles"]["totalCount"], 10);
}
