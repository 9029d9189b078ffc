//! The hostile-load suite: every attack of the hostile-load issue at once against one running
//! server, beside a well-behaved client, with the figures that say the server held (see
//! `tests/hostile/run.sh`, which starts a release server with a file-descriptor limit and runs
//! this).
//!
//! Each attacker comes from an address of its own on the loopback network (127.0.0.10 and up), as
//! attackers on the Internet do; the well-behaved client from 127.0.0.2, the probes from
//! 127.0.0.3. The attacks:
//!
//! - **fragment bombs** in an operation that does not run (8 levels, 10^8 spreads);
//! - **unread responses**: batches asking for 10 x 100 articles with 100 kB bodies, on
//!   connections that never read;
//! - **slow subscribers**: 10 WebSockets with 20 `articleChanged` subscriptions each on an
//!   article with a 100 kB body, and 10 event streams, none of them reading, while another user
//!   toggles a favorite on it;
//! - **slowloris**: 600 connections that send half a request head and wait;
//! - **refused documents**: unique 5,000-token documents that fail, from four connections;
//! - **the document cache**: unique documents of 450 tiny fields that fail validation.
//!
//! It asserts, and prints: the well-behaved client's p99 under its bound, the server's resident
//! memory under its ceiling for the whole run, `/health/live` answering within a second
//! throughout, a code on every refusal the attackers read, and the memory back within a margin of
//! where it started once the attackers stop.
//!
//! `cargo run --release --features bench --bin conduit-hostile -- --help`

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Runs the attacks against a server and checks that it held.
#[derive(Debug, Parser)]
#[command(name = "conduit-hostile")]
struct Args {
    /// The server's public address (`127.0.0.1:port`).
    #[arg(long)]
    addr: SocketAddr,
    /// The server's admin listener (`/metrics` and the probes).
    #[arg(long)]
    admin: SocketAddr,
    /// The server's process id (its memory is read from /proc).
    #[arg(long)]
    pid: u32,
    /// How long the attacks last, in seconds.
    #[arg(long, default_value_t = 45)]
    seconds: u64,
    /// The well-behaved client's p99 must stay under this, in milliseconds.
    #[arg(long, default_value_t = 250)]
    max_p99_ms: u64,
    /// The server's resident memory must stay under this, in MiB.
    #[arg(long, default_value_t = 512)]
    max_rss_mib: u64,
    /// Once the attackers stop, the memory must come back within this of where it started, in
    /// MiB: the caches may keep what was read, at most their bounds (64 MiB of responses and
    /// 16 MiB of documents by default), and the allocator keeps some of what was freed (32 MiB).
    #[arg(long, default_value_t = 112)]
    rss_margin_mib: u64,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// A client bound to `127.0.0.<last>`.
fn client_from(last: u8, timeout: Duration) -> Result<reqwest::Client, Failure> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .timeout(timeout)
        .build()?)
}

/// A TCP connection to `addr` from `127.0.0.<last>`, with a small receive buffer when asked.
async fn connect_from(addr: SocketAddr, last: u8, small: bool) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
        0,
    ))?;
    if small {
        socket.set_recv_buffer_size(4096)?;
    }
    socket.connect(addr).await
}

/// The resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib / 1024)
}

/// What the run saw.
#[derive(Default)]
struct Observed {
    /// Well-behaved client's latencies (ms) and failures.
    latencies: Mutex<Vec<f64>>,
    good_failures: AtomicU64,
    /// The slowest `/health/live` on each listener (ms) and the probes that failed.
    slowest_live_public: AtomicU64,
    slowest_live_admin: AtomicU64,
    probe_failures: AtomicU64,
    /// Highest resident memory (MiB).
    max_rss: AtomicU64,
    /// Refusals the attackers read, by code; and those without one.
    codes: Mutex<BTreeMap<String, u64>>,
    uncoded: AtomicU64,
    /// Attack requests answered, by attack.
    answered: Mutex<BTreeMap<&'static str, u64>>,
}

