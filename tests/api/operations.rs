//! Operating the server: traces exported over OTLP (gRPC and HTTP), the metrics worth alerting
//! on, liveness and readiness, draining on SIGTERM, compression, HTTP/2, `conduit seed` and
//! `conduit config`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{data, error_code, spawn_app, spawn_app_with, test_redis_url};
use crate::otlp::{ReceivedSpan, Receiver};
use crate::process::{Server, conduit, free_port, seed};
use crate::tcp_proxy::TcpProxy;

const NESTED: &str = "query Nested($author: String) { articles(first: 3) { nodes { title author { username following } tags { name } comments(first: 2) { nodes { body author { username } } } } } user(username: $author) { username followersCount } }";

const LOGIN: &str = "mutation SignIn($input: LoginInput!) { login(input: $input) { token } }";

/// The email `conduit seed` printed for signing in.
fn seeded_email(output: &str) -> String {
    output
        .split("Sign in with email ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the seed prints a sign-in")
        .to_owned()
}

/// A W3C `traceparent` of a sampled trace, with its trace id and parent span id.
fn traceparent(trace: u8) -> (String, String, String) {
    let trace_id = format!("{:02x}", trace).repeat(16);
    let parent = "00f067aa0ba902b7".to_owned();
    (format!("00-{trace_id}-{parent}-01"), trace_id, parent)
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|span| span.name == name).collect()
}

fn by_id(spans: &[ReceivedSpan]) -> HashMap<&str, &ReceivedSpan> {
    spans
        .iter()
        .map(|span| (span.span_id.as_str(), span))
        .collect()
}

/// The names of `span`'s ancestors, nearest first.
fn ancestors<'a>(spans: &HashMap<&str, &'a ReceivedSpan>, span: &ReceivedSpan) -> Vec<&'a str> {
    let mut names = Vec::new();
    let mut parent = span.parent_span_id.as_str();
    while let Some(found) = spans.get(parent) {
        names.push(found.name.as_str());
        parent = found.parent_span_id.as_str();
    }
    names
}

