//! Hostile load, one attack at a time: every resource a request can take (CPU, memory,
//! connections) is bounded and paid for, on every transport. Each test is the regression test of
//! one defect: fragment bombs in operations that do not run, responses too large or never read,
//! WebSocket and SSE queues, connections that never finish their headers, refused work that was
//! free, the document cache's weight; and the contract slips fuzzing found (NUL characters,
//! omitted variables, `first` that is not an Int, batches answered 429 after a write, SSE request
//! errors, bare 405 and 414, event field order, `articlePublished(author:)`, public readiness).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, cost, data, error_code, spawn_app, spawn_app_with};
use crate::process::Server;
use crate::realtime_client::{EventStream, Received, Socket};

/// `query A { __typename } query B { ...F0 }` and fragments `F0`..`F{levels}`, each spreading the
/// next ten times: a bomb of 10^levels spreads in an operation that does not run.
fn fragment_bomb(levels: usize) -> String {
    let mut document = String::from("query A { __typename } query B { ...F0 }");
    for level in 0..levels {
        let spreads = format!("...F{} ", level + 1).repeat(10);
        document.push_str(&format!(" fragment F{level} on Query {{ {spreads}}}"));
    }
    document.push_str(&format!(" fragment F{levels} on Query {{ __typename }}"));
    document
}

/// A client bound to another loopback address than the tests' usual 127.0.0.1 (so caps per
/// address that an attack fills do not apply to it).
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, last]))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_fragment_bomb_in_an_operation_that_does_not_run_costs_nothing_to_refuse_or_run() {
    let app = spawn_app().await;
    // Eight levels: 10^8 spreads, 24 s of validation before the document was reduced.
    let bomb = fragment_bomb(8);
    let body = json!({ "query": bomb, "operationName": "A" });
    let client = client_from(1);
    let started = std::time::Instant::now();
    let response: Value = client
        .post(app.url("/graphql"))
        .json(&body)
        .send()
        .await
        .expect("answered in time")
        .json()
        .await
        .expect("json");
    assert_eq!(
        response["data"],
        json!({ "__typename": "Query" }),
        "{response}"
    );
    // The operation that spreads the bomb is refused, in linear time, by the fields limit.
    let refused: Value = client
        .post(app.url("/graphql"))
        .json(&json!({ "query": bomb, "operationName": "B" }))
        .send()
        .await
        .expect("answered in time")
        .json()
        .await
        .expect("json");
    assert_eq!(error_code(&refused), "QUERY_TOO_COMPLEX", "{refused}");
    // Over an event stream and a WebSocket too.
    let events = EventStream::open(&app, None, &bomb, json!({})).await;
    assert_eq!(events.status(), 200);
    let mut socket = Socket::connect(&app, None).await;
    socket
        .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": bomb, "operationName": "A" } }))
        .await;
    let next = socket.next_of("1").await;
    assert_eq!(next["data"], json!({ "__typename": "Query" }), "{next}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?} for bombs that are never expanded",
        started.elapsed()
    );
    // A fragment no operation uses is refused, as the specification's NoUnusedFragments says.
    let unused = app
        .gql(
            "query A { __typename } fragment Lost on Query { __typename }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&unused), "GRAPHQL_VALIDATION_FAILED", "{unused}");
}

/// Publishes `count` articles tagged `tag` with bodies of 100,000 characters.
async fn big_articles(app: &TestApp, token: &str, tag: &str, count: usize) {
    let body = "b".repeat(100_000);
    for n in 0..count {
        let created = app
            .gql_as(
                Some(token),
                "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }",
                json!({ "input": { "title": format!("Big {tag} {n}"), "description": "big", "body": body, "tags": [tag] } }),
            )
            .await;
        data(&created);
    }
}

#[tokio::test]
async fn a_response_over_the_size_bound_is_refused_and_what_a_response_carries_is_paid_for() {
    let app = spawn_app_with(|config| config.cache.enabled = false).await;
    let token = app.register("heavy").await;
    big_articles(&app, &token, "big", 45).await;
    // 45 bodies of 100 kB: more than the 4 MiB a response carries by default.
    let client = client_from(3);
    let refused = client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ articles(first: 50, tag: \"big\") { nodes { body } } }" }))
        .send()
        .await
        .expect("answered");
    // What it built before it crossed the bound is paid for: the budget is spent.
    assert_eq!(
        refused
            .headers()
            .get("ratelimit-remaining")
            .and_then(|value| value.to_str().ok()),
        Some("0")
    );
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(
        error_code(&refused),
        "RESPONSE_TOO_LARGE",
        "{}",
        &refused["errors"]
    );
    assert_eq!(
        refused["errors"][0]["extensions"]["maximum"],
        4 * 1024 * 1024
    );
    assert!(refused["data"].is_null());
    // The bound is on the whole response: a batch of smaller answers is refused as it crosses it.
    let batch =
        vec![json!({ "query": "{ articles(first: 10, tag: \"big\") { nodes { body } } }" }); 5];
    let answers: Value = client_from(5)
        .post(app.url("/graphql"))
        .json(&batch)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    let codes: Vec<&str> = answers
        .as_array()
        .expect("a batch answer")
        .iter()
        .map(|answer| {
            answer["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("ok")
        })
        .collect();
    assert_eq!(&codes[..4], ["ok"; 4], "{codes:?}");
    assert_eq!(codes[4], "RESPONSE_TOO_LARGE", "{codes:?}");
    // What an answer carries is paid for: a megabyte of bodies costs about a point per KiB.
    let paid = app
        .gql(
            "{ articles(first: 10, tag: \"big\") { nodes { body } } }",
            json!({}),
        )
        .await;
    let actual = cost(&paid)["actualQueryCost"].as_u64().expect("a cost");
    assert!(
        actual > 900,
        "a 1 MB answer cost {actual} points: {}",
        cost(&paid)
    );
}