impl Observed {
    fn code(&self, code: Option<&str>) {
        match code {
            Some(code) => {
                *self
                    .codes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(code.to_owned())
                    .or_default() += 1;
            }
            None => {
                self.uncoded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Notes every error's code in a GraphQL answer (a list for a batch).
    fn answer(&self, attack: &'static str, answer: &Value) {
        *self
            .answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(attack)
            .or_default() += 1;
        let answers = match answer {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for answer in &answers {
            if let Some(errors) = answer["errors"].as_array() {
                for error in errors {
                    self.code(error["extensions"]["code"].as_str());
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = Args::parse();
    let base = format!("http://{}", args.addr);
    println!(
        "hostile-load suite against {base} (pid {}), {} s of attacks",
        args.pid, args.seconds
    );
    let setup = client_from(9, Duration::from_secs(30))?;
    let fixture = seed(&setup, &base).await?;
    let observed = Arc::new(Observed::default());
    let stop = Arc::new(AtomicBool::new(false));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start_rss = rss_mib(args.pid);
    println!("server memory before the attacks: {start_rss} MiB");

    let tasks = vec![
        tokio::spawn(watch(args.pid, Arc::clone(&observed), Arc::clone(&stop))),
        tokio::spawn(probes(
            args.addr,
            args.admin,
            Arc::clone(&observed),
            Arc::clone(&stop),
        )),
        tokio::spawn(well_behaved(
            base.clone(),
            Arc::clone(&observed),
            Arc::clone(&stop),
        )),
    ];
    let attacks_started = Instant::now();
    let mut attacks = Vec::new();
    for last in [10, 11] {
        attacks.push(tokio::spawn(fragment_bombs(
            base.clone(),
            last,
            Arc::clone(&observed),
            Arc::clone(&stop),
        )));
    }
    attacks.push(tokio::spawn(unread_responses(args.addr, Arc::clone(&stop))));
    attacks.push(tokio::spawn(slow_websockets(
        args.addr,
        fixture.heavy_slug.clone(),
        Arc::clone(&observed),
        Arc::clone(&stop),
    )));
    attacks.push(tokio::spawn(slow_event_streams(
        args.addr,
        fixture.heavy_slug.clone(),
        Arc::clone(&stop),
    )));
    attacks.push(tokio::spawn(toggle_favorites(
        base.clone(),
        fixture.toggler_token.clone(),
        fixture.heavy_slug.clone(),
        Arc::clone(&stop),
    )));
    attacks.push(tokio::spawn(slowloris(
        args.addr,
        Arc::clone(&observed),
        Arc::clone(&stop),
    )));
    for worker in 0..4 {
        attacks.push(tokio::spawn(refused_documents(
            base.clone(),
            worker,
            Arc::clone(&observed),
            Arc::clone(&stop),
        )));
    }
    attacks.push(tokio::spawn(cache_flood(
        base.clone(),
        Arc::clone(&observed),
        Arc::clone(&stop),
    )));

    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for attack in attacks {
        let _ = tokio::time::timeout(Duration::from_secs(15), attack).await;
    }
    let attacked_for = attacks_started.elapsed();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    // What the attackers left behind is dropped: unread answers after the send timeout, slowloris
    // connections after the header timeout, slow subscribers with their connections.
    // The lowest reading over the next 30 s counts: the allocator hands memory back in its own time.
    let mut end_rss = u64::MAX;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        end_rss = end_rss.min(rss_mib(args.pid));
        if end_rss <= start_rss + args.rss_margin_mib {
            break;
        }
    }

    report(&args, &observed, attacked_for, start_rss, end_rss)
}

/// What the attacks need: an article with a 100 kB body, 45 more tagged `big`, and a user who
/// toggles a favorite on the first.
struct Fixture {
    heavy_slug: String,
    toggler_token: String,
}

async fn gql(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Result<Value, Failure> {
    let mut request = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Ok(request.send().await?.json().await?)
}

async fn register(client: &reqwest::Client, base: &str, username: &str) -> Result<String, Failure> {
    let answer = gql(
        client,
        base,
        None,
        "mutation($input: RegisterInput!) { register(input: $input) { token } }",
        json!({ "input": { "username": username, "email": format!("{username}@example.com"), "password": "hostile-password" } }),
    )
    .await?;
    answer["data"]["register"]["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("register {username}: {answer}").into())
}

async fn seed(client: &reqwest::Client, base: &str) -> Result<Fixture, Failure> {
    let writer = register(client, base, "writer").await?;
    let body = "x".repeat(100_000);
    let mut heavy_slug = String::new();
    for n in 0..46 {
        let tag = if n == 0 { "heavy" } else { "big" };
        let answer = gql(
            client,
            base,
            Some(&writer),
            "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }",
            json!({ "input": { "title": format!("Big {n}"), "description": "big", "body": body, "tags": [tag] } }),
        )
        .await?;
        let slug = answer["data"]["createArticle"]["article"]["slug"]
            .as_str()
            .ok_or_else(|| format!("createArticle: {answer}"))?;
        if n == 0 {
            heavy_slug = slug.to_owned();
        }
    }
    for n in 0..20 {
        gql(
            client,
            base,
            Some(&writer),
            "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }",
            json!({ "input": { "title": format!("Small {n}"), "description": "small", "body": "short", "tags": ["small"] } }),
        )
        .await?;
    }
    let toggler_token = register(client, base, "toggler").await?;
    println!("seeded: 46 articles with 100 kB bodies, 20 small ones");
    Ok(Fixture {
        heavy_slug,
        toggler_token,
    })
}

/// Samples the server's memory every 200 ms.
async fn watch(pid: u32, observed: Arc<Observed>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        observed.max_rss.fetch_max(rss_mib(pid), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `/health/live` on the public listener (from an address of its own) and on the admin listener,
/// every 250 ms, each within a second.
async fn probes(
    addr: SocketAddr,
    admin: SocketAddr,
    observed: Arc<Observed>,
    stop: Arc<AtomicBool>,
) {
    let Ok(client) = client_from(3, Duration::from_secs(1)) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        for (url, slowest) in [
            (
                format!("http://{addr}/health/live"),
                &observed.slowest_live_public,
            ),
            (
                format!("http://{admin}/health/live"),
                &observed.slowest_live_admin,
            ),
        ] {
            let started = Instant::now();
            match client.get(&url).send().await {
                Ok(response) if response.status() == 200 => {
                    slowest.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                _ => {
                    observed.probe_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A frontend reading a page of articles with their authors ten times a second: 9 points each,
/// within the budget's 100 points a second.
async fn well_behaved(base: String, observed: Arc<Observed>, stop: Arc<AtomicBool>) {
    let Ok(client) = client_from(2, Duration::from_secs(10)) else {
        return;
    };
    let query = "{ articles(first: 4, tag: \"small\") { totalCount nodes { slug title author { username } } } }";
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answer = client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": query }))
            .send()
            .await;
        let ok = match answer {
            Ok(response) if response.status() == 200 => {
                response.json::<Value>().await.is_ok_and(|body| {
                    body.get("errors").is_none() && body["data"]["articles"]["totalCount"] == 20
                })
            }
            _ => false,
        };
        if ok {
            observed
                .latencies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(started.elapsed().as_secs_f64() * 1000.0);
        } else {
            observed.good_failures.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `query A { __typename } query B { ...F0 }` with eight levels of ten spreads, run as `A`.
async fn fragment_bombs(base: String, last: u8, observed: Arc<Observed>, stop: Arc<AtomicBool>) {
    let Ok(client) = client_from(last, Duration::from_secs(10)) else {
        return;
    };
    let mut document = String::from("query A { __typename } query B { ...F0 }");
    for level in 0..8 {
        let spreads = format!("...F{} ", level + 1).repeat(10);
        document.push_str(&format!(" fragment F{level} on Query {{ {spreads}}}"));
    }
    document.push_str(" fragment F8 on Query { __typename }");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Each one new to the server: a comment makes the text unique.
        let body = json!({ "query": format!("{document} # {last}-{n}"), "operationName": "A" });
        n += 1;
        if let Ok(response) = client
            .post(format!("{base}/graphql"))
            .json(&body)
            .send()
            .await
            && let Ok(answer) = response.json::<Value>().await
        {
            observed.answer("fragment bombs", &answer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Batches of ten `articles(first: 100, tag: "big") { nodes { body } }` on connections that never
/// read, a new one every half second.
async fn unread_responses(addr: SocketAddr, stop: Arc<AtomicBool>) {
    let batch = Value::Array(vec![
        json!({ "query": "{ articles(first: 100, tag: \"big\") { nodes { body } } }" });
        10
    ])
    .to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{batch}",
        batch.len()
    );
    let mut held = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(mut stream) = connect_from(addr, 12, true).await
            && stream.write_all(request.as_bytes()).await.is_ok()
        {
            held.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A WebSocket from `127.0.0.<last>` with a small receive window: init, then `subscriptions`
/// subscriptions to `query`; it never reads after that.
async fn slow_socket(
    addr: SocketAddr,
    last: u8,
    query: &str,
    subscriptions: usize,
) -> Result<impl Sized, Failure> {
    let stream = connect_from(addr, last, true).await?;
    let mut request = format!("ws://{addr}/graphql").into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream).await?;
    socket
        .send(Message::Text(
            json!({ "type": "connection_init", "payload": {} })
                .to_string()
                .into(),
        ))
        .await?;
    // The ack, then nothing is read again.
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
    for id in 0..subscriptions {
        socket
            .send(Message::Text(
                json!({ "id": id.to_string(), "type": "subscribe", "payload": { "query": query } })
                    .to_string()
                    .into(),
            ))
            .await?;
    }
    Ok(socket)
}

/// Ten WebSockets with twenty `articleChanged` subscriptions each on the 100 kB article.
async fn slow_websockets(
    addr: SocketAddr,
    slug: String,
    observed: Arc<Observed>,
    stop: Arc<AtomicBool>,
) {
    let query = format!(
        "subscription {{ articleChanged(slug: \"{slug}\") {{ article {{ body favoritesCount }} }} }}"
    );
    let mut held = Vec::new();
    for _ in 0..10 {
        match slow_socket(addr, 13, &query, 20).await {
            Ok(socket) => held.push(socket),
            Err(err) => eprintln!("slow websocket: {err}"),
        }
    }
    *observed
        .answered
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry("slow websockets opened")
        .or_default() += held.len() as u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(held);
}

/// Ten event streams of `articleChanged` on the 100 kB article, never read.
async fn slow_event_streams(addr: SocketAddr, slug: String, stop: Arc<AtomicBool>) {
    let body = json!({ "query": format!("subscription {{ articleChanged(slug: \"{slug}\") {{ article {{ body favoritesCount }} }} }}") }).to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut held = Vec::new();
    for _ in 0..10 {
        if let Ok(mut stream) = connect_from(addr, 14, true).await
            && stream.write_all(request.as_bytes()).await.is_ok()
        {
            held.push(stream);
        }
    }
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(held);
}

/// Another user favorites and unfavorites the 100 kB article every second.
async fn toggle_favorites(base: String, token: String, slug: String, stop: Arc<AtomicBool>) {
    let Ok(client) = client_from(15, Duration::from_secs(10)) else {
        return;
    };
    let mut favorite = true;
    while !stop.load(Ordering::Relaxed) {
        let mutation = if favorite {
            "favoriteArticle"
        } else {
            "unfavoriteArticle"
        };
        favorite = !favorite;
        let _ = gql(
            &client,
            &base,
            Some(&token),
            &format!("mutation($slug: String!) {{ {mutation}(slug: $slug) {{ article {{ favoritesCount }} }} }}"),
            json!({ "slug": slug }),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// 600 connections that send half a request head and wait; each closed one is opened again.
async fn slowloris(addr: SocketAddr, observed: Arc<Observed>, stop: Arc<AtomicBool>) {
    let mut workers = Vec::new();
    for _ in 0..600 {
        let observed = Arc::clone(&observed);
        let stop = Arc::clone(&stop);
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut stream) = connect_from(addr, 16, false).await else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                if stream
                    .write_all(b"GET /graphql HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .is_err()
                {
                    continue;
                }
                // Held until the server closes it (or refuses it at once, with a code).
                let mut answer = Vec::new();
                let mut buffer = [0u8; 1024];
                loop {
                    tokio::select! {
                        read = stream.read(&mut buffer) => match read {
                            Ok(0) | Err(_) => break,
                            Ok(n) => answer.extend_from_slice(&buffer[..n]),
                        },
                        () = tokio::time::sleep(Duration::from_millis(500)) => {
                            if stop.load(Ordering::Relaxed) { break; }
                        }
                    }
                }
                if !answer.is_empty() {
                    let text = String::from_utf8_lossy(&answer);
                    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
                    let code = serde_json::from_str::<Value>(body).ok().and_then(|body| {
                        body["errors"][0]["extensions"]["code"]
                            .as_str()
                            .map(str::to_owned)
                    });
                    observed.code(code.as_deref());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
}

/// Unique documents of 5,000 tokens that fail, as fast as the answers come.
async fn refused_documents(
    base: String,
    worker: u8,
    observed: Arc<Observed>,
    stop: Arc<AtomicBool>,
) {
    let Ok(client) = client_from(17, Duration::from_secs(10)) else {
        return;
    };
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let fields: String = (0..4_990).map(|i| format!(" f{worker}x{n}x{i}")).collect();
        n += 1;
        if let Ok(response) = client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": format!("{{{fields} }}") }))
            .send()
            .await
            && let Ok(answer) = response.json::<Value>().await
        {
            observed.answer("refused documents", &answer);
        }
    }
}

/// Unique documents of 450 tiny fields that fail validation, as fast as the answers come.
async fn cache_flood(base: String, observed: Arc<Observed>, stop: Arc<AtomicBool>) {
    let Ok(client) = client_from(18, Duration::from_secs(10)) else {
        return;
    };
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let fields: String = (0..450).map(|i| format!(" a{i}")).collect();
        n += 1;
        if let Ok(response) = client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": format!("query Q{n} {{ viewer {{ {fields} }} }}") }))
            .send()
            .await
            && let Ok(answer) = response.json::<Value>().await
        {
            observed.answer("cache flood", &answer);
        }
    }
}

/// Prints the figures and fails when a bound was crossed.
fn report(
    args: &Args,
    observed: &Observed,
    attacked_for: Duration,
    start_rss: u64,
    end_rss: u64,
) -> Result<(), Failure> {
    let mut latencies = observed
        .latencies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    latencies.sort_by(f64::total_cmp);
    let at = |share: f64| {
        latencies
            .get(((latencies.len() as f64 * share) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let (p50, p99) = (at(0.50), at(0.99));
    let max_rss = observed.max_rss.load(Ordering::Relaxed);
    let good_failures = observed.good_failures.load(Ordering::Relaxed);
    let probe_failures = observed.probe_failures.load(Ordering::Relaxed);
    let live_public = observed.slowest_live_public.load(Ordering::Relaxed);
    let live_admin = observed.slowest_live_admin.load(Ordering::Relaxed);
    let uncoded = observed.uncoded.load(Ordering::Relaxed);
    println!();
    println!("| figure | result | bound |");
    println!("|---|---:|---:|");
    println!(
        "| attacks | {:.0} s, all at once | |",
        attacked_for.as_secs_f64()
    );
    println!(
        "| well-behaved client | {} requests, p50 {p50:.1} ms, p99 {p99:.1} ms, {good_failures} failed | p99 < {} ms, none failed |",
        latencies.len(),
        args.max_p99_ms
    );
    println!(
        "| server memory | {start_rss} MiB before, at most {max_rss} MiB during, {end_rss} MiB after | < {} MiB; after within {} MiB of before |",
        args.max_rss_mib, args.rss_margin_mib
    );
    println!(
        "| `/health/live` | slowest {live_public} ms (public), {live_admin} ms (admin), {probe_failures} failed | < 1000 ms, none failed |"
    );
    let codes = observed
        .codes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(code, count)| format!("{code} {count}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "| refusals read by the attackers | {codes}; {uncoded} without a code | every one with a code |"
    );
    let answered = observed
        .answered
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(attack, count)| format!("{attack} {count}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!("| attack requests answered | {answered} | |");
    println!();
    let mut failed = Vec::new();
    if latencies.is_empty() || p99 >= args.max_p99_ms as f64 {
        failed.push(format!("the well-behaved client's p99 is {p99:.1} ms"));
    }
    if good_failures > 0 {
        failed.push(format!("{good_failures} well-behaved requests failed"));
    }
    if max_rss >= args.max_rss_mib {
        failed.push(format!("the server reached {max_rss} MiB"));
    }
    if probe_failures > 0 || live_public >= 1000 || live_admin >= 1000 {
        failed.push(format!(
            "/health/live: {probe_failures} failed, slowest {live_public} / {live_admin} ms"
        ));
    }
    if uncoded > 0 {
        failed.push(format!("{uncoded} refusals without a code"));
    }
    if end_rss > start_rss + args.rss_margin_mib {
        failed.push(format!(
            "memory did not come back: {start_rss} -> {end_rss} MiB"
        ));
    }
    if failed.is_empty() {
        println!("hostile-load suite: the server held");
        Ok(())
    } else {
        Err(failed.join("; ").into())
    }
}