async fn the_span_tree_of_a_nested_query_reaches_the_collector(protocol: &str) {
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    let redis = test_redis_url();
    let prefix = format!("conduit-test:{}:", uuid::Uuid::new_v4().simple());
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_SERVICE_NAME", "conduit-under-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("CONDUIT_LOG", "info"),
        ("CONDUIT_LOG_FORMAT", "json"),
    ];
    if let Some(url) = &redis {
        env.push(("REDIS_URL", url));
        env.push(("CONDUIT_REDIS_PREFIX", &prefix));
    }
    let (server, seeded) = Server::start_seeded(
        &env,
        &[
            "--users",
            "4",
            "--articles",
            "6",
            "--comments",
            "12",
            "--favorites",
            "5",
            "--follows",
            "3",
        ],
    )
    .await;
    let email = seeded_email(&seeded);
    let username = email.split('@').next().expect("a local part").to_owned();
    let client = reqwest::Client::new();

    let (header, trace_id, caller_span) = traceparent(0x4b);
    let answer: Value = client
        .post(format!("{}/graphql", server.url))
        .header("traceparent", &header)
        .header("tracestate", "vendor=opaque")
        .json(&json!({ "query": NESTED, "variables": { "author": username } }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(
        data(&answer)["articles"]["nodes"]
            .as_array()
            .expect("articles")
            .len(),
        3,
        "{answer}"
    );
    let spans = receiver
        .wait_for(&trace_id, |span| span.name == "POST /graphql")
        .await;
    let tree = by_id(&spans);

    // The request continues the caller's trace and carries every stage of the pipeline.
    let roots = named(&spans, "POST /graphql");
    assert_eq!(roots.len(), 1, "{spans:#?}");
    let root = roots[0];
    assert_eq!(
        root.parent_span_id, caller_span,
        "the caller's span is the parent"
    );
    assert_eq!(root.service, "conduit-under-test");
    for stage in [
        "read",
        "authenticate",
        "prepare",
        "admit",
        "execute",
        "settle",
        "respond",
    ] {
        let found = named(&spans, stage);
        assert!(
            found.iter().any(|span| span.parent_span_id == root.span_id),
            "stage {stage} under the request: {spans:#?}"
        );
    }

    // Resolvers that do I/O have spans, under the execution; plain fields have none.
    let articles = named(&spans, "Query.articles");
    assert_eq!(articles.len(), 1, "{spans:#?}");
    assert!(ancestors(&tree, articles[0]).contains(&"execute"));
    let authors = named(&spans, "Article.author");
    assert_eq!(authors.len(), 3, "one per article: {spans:#?}");
    for author in &authors {
        assert!(ancestors(&tree, author).contains(&"Query.articles"));
    }
    assert!(!named(&spans, "Query.user").is_empty());
    assert!(named(&spans, "Article.title").is_empty());
    assert!(named(&spans, "User.username").is_empty());

    // One span per SQL statement, under the resolver or loader batch that sent it, with the text
    // and never the values.
    let statements: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|span| span.attributes.contains_key("db.query.text"))
        .collect();
    assert!(statements.len() >= 2, "{spans:#?}");
    for statement in &statements {
        let text = &statement.attributes["db.query.text"];
        assert!(!text.contains(&username), "values stay out: {text}");
        assert_eq!(statement.name, "SELECT");
        let parent = tree
            .get(statement.parent_span_id.as_str())
            .expect("the statement's parent was exported");
        assert!(
            parent.name.contains('.') || parent.name.starts_with("load "),
            "a statement under a resolver or a batch, not {}",
            parent.name
        );
    }
    if redis.is_some() {
        assert!(
            spans.iter().any(
                |span| span.attributes.get("db.system.name").map(String::as_str) == Some("redis")
            ),
            "a span per Redis call: {spans:#?}"
        );
    }
    for span in &spans {
        assert!(
            span.span_id == root.span_id || tree.contains_key(span.parent_span_id.as_str()),
            "{} has its parent in the trace",
            span.name
        );
    }

    // A password check is a span of its own, under the mutation's resolver.
    let (header, login_trace, _) = traceparent(0x5c);
    let signed_in: Value = client
        .post(format!("{}/graphql", server.url))
        .header("traceparent", &header)
        .json(&json!({ "query": LOGIN, "variables": { "input": { "email": email, "password": "conduit-demo" } } }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(
        data(&signed_in)["login"]["token"].is_string(),
        "{signed_in}"
    );
    let login_spans = receiver
        .wait_for(&login_trace, |span| span.name == "POST /graphql")
        .await;
    let login_tree = by_id(&login_spans);
    let hashes = named(&login_spans, "argon2");
    assert_eq!(hashes.len(), 1, "{login_spans:#?}");
    assert!(ancestors(&login_tree, hashes[0]).contains(&"Mutation.login"));

    // The JSON log line of the request names its trace and span.
    let log = server.log();
    let finished = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "request finished" && line["trace_id"] == trace_id.as_str())
        .unwrap_or_else(|| panic!("a JSON log line with the trace id: {log}"));
    assert_eq!(finished["span_id"], root.span_id.as_str(), "{finished}");
    assert_eq!(finished["span"]["operation"], "Nested", "{finished}");
}

/// gRPC is a cargo feature (`otlp-grpc`); `.ci/run` runs this test with it.
#[cfg(feature = "otlp-grpc")]
#[tokio::test]
async fn traces_are_exported_over_otlp_grpc() {
    the_span_tree_of_a_nested_query_reaches_the_collector("grpc").await;
}

/// Without the `otlp-grpc` feature, asking for gRPC is refused at start, saying how to build it.
#[cfg(not(feature = "otlp-grpc"))]
#[tokio::test]
async fn otlp_over_grpc_without_the_feature_is_refused_at_start() {
    let output = conduit(
        &["serve"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    )
    .output()
    .expect("conduit runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--features otlp-grpc"), "{stderr}");
}

#[tokio::test]
async fn traces_are_exported_over_otlp_http_protobuf() {
    the_span_tree_of_a_nested_query_reaches_the_collector("http/protobuf").await;
}

#[tokio::test]
async fn metrics_expose_latency_errors_cost_cache_pool_and_hashing() {
    let app = spawn_app().await;
    let token = app.register("metered").await;
    app.create_article(&token, "Metered article", &["ops"])
        .await;
    let listed = json!({ "query": "query ListArticles { articles(first: 5) { nodes { title } } }", "operationName": "ListArticles" });
    for _ in 0..2 {
        let body: Value = app
            .post_json(&listed, &[])
            .await
            .json()
            .await
            .expect("json");
        data(&body);
    }
    let invalid = app.gql("query Broken { nope }", json!({})).await;
    assert_eq!(error_code(&invalid), "GRAPHQL_VALIDATION_FAILED");
    let wrong = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "metered@example.com", "password": "not-the-password" } }),
        )
        .await;
    assert!(wrong.get("errors").is_some(), "{wrong}");
    let metrics = app.get("/metrics").await.text().await.expect("text");
    for expected in [
        "conduit_http_request_duration_seconds_bucket{operation=\"ListArticles\",outcome=\"ok\",le=",
        "conduit_http_request_duration_seconds_count{operation=\"Broken\",outcome=\"error\"}",
        "conduit_graphql_errors_total{code=\"GRAPHQL_VALIDATION_FAILED\"} 1",
        "conduit_graphql_requested_cost_points_bucket",
        "conduit_graphql_actual_cost_points_bucket",
        "conduit_graphql_responses_total{cache=\"miss\"}",
        "conduit_graphql_responses_total{cache=\"hit\"}",
        "conduit_cache_stored_bytes_total",
        "conduit_db_statements_per_request_bucket",
        "conduit_db_statement_duration_seconds_bucket",
        "conduit_db_pool_connections",
        "conduit_db_pool_idle_connections",
        "conduit_db_pool_max_connections 5",
        "conduit_password_hash_duration_seconds_bucket",
        "conduit_password_hash_queue_depth",
        "conduit_http_requests_in_flight",
        "# TYPE conduit_http_request_duration_seconds histogram",
        "# HELP conduit_graphql_errors_total",
    ] {
        assert!(metrics.contains(expected), "missing {expected}:\n{metrics}");
    }
    // The pool's wait is sampled once a second.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("conduit_db_pool_wait_seconds_count"),
        "{metrics}"
    );
}