#[tokio::test]
async fn a_client_that_does_not_read_its_response_loses_it() {
    let app = spawn_app_with(|config| {
        config.cache.enabled = false;
        config.http.send_timeout_secs = 1;
    })
    .await;
    let token = app.register("heavy").await;
    big_articles(&app, &token, "unread", 30).await;
    // A client with a small receive window that asks for 3 MB and never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer size");
    let mut stream = socket.connect(app.addr).await.expect("connected");
    let body = json!({ "query": "{ articles(first: 30, tag: \"unread\") { nodes { body } } }" })
        .to_string();
    stream
        .write_all(
            format!(
                "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("sent");
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The server gave up on it: what is left to read ends well before the 3 MB.
    let mut received = 0usize;
    let mut buffer = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => received += read,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection was dropped");
    assert!(
        received < 3_000_000,
        "{received} bytes were still delivered to a client that stopped reading"
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("conduit_http_connections_closed_total{reason=\"send_timeout\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|line| line.contains("connections"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connected");
    stream
        .write_all(b"GET /graphql HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("sent");
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer))
        .await
        .expect("closed within the header-read timeout (10 s) and the watchdog's second");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(9) && elapsed < Duration::from_secs(13),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_keepalive_timeout() {
    let app = spawn_app_with(|config| config.http.keepalive_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connected");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("sent");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => answer.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle kept-alive connection is closed");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_are_capped_per_client_and_the_probes_still_answer() {
    let app = spawn_app_with(|config| {
        config.http.max_connections_per_client = 20;
        config.server.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(app.addr).await.expect("connected");
        stream
            .write_all(b"GET /graphql HTTP/1.1\r\n")
            .await
            .expect("sent");
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The next connection from that address is answered at once with a JSON error.
    let mut refused = TcpStream::connect(app.addr).await.expect("connected");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), refused.read_to_end(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    assert!(
        answer.contains("\"code\":\"TOO_MANY_CONNECTIONS\""),
        "{answer}"
    );
    // Another client is served; the probes answer on the admin listener.
    let other = client_from(2)
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("another address is served");
    assert_eq!(other.status(), 200);
    assert_eq!(app.admin_get("/health/live").await.status(), 200);
    assert_eq!(app.admin_get("/health/ready").await.status(), 200);
    drop(held);
}

#[tokio::test]
async fn http2_connections_announce_their_stream_and_header_limits() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connected");
    // The client preface and an empty SETTINGS frame.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("sent");
    let mut head = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
        .await
        .expect("the server's settings")
        .expect("read");
    assert_eq!(head[3], 4, "a SETTINGS frame first");
    let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.expect("read");
    let settings: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|entry| {
            (
                u16::from_be_bytes([entry[0], entry[1]]),
                u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]),
            )
        })
        .collect();
    // SETTINGS_MAX_CONCURRENT_STREAMS (3) and SETTINGS_MAX_HEADER_LIST_SIZE (6).
    assert!(settings.contains(&(3, 64)), "{settings:?}");
    assert!(settings.contains(&(6, 128 * 1024)), "{settings:?}");
}

#[tokio::test]
async fn the_parsers_own_refusals_and_unserved_methods_answer_json_with_a_code() {
    let app = spawn_app().await;
    let put = app
        .client
        .put(app.url("/graphql"))
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(put.status(), 405);
    assert!(put.headers().contains_key("x-request-id"));
    let body: Value = put.json().await.expect("a JSON body");
    assert_eq!(error_code(&body), "METHOD_NOT_ALLOWED");
    // A request line over 64 KiB: hyper refuses it before any service runs.
    let mut stream = TcpStream::connect(app.addr).await.expect("connected");
    let line = format!(
        "GET /graphql?query={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    stream.write_all(line.as_bytes()).await.expect("sent");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
    assert!(answer.contains("x-request-id: "), "{answer}");
    let json: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default())
        .expect("a JSON body");
    assert_eq!(error_code(&json), "URI_TOO_LONG");
}

#[tokio::test]
async fn refused_documents_pay_for_their_preparation() {
    let app = spawn_app().await;
    let client = client_from(4);
    // 5,000 tokens that fail validation: unknown fields, each document new.
    let send = |n: usize| {
        let fields: String = (0..4_990).map(|i| format!(" f{n}x{i}")).collect();
        client
            .post(app.url("/graphql"))
            .json(&json!({ "query": format!("{{{fields} }}") }))
            .send()
    };
    let first: Value = send(0).await.expect("sent").json().await.expect("json");
    assert_eq!(
        error_code(&first),
        "QUERY_TOO_COMPLEX",
        "{}",
        first["errors"]
    );
    let charged = cost(&first);
    assert!(
        charged["requestedQueryCost"].as_u64() >= Some(100),
        "preparing 5,000 tokens is charged: {charged}"
    );
    let mut limited = false;
    for n in 1..40 {
        let response: Value = send(n).await.expect("sent").json().await.expect("json");
        if error_code(&response) == "RATE_LIMITED" {
            limited = true;
            break;
        }
    }
    assert!(
        limited,
        "the budget runs out for a client sending refused documents"
    );
    // Another client is unaffected.
    let served = app.gql("{ __typename }", json!({})).await;
    assert_eq!(data(&served)["__typename"], "Query");
}

#[tokio::test]
async fn documents_that_fail_validation_are_not_cached_and_memory_stays_bounded() {
    let server =
        Server::start_sqlite(&[("CONDUIT_LOG", "error"), ("CONDUIT_RATE_LIMIT", "false")]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/graphql", server.url);
    let invalid = |n: usize| {
        // 450 tiny fields: a parsed document many times its text, within the limits, refused by
        // validation (no such fields).
        let fields: String = (0..450).map(|i| format!(" a{i}")).collect();
        json!({ "query": format!("query Q{n} {{ __typename viewer {{ {fields} }} }}") })
    };
    for n in 0..20 {
        client
            .post(&url)
            .json(&invalid(n))
            .send()
            .await
            .expect("sent");
    }
    let before = server.rss();
    for n in 20..520 {
        let response: Value = client
            .post(&url)
            .json(&invalid(n))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        assert_eq!(error_code(&response), "GRAPHQL_VALIDATION_FAILED");
    }
    let growth = server.rss().saturating_sub(before);
    assert!(
        growth < 24 * 1024 * 1024,
        "500 refused documents grew the server by {} MiB",
        growth / 1024 / 1024
    );
}

/// Favorites and unfavorites `slug` as `token`'s user, `times` times each.
async fn toggle_favorite(app: &TestApp, token: &str, slug: &str, times: usize) {
    for _ in 0..times {
        for mutation in ["favoriteArticle", "unfavoriteArticle"] {
            let answer = app
                .gql_as(
                    Some(token),
                    &format!("mutation($slug: String!) {{ {mutation}(slug: $slug) {{ article {{ favoritesCount }} }} }}"),
                    json!({ "slug": slug }),
                )
                .await;
            data(&answer);
        }
    }
}

/// Waits until the app counts `open` subscriptions (its `/metrics`).
async fn subscriptions_open(app: &TestApp, open: u64) {
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
            "{active} subscriptions open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An article with a 100,000-character body by a new user: (its author's token, its slug).
async fn heavy_article(app: &TestApp) -> (String, String) {
    let author = app.register("author").await;
    let created = app
        .gql_as(
            Some(&author),
            "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }",
            json!({ "input": { "title": "Heavy", "description": "big", "body": "x".repeat(100_000) } }),
        )
        .await;
    let slug = data(&created)["createArticle"]["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_owned();
    (author, slug)
}

#[tokio::test]
async fn a_websockets_queue_is_bounded_in_bytes() {
    // Budgets aside, and a bound in messages the test never reaches: the bytes end it.
    let app = spawn_app_with(|config| {
        config.rate_limit.enabled = false;
        config.realtime.queue_bytes = 512 * 1024;
    })
    .await;
    let (author, slug) = heavy_article(&app).await;
    let reader = app.register("reader").await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer size");
    let stream = socket.connect(app.addr).await.expect("connected");
    let mut slow = Socket::open_on(&app, stream).await;
    slow.init(Some(&reader)).await;
    match slow.receive().await {
        Received::Message(message) => assert_eq!(message["type"], "connection_ack"),
        other => panic!("expected the ack, got {other:?}"),
    }
    for id in 0..5 {
        slow.subscribe(
            &id.to_string(),
            "subscription($slug: String!) { articleChanged(slug: $slug) { article { body favoritesCount } } }",
            json!({ "slug": slug }),
        )
        .await;
    }
    subscriptions_open(&app, 5).await;
    // 5 subscriptions x 2 x 15 changes x 100 kB = 15 MB for a client that reads nothing.
    toggle_favorite(&app, &author, &slug, 15).await;
    let mut events = 0;
    let code = loop {
        match slow.receive().await {
            Received::Message(message) if message["type"] == "next" => events += 1,
            Received::Message(other) => panic!("unexpected {other}"),
            Received::Closed(code, _) => break code,
            Received::Dropped => panic!("dropped without a close frame after {events} events"),
        }
    };
    assert_eq!(code, 1013, "slow consumer");
    assert!(events < 150, "{events} events of 100 kB were buffered");
}

#[tokio::test]
async fn an_event_costs_what_it_carries() {
    let app = spawn_app().await;
    let (author, slug) = heavy_article(&app).await;
    let reader = app.register("reader").await;
    let mut socket = Socket::connect(&app, Some(&reader)).await;
    socket
        .subscribe(
            "1",
            "subscription($slug: String!) { articleChanged(slug: $slug) { article { body } } }",
            json!({ "slug": slug }),
        )
        .await;
    subscriptions_open(&app, 1).await;
    toggle_favorite(&app, &author, &slug, 1).await;
    let event = socket.next_of("1").await;
    let actual = event["extensions"]["cost"]["actualQueryCost"]
        .as_u64()
        .expect("a cost");
    assert!(actual >= 80, "a 100 kB event cost {actual} points");
}

#[tokio::test]
async fn an_idle_event_stream_ends_when_its_token_is_revoked() {
    let app = spawn_app_with(|config| config.realtime.keepalive_secs = 1).await;
    let author = app.register("author").await;
    let reader = app.register("reader").await;
    let slug = app.create_article(&author, "Watched", &[]).await;
    let response = EventStream::open(
        &app,
        Some(&reader),
        "subscription($slug: String!) { commentAdded(slug: $slug) { body } }",
        json!({ "slug": slug }),
    )
    .await;
    let mut stream = EventStream::of(response);
    subscriptions_open(&app, 1).await;
    let revoked = app
        .gql_as(
            Some(&reader),
            "mutation { signOutEverywhere { token } }",
            json!({}),
        )
        .await;
    data(&revoked);
    // Nothing happens on the article: the keep-alive's check ends the stream.
    let (name, payload) = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends within a keep-alive or two")
        .expect("an event");
    assert_eq!(name, "next");
    let payload: Value = serde_json::from_str(&payload).expect("json");
    assert_eq!(error_code(&payload), "UNAUTHENTICATED", "{payload}");
    assert_eq!(
        stream.next().await.map(|(name, _)| name),
        Some("complete".to_owned())
    );
}

/// The root fields of `type_name` and their arguments, from introspection: (field, [(argument,
/// type)]), with each argument's named type and, for input objects, their fields.
async fn root_fields(app: &TestApp, type_name: &str) -> Vec<(String, Vec<(String, Value)>)> {
    let introspected = app
        .gql(
            "query($name: String!) { __type(name: $name) { fields { name args { name type { ...T } } } } }
             fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }",
            json!({ "name": type_name }),
        )
        .await;
    data(&introspected)["__type"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|field| {
            let args = field["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(|arg| {
                    (
                        arg["name"].as_str().expect("name").to_owned(),
                        arg["type"].clone(),
                    )
                })
                .collect();
            (field["name"].as_str().expect("name").to_owned(), args)
        })
        .collect()
}

/// The named type inside `ty` (through NON_NULL and LIST).
fn named(ty: &Value) -> (&str, &str) {
    match ty["kind"].as_str() {
        Some("NON_NULL" | "LIST") => named(&ty["ofType"]),
        kind => (
            kind.unwrap_or_default(),
            ty["name"].as_str().unwrap_or_default(),
        ),
    }
}

/// A value of `ty` for a generated call: text fields hold `text`, others a plausible value.
async fn value_of(app: &TestApp, ty: &Value, text: &str, depth: usize) -> Value {
    let (kind, name) = named(ty);
    let list = ty["kind"] == "LIST" || (ty["kind"] == "NON_NULL" && ty["ofType"]["kind"] == "LIST");
    let value = match (kind, name) {
        ("SCALAR", "String" | "ID") => json!(text),
        ("SCALAR", "Int") => json!(1),
        ("SCALAR", "Boolean") => json!(true),
        ("INPUT_OBJECT", _) if depth < 3 => {
            let input = app
                .gql(
                    "query($name: String!) { __type(name: $name) { inputFields { name type { kind name ofType { kind name ofType { kind name } } } } } }",
                    json!({ "name": name }),
                )
                .await;
            let mut object = serde_json::Map::new();
            for field in data(&input)["__type"]["inputFields"]
                .as_array()
                .expect("input fields")
            {
                let value = Box::pin(value_of(app, &field["type"], text, depth + 1)).await;
                object.insert(field["name"].as_str().expect("name").to_owned(), value);
            }
            Value::Object(object)
        }
        _ => Value::Null,
    };
    if list { json!([value]) } else { value }
}

#[tokio::test]
async fn a_nul_character_in_any_text_argument_is_refused_before_it_reaches_sql() {
    let app = spawn_app().await;
    let token = app.register("writer").await;
    let slug = app.create_article(&token, "Target", &["tag"]).await;
    let mut checked = 0;
    for (root, keyword) in [
        ("Query", "query"),
        ("Mutation", "mutation"),
        ("Subscription", "subscription"),
    ] {
        for (field, args) in root_fields(&app, root).await {
            let text_args: Vec<&(String, Value)> = args
                .iter()
                .filter(|(_, ty)| {
                    let (kind, name) = named(ty);
                    matches!(name, "String" | "ID") || kind == "INPUT_OBJECT"
                })
                .collect();
            // Each text argument (or input object) in turn holds a NUL; the others are valid.
            for (poisoned, _) in &text_args {
                let mut variables = serde_json::Map::new();
                let mut definitions = Vec::new();
                let mut arguments = Vec::new();
                for (name, ty) in &args {
                    let text = if name == poisoned {
                        "a\u{0}b"
                    } else {
                        slug.as_str()
                    };
                    variables.insert(name.clone(), value_of(&app, ty, text, 0).await);
                    definitions.push(format!("${name}: {}", type_text(ty)));
                    arguments.push(format!("{name}: ${name}"));
                }
                let arguments = if arguments.is_empty() {
                    String::new()
                } else {
                    format!("({})", arguments.join(", "))
                };
                let definitions = if definitions.is_empty() {
                    String::new()
                } else {
                    format!("({})", definitions.join(", "))
                };
                let document =
                    format!("{keyword}{definitions} {{ {field}{arguments} {{ __typename }} }}");
                let answer: Value = if keyword == "subscription" {
                    let mut socket = Socket::connect(&app, Some(&token)).await;
                    socket
                        .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": document, "variables": variables } }))
                        .await;
                    socket.answer_of("1").await
                } else {
                    app.post_as(Some(&token), &document, Value::Object(variables), &[])
                        .await
                        .json()
                        .await
                        .expect("json")
                };
                let code = error_code(&answer);
                assert!(
                    ["BAD_USER_INPUT", "NOT_FOUND"].contains(&code),
                    "{field}({poisoned}: \"a\\u0000b\"): {answer}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} text arguments were tried");
    // Nothing was written by any of them.
    let articles = app.gql("{ articles { totalCount } }", json!({})).await;
    assert_eq!(data(&articles)["articles"]["totalCount"], 1);
}

/// The GraphQL text of an introspected type.
fn type_text(ty: &Value) -> String {
    match ty["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", type_text(&ty["ofType"])),
        Some("LIST") => format!("[{}]", type_text(&ty["ofType"])),
        _ => ty["name"].as_str().unwrap_or_default().to_owned(),
    }
}

#[tokio::test]
async fn an_omitted_or_null_non_null_variable_is_a_request_error() {
    let app = spawn_app().await;
    let token = app.register("writer").await;
    for variables in [json!({}), json!({ "s": null })] {
        let response = app
            .post_as(
                None,
                "query($s: String!) { article(slug: $s) { id } }",
                variables.clone(),
                &[("accept", "application/graphql-response+json")],
            )
            .await;
        assert_eq!(response.status(), 400, "{variables}");
        let body: Value = response.json().await.expect("json");
        assert!(body.get("data").is_none(), "{body}");
        assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|message| message.contains("$s")),
            "{body}"
        );
    }
    // A mutation with an omitted variable runs nothing and is charged nothing.
    let response: Value = app
        .post_as(
            Some(&token),
            "mutation($slug: String!) { favoriteArticle(slug: $slug) { article { id } } }",
            json!({}),
            &[],
        )
        .await
        .json()
        .await
        .expect("json");
    assert!(response.get("data").is_none(), "{response}");
    assert_eq!(cost(&response)["requestedQueryCost"], 0, "{response}");
}

#[tokio::test]
async fn a_first_that_is_not_an_int_is_a_validation_error_naming_the_value() {
    let app = spawn_app().await;
    for (first, shown) in [
        ("1.5", "1.5"),
        ("-1e40", "-1e40"),
        ("2147483648", "2147483648"),
    ] {
        let response = app
            .gql(
                &format!("{{ articles(first: {first}) {{ totalCount }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(
            error_code(&response),
            "GRAPHQL_VALIDATION_FAILED",
            "{response}"
        );
        let message = response["errors"][0]["message"].as_str().expect("message");
        assert!(
            message.contains(shown) || message.contains(&shown.replace("e", "e+")),
            "{message}"
        );
        assert!(!message.contains("2147483647"), "{message}");
    }
    let response = app
        .gql(
            "query($n: Int) { articles(first: $n) { totalCount } }",
            json!({ "n": 1.5 }),
        )
        .await;
    assert_eq!(
        error_code(&response),
        "GRAPHQL_VALIDATION_FAILED",
        "{response}"
    );
}

#[tokio::test]
async fn a_batch_in_which_a_mutation_committed_is_never_answered_429() {
    let app = spawn_app().await;
    let token = app.register("writer").await;
    let login = json!({
        "query": "mutation($input: LoginInput!) { login(input: $input) { token } }",
        "variables": { "input": { "email": "writer@example.com", "password": "not-the-password" } }
    });
    // Five failed logins spend the account's allowance.
    for _ in 0..5 {
        app.post_json(&login, &[]).await;
    }
    let create = json!({
        "query": "mutation { createArticle(input: { title: \"Once\", description: \"d\", body: \"b\" }) { article { slug } } }"
    });
    let response = app
        .post_json(
            &json!([create, login]),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(
        response.status(),
        200,
        "a client retrying on 429 would write twice"
    );
    assert!(response.headers().get("retry-after").is_none());
    let answers: Value = response.json().await.expect("json");
    assert!(
        answers[0]["data"]["createArticle"]["article"]["slug"].is_string(),
        "{answers}"
    );
    assert_eq!(error_code(&answers[1]), "RATE_LIMITED", "{answers}");
}

#[tokio::test]
async fn an_event_streams_request_error_has_no_data_entry() {
    let app = spawn_app().await;
    for query in ["subscription { nope }", "subscription {"] {
        let response = EventStream::open(&app, None, query, json!({})).await;
        let mut stream = EventStream::of(response);
        let payload = stream.next_payload().await;
        assert!(payload.get("data").is_none(), "{payload}");
        assert!(
            payload["errors"][0]["extensions"]["code"].is_string(),
            "{payload}"
        );
    }
}

#[tokio::test]
async fn events_keep_the_order_of_the_selection() {
    let app = spawn_app().await;
    let author = app.register("author").await;
    let slug = app.create_article(&author, "Ordered", &[]).await;
    let selection =
        "commentAdded(slug: $slug) { article { favorited author { username } slug } body }";
    let document = format!("subscription($slug: String!) {{ {selection} }}");
    let mut socket = Socket::connect(&app, Some(&author)).await;
    socket
        .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": document, "variables": { "slug": slug } } }))
        .await;
    let response = EventStream::open(&app, Some(&author), &document, json!({ "slug": slug })).await;
    let mut stream = EventStream::of(response);
    subscriptions_open(&app, 2).await;
    app.add_comment(&author, &slug, "In order").await;
    let expected = format!(
        "{{\"commentAdded\":{{\"article\":{{\"favorited\":false,\"author\":{{\"username\":\"author\"}},\"slug\":\"{slug}\"}},\"body\":\"In order\"}}}}"
    );
    let (_, sse) = stream.next().await.expect("an event");
    assert!(sse.contains(&expected), "{sse}");
    let raw = socket.receive_text().await.expect("an event");
    assert!(raw.contains(&expected), "{raw}");
}

#[tokio::test]
async fn article_published_matches_its_author_in_any_case() {
    let app = spawn_app().await;
    let author = app.register("Casey").await;
    let mut socket = Socket::connect(&app, None).await;
    socket
        .subscribe(
            "1",
            "subscription { articlePublished(author: \"cASEY\") { title } }",
            json!({}),
        )
        .await;
    subscriptions_open(&app, 1).await;
    app.create_article(&author, "Any case", &[]).await;
    let event = socket.next_of("1").await;
    assert_eq!(event["data"]["articlePublished"]["title"], "Any case");
}

#[tokio::test]
async fn the_public_readiness_probe_says_its_status_only() {
    let app = spawn_app().await;
    let ready: Value = app.get("/health/ready").await.json().await.expect("json");
    assert_eq!(ready, json!({ "status": "ok" }));
}
