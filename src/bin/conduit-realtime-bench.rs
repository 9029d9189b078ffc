//! Real-time benchmark against running servers (see `bench/realtime.sh`, which starts them):
//!
//! - `idle`: opens N WebSockets, each signed in and subscribed, and reports the server's resident
//!   memory per socket (read from `/proc/<pid>/status`);
//! - `fanout`: opens N subscribers of one article on one server, adds comments through another
//!   (or the same) server, and reports the time from each mutation's request to each delivery at
//!   p50 and p99 (an upper bound on commit-to-delivery: it includes the mutation itself, whose own
//!   latency is reported beside it).
//!
//! `cargo run --release --features bench --bin conduit-realtime-bench -- --help`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Measures subscriptions: idle memory per socket and fan-out latency.
#[derive(Debug, Parser)]
#[command(name = "conduit-realtime-bench")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Memory per idle, subscribed WebSocket.
    Idle {
        /// The server (`http://host:port`).
        #[arg(long)]
        url: String,
        /// The server's process id (its memory is read from /proc).
        #[arg(long)]
        pid: u32,
        /// WebSockets to open.
        #[arg(long, default_value_t = 10_000)]
        sockets: usize,
    },
    /// Commit-to-delivery time for many subscribers of one article.
    Fanout {
        /// The server the subscribers connect to.
        #[arg(long)]
        subscribe_url: String,
        /// The server the comments are added through (default: the same).
        #[arg(long)]
        mutate_url: Option<String>,
        /// Subscribers of the article.
        #[arg(long, default_value_t = 1_000)]
        subscribers: usize,
        /// Comments to add, one after another once each was delivered to every subscriber.
        #[arg(long, default_value_t = 30)]
        events: usize,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Args::parse().command {
        Command::Idle { url, pid, sockets } => idle(&url, pid, sockets).await,
        Command::Fanout {
            subscribe_url,
            mutate_url,
            subscribers,
            events,
        } => {
            let mutate_url = mutate_url.unwrap_or_else(|| subscribe_url.clone());
            fanout(&subscribe_url, &mutate_url, subscribers, events).await
        }
    }
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

/// Opens a signed-out WebSocket to `url`, initialised, subscribed to `query`; every message it
/// then gets goes to `events` (pings are answered).
async fn subscriber(
    url: &str,
    query: &str,
    variables: Value,
    events: Option<mpsc::UnboundedSender<(Instant, Value)>>,
) -> Result<tokio::task::JoinHandle<()>, Box<dyn std::error::Error>> {
    let ws_url = format!("{}/graphql", url.replacen("http", "ws", 1));
    let mut request = ws_url.into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    ws.send(Message::Text(
        json!({ "type": "connection_init", "payload": {} })
            .to_string()
            .into(),
    ))
    .await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => break,
            Some(Ok(_)) => continue,
            other => return Err(format!("no connection_ack: {other:?}").into()),
        }
    }
    ws.send(Message::Text(
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } })
            .to_string()
            .into(),
    ))
    .await?;
    Ok(tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let received = Instant::now();
            let Ok(message) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if message["type"] == "ping" {
                let pong = json!({ "type": "pong" }).to_string();
                if ws.send(Message::Text(pong.into())).await.is_err() {
                    break;
                }
            } else if let Some(events) = &events {
                let _ = events.send((received, message));
            }
        }
    }))
}

async fn idle(url: &str, pid: u32, sockets: usize) -> Result<(), Box<dyn std::error::Error>> {
    let before = rss_kib(pid)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(sockets);
    for opened in 0..sockets {
        tasks.push(
            subscriber(
                url,
                "subscription { articlePublished { slug title } }",
                json!({}),
                None,
            )
            .await?,
        );
        if (opened + 1) % 2_000 == 0 {
            println!("  {} sockets open", opened + 1);
        }
    }
    let opened_in = started.elapsed();
    // Let the server settle (allocator, subscriptions opened) before reading its memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid)?;
    let alive = tasks.iter().filter(|task| !task.is_finished()).count();
    println!(
        "idle: {alive} of {sockets} subscribed sockets open (opened in {:.1} s); server RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per socket",
        opened_in.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / sockets as f64
    );
    for task in tasks {
        task.abort();
    }
    Ok(())
}

/// Posts a GraphQL operation; its JSON answer.
async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Result<Value, Box<dyn std::error::Error>> {
    let mut request = client
        .post(format!("{url}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer: Value = request.send().await?.json().await?;
    if answer.get("errors").is_some() {
        return Err(format!("{query}: {answer}").into());
    }
    Ok(answer)
}

/// The `p`th percentile of sorted `values`.
fn percentile(values: &[Duration], p: f64) -> Duration {
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(index).copied().unwrap_or_default()
}

async fn fanout(
    subscribe_url: &str,
    mutate_url: &str,
    subscribers: usize,
    events: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let name = format!("fan{}", rand::random::<u32>());
    let registered = post(
        &client,
        mutate_url,
        None,
        "mutation($input: RegisterInput!) { register(input: $input) { token } }",
        json!({ "input": { "username": name, "email": format!("{name}@example.com"), "password": "password123" } }),
    )
    .await?;
    let token = registered["data"]["register"]["token"]
        .as_str()
        .ok_or("no token")?
        .to_owned();
    let created = post(
        &client,
        mutate_url,
        Some(&token),
        "mutation($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }",
        json!({ "input": { "title": format!("Fan-out {name}"), "description": "d", "body": "b" } }),
    )
    .await?;
    let slug = created["data"]["createArticle"]["article"]["slug"]
        .as_str()
        .ok_or("no slug")?
        .to_owned();

    let (sender, mut deliveries) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        tasks.push(
            subscriber(
                subscribe_url,
                "subscription($slug: String!) { commentAdded(slug: $slug) { id body createdAt author { username following } } }",
                json!({ "slug": slug }),
                Some(sender.clone()),
            )
            .await?,
        );
    }
    drop(sender);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut latencies = Vec::with_capacity(subscribers * events);
    let mut mutation_latencies = Vec::with_capacity(events);
    let mut missing = 0usize;
    let token = Arc::new(token);
    for event in 0..events {
        let sent = Instant::now();
        post(
            &client,
            mutate_url,
            Some(&token),
            "mutation($slug: String!, $body: String!) { addComment(slug: $slug, input: { body: $body }) { comment { id } } }",
            json!({ "slug": slug, "body": format!("event {event}") }),
        )
        .await?;
        mutation_latencies.push(sent.elapsed());
        let mut received = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while received < subscribers {
            match tokio::time::timeout_at(deadline, deliveries.recv()).await {
                Ok(Some((at, message))) => {
                    if message["type"] == "next" {
                        received += 1;
                        latencies.push(at.saturating_duration_since(sent));
                    }
                }
                _ => break,
            }
        }
        missing += subscribers - received;
    }
    latencies.sort();
    mutation_latencies.sort();
    println!(
        "fanout: {subscribers} subscribers on {subscribe_url}, {events} comments through {mutate_url}: mutation request to delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} deliveries, {missing} missing); the mutation alone p50 {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        latencies.len(),
        percentile(&mutation_latencies, 0.50).as_secs_f64() * 1e3,
    );
    for task in tasks {
        task.abort();
    }
    Ok(())
}