#[tokio::test]
async fn operation_names_in_metrics_are_bounded() {
    let app = spawn_app_with(|config| config.rate_limit.enabled = false).await;
    for n in 0..230 {
        let body: Value = app
            .post_json(
                &json!({ "query": format!("query Name{n} {{ tags(first: 1) {{ totalCount }} }}") }),
                &[],
            )
            .await
            .json()
            .await
            .expect("json");
        data(&body);
    }
    let metrics = app.get("/metrics").await.text().await.expect("text");
    let operations: std::collections::HashSet<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("conduit_http_request_duration_seconds_count{"))
        .filter_map(|line| line.split("operation=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(operations.contains("other"), "{operations:?}");
    assert!(operations.len() <= 201, "{} names", operations.len());
}

#[tokio::test]
async fn a_read_whose_connection_drops_mid_statement_runs_once_more() {
    let query = "{ articles(first: 5) { totalCount nodes { title } } }";
    let Some(admin_url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))
    else {
        // SQLite has no connection to lose: the read simply answers.
        let app = spawn_app().await;
        let answer = app.gql(query, json!({})).await;
        assert_eq!(data(&answer)["articles"]["totalCount"], 0, "{answer}");
        return;
    };
    // The app reaches PostgreSQL through a proxy that can cut the connection carrying a statement.
    let server = admin_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.rsplit('@').next())
        .and_then(|rest| rest.split(['/', '?']).next())
        .expect("host:port")
        .to_owned();
    let proxy = TcpProxy::to(server.clone()).await;
    let proxied = format!("127.0.0.1:{}", proxy.port());
    let app = spawn_app_with(|config| {
        config.cache.enabled = false;
        config.database.url = config.database.url.replacen(&server, &proxied, 1);
    })
    .await;
    assert!(app.database_url.contains(&proxied), "{}", app.database_url);
    let token = app.register("proxied").await;
    app.create_article(&token, "Survives a dropped connection", &[])
        .await;

    // The statement that reads the articles loses its connection on the way: the same read runs
    // once more (on a new connection) and answers; the client never sees the failure.
    proxy.cut_at(b"FROM \"articles\"");
    let answer = app.post_as(None, query, json!({}), &[]).await;
    assert!(proxy.sprung(), "the proxy cut a connection");
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.expect("json");
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(data(&answer)["articles"]["totalCount"], 1, "{answer}");
    assert_eq!(
        data(&answer)["articles"]["nodes"][0]["title"],
        "Survives a dropped connection"
    );
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics
            .lines()
            .any(|line| line == "conduit_db_read_retries_total 1"),
        "{metrics}"
    );

    // A mutation is never run twice: a write whose connection drops before its commit answers
    // SERVICE_UNAVAILABLE (the client decides) and leaves nothing half-written. (A statement
    // never sent before, so its text goes over the wire.)
    let slug = app
        .gql("{ articles(first: 1) { nodes { slug } } }", json!({}))
        .await["data"]["articles"]["nodes"][0]["slug"]
        .as_str()
        .expect("a slug")
        .to_owned();
    proxy.cut_at(b"INSERT INTO \"comments\"");
    let comment = app
        .post_as(
            Some(&token),
            "mutation($slug: String!) { addComment(slug: $slug, input: { body: \"Once\" }) { comment { id } } }",
            json!({ "slug": slug }),
            &[],
        )
        .await;
    assert!(proxy.sprung(), "the proxy cut a connection");
    assert_eq!(comment.status(), 503);
    let comment: Value = comment.json().await.expect("json");
    assert_eq!(error_code(&comment), "SERVICE_UNAVAILABLE", "{comment}");
    let after = app
        .gql(
            "query($slug: String!) { article(slug: $slug) { comments(first: 5) { totalCount } } }",
            json!({ "slug": slug }),
        )
        .await;
    assert_eq!(
        data(&after)["article"]["comments"]["totalCount"],
        0,
        "{after}"
    );
}

#[tokio::test]
async fn liveness_and_readiness_are_separate_probes() {
    let app = spawn_app_with(|config| {
        config.server.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let live = app.get("/health/live").await;
    assert_eq!(live.status(), 200);
    assert_eq!(app.admin_get("/health/live").await.status(), 200);
    // The public probe says its status only; the admin listener names each check.
    let public = app.get("/health/ready").await;
    assert_eq!(public.status(), 200);
    let public: Value = public.json().await.expect("json");
    assert_eq!(public, json!({ "status": "ok" }));
    let ready = app.admin_get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["checks"]["database"], "ok", "{ready}");
    assert_eq!(ready["checks"]["migrations"], "ok", "{ready}");
    assert_eq!(ready["checks"]["draining"], false, "{ready}");
    let alias: Value = app.admin_get("/health").await.json().await.expect("json");
    assert_eq!(alias["checks"], ready["checks"]);

    // A migration the database lacks: not ready (the process stays alive).
    let db = Database::connect(&app.database_url).await.expect("connect");
    db.execute_unprepared(
        "DELETE FROM seaql_migrations WHERE version = (SELECT MAX(version) FROM seaql_migrations)",
    )
    .await
    .expect("forget a migration");
    let behind = app.admin_get("/health/ready").await;
    assert_eq!(behind.status(), 503);
    let behind: Value = behind.json().await.expect("json");
    assert_eq!(behind["checks"]["migrations"], "1 pending", "{behind}");
    assert_eq!(app.get("/health/ready").await.status(), 503);
    assert_eq!(app.get("/health/live").await.status(), 200);
    assert_eq!(app.get("/health").await.status(), 503);

    // A database that stops answering: not ready, still alive.
    if app.database_url.starts_with("postgres") {
        let name = app
            .database_url
            .rsplit('/')
            .next()
            .expect("a database name")
            .to_owned();
        let admin = Database::connect(std::env::var("TEST_DATABASE_URL").expect("admin url"))
            .await
            .expect("connect");
        admin
            .execute_unprepared(&format!(
                "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
            ))
            .await
            .expect("refuse connections");
        admin
            .execute_unprepared(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .await
            .expect("cut connections");
        let down = app.admin_get("/health/ready").await;
        assert_eq!(down.status(), 503);
        let down: Value = down.json().await.expect("json");
        assert_eq!(down["checks"]["database"], "unreachable", "{down}");
        assert_eq!(app.get("/health/live").await.status(), 200);

        // Requests fail fast with SERVICE_UNAVAILABLE (503, Retry-After), never a 500 or a
        // 30 s timeout.
        for query in [
            "{ articles(first: 1, tag: \"while-down\") { totalCount } }",
            "mutation { register(input: { username: \"late\", email: \"late@example.com\", password: \"password123\" }) { token } }",
        ] {
            let started = std::time::Instant::now();
            let answer = app.post_as(None, query, json!({}), &[]).await;
            assert_eq!(answer.status(), 503, "{query}");
            assert_eq!(
                answer
                    .headers()
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok()),
                Some("1")
            );
            let body: Value = answer.json().await.expect("json");
            assert_eq!(error_code(&body), "SERVICE_UNAVAILABLE", "{body}");
            assert!(
                started.elapsed() < Duration::from_secs(6),
                "{:?}",
                started.elapsed()
            );
        }
    }
}

#[tokio::test]
async fn redis_down_is_reported_but_keeps_the_instance_ready() {
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let app = spawn_app_with(|config| {
        config.redis.url = Some(dead);
        config.server.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let ready = app.admin_get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.expect("json");
    assert!(
        ready["checks"]["redis"]
            .as_str()
            .is_some_and(|state| state.starts_with("unavailable")),
        "{ready}"
    );
    // Failed calls open the circuit breaker, which the metrics show.
    for _ in 0..3 {
        assert_eq!(app.get("/health/ready").await.status(), 200);
    }
    let metrics = app.admin_get("/metrics").await.text().await.expect("text");
    assert!(metrics.contains("conduit_redis_up 0"), "{metrics}");
}

/// Sends a query whose body arrives slowly, over raw HTTP/1.1: half of it, then the rest after
/// `pause`. Returns the response's status line and body.
async fn slow_query(url: String, pause: Duration) -> String {
    let address = url.trim_start_matches("http://");
    let body = json!({ "query": "{ tags(first: 5) { totalCount } }" }).to_string();
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream
        .write_all(format!("{head}{first}").as_bytes())
        .await
        .expect("write");
    tokio::time::sleep(pause).await;
    stream.write_all(rest.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read the response");
    response
}

#[tokio::test]
async fn a_sigterm_drains_without_failing_a_request() {
    let mut server = Server::start(&[
        ("CONDUIT_SHUTDOWN_GRACE_SECS", "2"),
        ("CONDUIT_SHUTDOWN_TIMEOUT_SECS", "20"),
        ("CONDUIT_RATE_LIMIT", "false"),
    ])
    .await;
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (client, url) = (client.clone(), server.url.clone());
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = client
                    .post(format!("{url}/graphql"))
                    .json(&json!({ "query": "{ articles(first: 5) { nodes { title } } tags(first: 3) { totalCount } }" }))
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status() == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // In flight across the whole drain: its body ends after the grace period is over.
    let slow = tokio::spawn(slow_query(server.url.clone(), Duration::from_millis(3_000)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.terminate();

    // Readiness turns at once; queries are still served meanwhile.
    let mut turned = false;
    for _ in 0..50 {
        let ready = client
            .get(format!("{}/health/ready", server.url))
            .send()
            .await
            .expect("still served during the grace period");
        if ready.status() == 503 {
            let body: Value = ready.json().await.expect("json");
            assert_eq!(body, json!({ "status": "unavailable" }));
            turned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(turned, "readiness answers 503 once SIGTERM arrived");
    let during = client
        .post(format!("{}/graphql", server.url))
        .json(&json!({ "query": "{ tags(first: 1) { totalCount } }" }))
        .send()
        .await
        .expect("served during the grace period");
    assert_eq!(during.status(), 200);
    assert_eq!(
        during.headers()["connection"],
        "close",
        "kept-alive connections wind down while draining"
    );
    // A load balancer stops sending once readiness fails.
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    let slow = slow.await.expect("slow request");
    assert!(slow.starts_with("HTTP/1.1 200"), "{slow}");
    assert!(slow.contains("\"totalCount\""), "{slow}");
    let status = server
        .exited(Duration::from_secs(15))
        .await
        .expect("the process exits after draining");
    assert!(status.success(), "exit status {status}");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(served.load(Ordering::Relaxed) > 10, "the load ran");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

#[tokio::test]
async fn large_responses_are_compressed_with_their_own_etag() {
    let app = spawn_app().await;
    let token = app.register("verbose").await;
    for n in 0..6 {
        app.create_article(&token, &format!("Long article {n}"), &["words"])
            .await;
    }
    let query = "{ articles(first: 6) { nodes { title description body slug createdAt author { username } } } }";
    let url = format!("{}?query={}", app.url("/graphql"), urlencode(query));
    let plain = app
        .client
        .get(&url)
        .header("accept-encoding", "identity")
        .send()
        .await
        .expect("sent");
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_etag = plain.headers()["etag"].to_str().expect("ascii").to_owned();
    let plain_body = plain.bytes().await.expect("body");
    assert!(plain_body.len() > 1024, "{} bytes", plain_body.len());

    // The same GET, asking for one encoding.
    let get_as = |encoding: &'static str| {
        app.client
            .get(&url)
            .header("accept-encoding", encoding)
            .send()
    };
    let zipped = get_as("gzip").await.expect("sent");
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let vary = zipped.headers()["vary"]
        .to_str()
        .expect("ascii")
        .to_lowercase();
    assert!(vary.contains("accept-encoding"), "{vary}");
    let zipped_etag = zipped.headers()["etag"].to_str().expect("ascii").to_owned();
    assert_ne!(zipped_etag, plain_etag, "each encoding has its own ETag");
    let zipped_body = zipped.bytes().await.expect("body");
    assert!(zipped_body.len() < plain_body.len());
    let unzipped: Value = serde_json::from_slice(&gunzip(&zipped_body)).expect("json");
    let plain_json: Value = serde_json::from_slice(&plain_body).expect("json");
    assert_eq!(unzipped["data"], plain_json["data"]);

    let other = get_as("br").await.expect("sent");
    assert_eq!(other.headers()["content-encoding"], "br");
    // zstd only from a build with the `zstd` feature; otherwise a zstd-only client gets identity,
    // and a client that takes both gets gzip.
    let zstd = get_as("zstd").await.expect("sent");
    let zstd_or_gzip = get_as("zstd, gzip;q=0.8").await.expect("sent");
    if cfg!(feature = "zstd") {
        assert_eq!(zstd.headers()["content-encoding"], "zstd");
        assert_eq!(zstd_or_gzip.headers()["content-encoding"], "zstd");
    } else {
        assert!(zstd.headers().get("content-encoding").is_none());
        assert_eq!(zstd_or_gzip.headers()["content-encoding"], "gzip");
    }

    // Revalidation: the gzip ETag under gzip is a 304; the identity ETag is not that body.
    let revalidated = app
        .client
        .get(&url)
        .header("accept-encoding", "gzip")
        .header("if-none-match", &zipped_etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(revalidated.status(), 304);
    let plain_again = app
        .client
        .get(&url)
        .header("accept-encoding", "identity")
        .header("if-none-match", &plain_etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(plain_again.status(), 304);

    // Small bodies go uncompressed.
    let small = app
        .client
        .post(app.url("/graphql"))
        .header("accept-encoding", "gzip")
        .json(&json!({ "query": "{ tags(first: 1) { totalCount } }" }))
        .send()
        .await
        .expect("sent");
    assert!(small.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn cache_hits_are_compressed_whole_with_this_requests_extensions() {
    let app = spawn_app().await;
    let token = app.register("wordy").await;
    for n in 0..6 {
        app.create_article(&token, &format!("Wordy article {n}"), &["words"])
            .await;
    }
    let query = json!({ "query": "{ articles(first: 6) { nodes { title description body slug author { username } } } }" });
    let post = |encoding: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .header("accept-encoding", encoding)
            .json(&query)
            .send()
    };
    let plain = post("identity").await.expect("sent");
    let plain_json: Value = plain.json().await.expect("json");
    // Hits, compressed from the remembered start: each one gzip member with its own extensions.
    for _ in 0..3 {
        let zipped = post("gzip, deflate, br, zstd").await.expect("sent");
        assert_eq!(zipped.headers()["x-cache"], "HIT");
        assert_eq!(zipped.headers()["content-encoding"], "gzip");
        // The compression layer streams what it compresses without a length: a length here
        // says the answer was compressed once and remembered.
        let length: usize = zipped.headers()["content-length"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("a number");
        let body = zipped.bytes().await.expect("body");
        assert_eq!(body.len(), length);
        let mut decoder = flate2::read::GzDecoder::new(&body[..]);
        let mut text = Vec::new();
        decoder.read_to_end(&mut text).expect("gzip");
        assert!(
            decoder.into_inner().is_empty(),
            "one gzip member, nothing after it"
        );
        let unzipped: Value = serde_json::from_slice(&text).expect("json");
        assert_eq!(unzipped["data"], plain_json["data"]);
        assert!(
            unzipped["extensions"]["cost"]["actualQueryCost"].is_number(),
            "{unzipped}"
        );
    }
    // A client that prefers another encoding gets it.
    let brotli = post("br, gzip;q=0.5").await.expect("sent");
    assert_eq!(brotli.headers()["content-encoding"], "br");
    // A private answer is compressed too (by the compression layer).
    let private = app
        .client
        .post(app.url("/graphql"))
        .header("accept-encoding", "gzip")
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({ "query": "{ viewer { username } articles(first: 6) { nodes { title description body slug favorited author { username } } } }" }))
        .send()
        .await
        .expect("sent");
    let cache_control = private.headers()["cache-control"].to_str().expect("ascii");
    assert!(cache_control.contains("private"), "{cache_control}");
    assert_eq!(private.headers()["content-encoding"], "gzip");
    let body = private.bytes().await.expect("body");
    let unzipped: Value = serde_json::from_slice(&gunzip(&body)).expect("json");
    assert_eq!(unzipped["data"]["viewer"]["username"], "wordy");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn http2_cleartext_is_served_beside_http1() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ tags(first: 1) { totalCount } }" }))
        .send()
        .await
        .expect("an HTTP/2 exchange");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let body: Value = response.json().await.expect("json");
    assert_eq!(data(&body)["tags"]["totalCount"], 0);
}

#[tokio::test]
async fn seed_fills_an_empty_database_the_same_way_every_time() {
    let (first_url, _first) = crate::helpers::test_database().await;
    let (second_url, _second) = crate::helpers::test_database().await;
    let sizes = [
        "--users",
        "6",
        "--articles",
        "15",
        "--comments",
        "20",
        "--favorites",
        "10",
        "--follows",
        "8",
    ];
    let seeded = seed(&first_url, &sizes);
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let printed = String::from_utf8_lossy(&seeded.stdout).into_owned();
    assert!(printed.contains("Seeded 6 users, 15 articles"), "{printed}");
    let email = seeded_email(&printed);

    // A second run on the same database is refused, and changes nothing.
    let again = seed(&first_url, &sizes);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(seed(&second_url, &sizes).status.success());

    let titles = |url: String| async move {
        let app = spawn_app_with(|config| config.database.url = url).await;
        let body = app
            .gql(
                "{ articles(first: 20) { totalCount nodes { title author { username } tags { name } } } }",
                json!({}),
            )
            .await;
        data(&body)["articles"].clone()
    };
    let first = titles(first_url.clone()).await;
    let second = titles(second_url).await;
    assert_eq!(first["totalCount"], 15, "{first}");
    assert_eq!(first, second, "the same seed gives the same data");

    // The printed sign-in works.
    let app = spawn_app_with(|config| config.database.url = first_url).await;
    let signed_in = app
        .gql(
            LOGIN,
            json!({ "input": { "email": email, "password": "conduit-demo" } }),
        )
        .await;
    assert!(
        data(&signed_in)["login"]["token"].is_string(),
        "{signed_in}"
    );
}

#[test]
fn config_prints_each_value_with_its_source_and_hides_secrets() {
    let output = conduit(
        &["--max-depth", "9", "config"],
        &[
            (
                "CONDUIT_JWT_SECRET",
                "0123456789abcdef0123456789abcdef-secret",
            ),
            ("DATABASE_URL", "postgres://app:hunter2@db.internal/conduit"),
            ("REDIS_URL", "redis://:redispass@cache:6379/0"),
        ],
    )
    .output()
    .expect("runs");
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!printed.contains("redispass"), "{printed}");
    assert!(!printed.contains("0123456789abcdef"), "{printed}");
    let line = |name: &str| {
        printed
            .lines()
            .find(|line| line.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {printed}"))
            .to_owned()
    };
    assert!(line("DATABASE_URL").contains("postgres://app:***@db.internal/conduit"));
    assert!(line("DATABASE_URL").ends_with("# environment"));
    assert!(line("CONDUIT_MAX_DEPTH").ends_with("# command line (--max-depth)"));
    assert!(line("CONDUIT_LISTEN").ends_with("# default"));
    assert!(line("CONDUIT_JWT_SECRET").starts_with("CONDUIT_JWT_SECRET=***"));
}

#[test]
fn an_invalid_setting_is_refused_in_one_line_naming_it() {
    for (name, value) in [
        ("CONDUIT_MAX_DEPTH", "deep"),
        ("CONDUIT_SHUTDOWN_GRACE_SECS", "-1"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
    ] {
        let output = conduit(&[], &[(name, value)]).output().expect("runs");
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
    let output = conduit(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("OTEL_EXPORTER_OTLP_ENDPOINT"));
}

#[tokio::test]
async fn the_dashboard_queries_only_series_the_server_exports() {
    let app = spawn_app().await;
    let token = app.register("charted").await;
    app.create_article(&token, "Charted", &["ops"]).await;
    let wrong = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "charted@example.com", "password": "wrong-password" } }),
        )
        .await;
    assert!(wrong.get("errors").is_some());
    for _ in 0..2 {
        data(
            &app.gql("{ articles(first: 5) { nodes { title } } }", json!({}))
                .await,
        );
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let metrics = app.get("/metrics").await.text().await.expect("text");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/conduit.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("json");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut families = std::collections::BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for (start, _) in expr.match_indices("conduit_") {
                let name: String = expr[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let family = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name)
                    .to_owned();
                families.insert(family);
            }
        }
    }
    // Counters that only exist once something happened (a refusal, a deprecated field).
    let mut eventual = vec![
        "conduit_rate_limited_total",
        "conduit_deprecated_field_uses_total",
        "conduit_deprecated_field_uses_by_client_total",
    ];
    if test_redis_url().is_none() {
        eventual.extend(["conduit_redis_up", "conduit_redis_call_duration_seconds"]);
    }
    for family in &families {
        assert!(
            metrics.contains(&format!("# HELP {family} ")) || eventual.contains(&family.as_str()),
            "the dashboard charts {family}, which /metrics does not serve"
        );
    }
    assert!(families.len() >= 15, "{families:?}");
}

/// Logs written to a file (here: the server's standard output redirected) carry no ANSI escape
/// sequences, pretty or JSON: colour is for terminals only.
#[tokio::test]
async fn logs_redirected_to_a_file_carry_no_escape_sequences() {
    for format in ["pretty", "json"] {
        let server =
            Server::start_sqlite(&[("CONDUIT_LOG", "info"), ("CONDUIT_LOG_FORMAT", format)]).await;
        let response = reqwest::Client::new()
            .post(format!("{}/graphql", server.url))
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 200);
        let log = server.log();
        assert!(log.contains("Conduit is listening"), "{format}: {log}");
        assert!(
            !log.contains('\u{1b}'),
            "{format} logs in a file hold escape sequences: {log:?}"
        );
    }
}
