//! Load benchmark: seeds a realistic dataset, starts the real server on a local port and measures
//! requests per second and latency percentiles for GraphQL queries sent over HTTP.
//!
//! `cargo run --release --features bench --bin conduit-bench -- --help`

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use clap::Parser;
use conduit::app::App;
use conduit::auth::Passwords;
use conduit::config::Config;
use entity::{article, article_tag, comment, favorite, follow, tag, user};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Set, TransactionTrait,
};
use serde_json::json;

/// Measures Conduit's throughput and latency on a seeded dataset.
#[derive(Debug, Parser)]
#[command(name = "conduit-bench")]
struct Args {
    /// Database to seed and serve from (default: a new SQLite file in a temporary directory).
    /// A PostgreSQL database must be empty: the benchmark migrates and seeds it.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Users to create.
    #[arg(long, default_value_t = 2_000)]
    users: usize,
    /// Articles to create.
    #[arg(long, default_value_t = 20_000)]
    articles: usize,
    /// Comments to create.
    #[arg(long, default_value_t = 50_000)]
    comments: usize,
    /// Distinct tags; each article gets three.
    #[arg(long, default_value_t = 50)]
    tags: usize,
    /// Favorites to create.
    #[arg(long, default_value_t = 40_000)]
    favorites: usize,
    /// Clients sending requests at the same time.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long each scenario runs, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Charge every request to a cost budget (large enough never to refuse), to measure what rate
    /// limiting adds: in process, or in Redis with `--redis-url`.
    #[arg(long)]
    rate_limit: bool,
    /// Redis for the budgets (with `--rate-limit`).
    #[arg(long)]
    redis_url: Option<String>,
}

/// Rows per INSERT statement while seeding.
const CHUNK: usize = 500;

/// A named GraphQL request to measure.
struct Scenario {
    name: &'static str,
    query: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "nested article list (20 articles, author, tags, favoritesCount, 5 comments with authors)",
        query: "{ articles(first: 20) { totalCount edges { cursor node { slug title description createdAt author { username image } tags { name } favoritesCount comments(first: 5) { nodes { body createdAt author { username } } } } } } }",
    },
    Scenario {
        name: "article list filtered by tag (20 articles with authors)",
        query: "{ articles(first: 20, tag: \"tag-7\") { edges { node { slug title author { username } tags { name } } } } }",
    },
    Scenario {
        name: "popular tags (first 20)",
        query: "{ tags(first: 20) { nodes { name } } }",
    },
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let temp = tempfile_dir()?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", temp.join("bench.db").display()));
    let mut config = Config::with_database(database_url.clone());
    config.server.listen = "127.0.0.1:0".parse()?;
    config.auth.jwt_secret = Some("benchmark-secret-benchmark-secret-0123".into());
    config.database.max_connections = 16;
    // The load generator is a single client: a normal budget would throttle the measurement.
    config.rate_limit.enabled = args.rate_limit;
    config.rate_limit.capacity = u32::MAX;
    config.rate_limit.restore_rate = u32::MAX;
    config.redis.url = args.redis_url.clone();
    config.redis.prefix = format!("conduit-bench:{}:", std::process::id());
    // Two servers on one database: without and with the response cache (in Redis with
    // `--redis-url`, in process otherwise).
    config.cache.enabled = false;
    let uncached = App::build(&config).await?;
    config.cache.enabled = true;
    let cached = App::build(&config).await?;
    let db = uncached.state().db.clone();

    let backend = if database_url.starts_with("sqlite") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    println!(
        "seeding {backend}: {} users, {} articles, {} comments, {} tags (3 per article), {} favorites",
        args.users, args.articles, args.comments, args.tags, args.favorites
    );
    let started = Instant::now();
    seed(&db, &args).await?;
    println!("seeded in {:.1} s", started.elapsed().as_secs_f64());

    let mut servers = Vec::new();
    let mut stops = Vec::new();
    for (name, app) in [("uncached", uncached), ("cached", cached)] {
        let url = format!("http://{}/graphql", app.local_addr()?);
        let statements = app.state().statements.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        servers.push((
            name,
            url,
            statements,
            tokio::spawn(app.run(async {
                let _ = stopped.await;
            })),
        ));
        stops.push(stop);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;

    println!(
        "\n{} concurrent clients, {} s per scenario, anonymous, over HTTP on 127.0.0.1\n",
        args.concurrency, args.seconds
    );
    for scenario in SCENARIOS {
        println!("{}", scenario.name);
        for (name, url, statements, _) in &servers {
            // Warm up connections, the database's caches and (cached) the entry.
            for _ in 0..20 {
                send(&client, url, scenario.query).await?;
            }
            let statements_before = statements.get();
            let report =
                measure(&client, url, scenario.query, args.concurrency, args.seconds).await?;
            let per_request =
                (statements.get() - statements_before) as f64 / report.requests.max(1) as f64;
            println!(
                "  {name:>8} {:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   {} requests, {:.2} SQL statements each",
                report.requests as f64 / report.elapsed.as_secs_f64(),
                millis(report.percentile(0.50)),
                millis(report.percentile(0.99)),
                millis(report.percentile(1.0)),
                report.requests,
                per_request,
            );
        }
    }
    for stop in stops {
        let _ = stop.send(());
    }
    for (_, _, _, server) in servers {
        server.await??;
    }
    drop(temp);
    Ok(())
}

/// A temporary directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> std::io::Result<TempDir> {
    let dir = std::env::temp_dir().join(format!("conduit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(TempDir(dir))
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Latencies of one scenario.
struct Report {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Report {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index.min(self.latencies.len() - 1)]
    }
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    query: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let response: serde_json::Value = client
        .post(url)
        .json(&json!({ "query": query }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if let Some(errors) = response.get("errors") {
        return Err(format!("the query failed: {errors}").into());
    }
    Ok(())
}

async fn measure(
    client: &reqwest::Client,
    url: &str,
    query: &'static str,
    concurrency: usize,
    seconds: u64,
) -> Result<Report, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_owned();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                send(&client, &url, query)
                    .await
                    .map_err(|err| err.to_string())?;
                latencies.push(sent.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Report {
        requests: latencies.len(),
        elapsed,
        latencies,
    })
}

/// Inserts the dataset in chunks, one transaction per table.
async fn seed(db: &DatabaseConnection, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let hash = Passwords::new(1)?.hash("password123".into()).await?;
    let now = Utc::now();
    let at = |seconds_ago: usize| {
        let time = now - TimeDelta::seconds(seconds_ago as i64);
        chrono::DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
    };
    let txn = db.begin().await?;

    let users: Vec<user::ActiveModel> = (0..args.users)
        .map(|n| user::ActiveModel {
            username: Set(format!("user{n}")),
            email: Set(format!("user{n}@example.com")),
            password_hash: Set(hash.clone()),
            bio: Set(Some(format!("I am user {n}."))),
            image: Set(None),
            created_at: Set(at(args.articles + n)),
            updated_at: Set(at(args.articles + n)),
            ..Default::default()
        })
        .collect();
    insert_chunks(&txn, users).await?;

    let tags: Vec<tag::ActiveModel> = (0..args.tags)
        .map(|n| tag::ActiveModel {
            name: Set(format!("tag-{n}")),
            ..Default::default()
        })
        .collect();
    insert_chunks(&txn, tags).await?;

    let articles: Vec<article::ActiveModel> = (0..args.articles)
        .map(|n| article::ActiveModel {
            slug: Set(format!("article-{n}")),
            title: Set(format!("Article {n}")),
            description: Set(format!("What article {n} is about")),
            body: Set(format!("The body of article {n}. ").repeat(20)),
            author_id: Set((n % args.users) as i64 + 1),
            created_at: Set(at(args.articles - n)),
            updated_at: Set(at(args.articles - n)),
            ..Default::default()
        })
        .collect();
    insert_chunks(&txn, articles).await?;

    let links: Vec<article_tag::ActiveModel> = (0..args.articles)
        .flat_map(|n| {
            (0..3).map(move |k| article_tag::ActiveModel {
                article_id: Set(n as i64 + 1),
                tag_id: Set(((n * 7 + k * 13) % args.tags) as i64 + 1),
            })
        })
        .collect();
    let mut unique_links = links;
    unique_links.dedup_by(|a, b| a.article_id == b.article_id && a.tag_id == b.tag_id);
    insert_chunks(&txn, unique_links).await?;

    let comments: Vec<comment::ActiveModel> = (0..args.comments)
        .map(|n| comment::ActiveModel {
            body: Set(format!("Comment number {n}")),
            article_id: Set((args.articles - 1 - (n % args.articles)) as i64 + 1),
            author_id: Set(((n * 31) % args.users) as i64 + 1),
            created_at: Set(at(args.comments - n)),
            updated_at: Set(at(args.comments - n)),
            ..Default::default()
        })
        .collect();
    insert_chunks(&txn, comments).await?;

    let favorites: Vec<favorite::ActiveModel> = (0..args.favorites.min(args.users * args.articles))
        .map(|n| favorite::ActiveModel {
            user_id: Set((n % args.users) as i64 + 1),
            article_id: Set((n / args.users) as i64 + 1),
            created_at: Set(at(n)),
        })
        .collect();
    insert_chunks(&txn, favorites).await?;

    let follows: Vec<follow::ActiveModel> = (0..args.users)
        .flat_map(|n| {
            (1..=5).map(move |k| follow::ActiveModel {
                follower_id: Set(n as i64 + 1),
                followee_id: Set(((n + k) % args.users) as i64 + 1),
                created_at: Set(now),
            })
        })
        .filter(|f| f.follower_id != f.followee_id)
        .collect();
    insert_chunks(&txn, follows).await?;

    txn.commit().await?;
    // Fresh statistics and visibility maps, as a long-running database would have them.
    let maintenance = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "VACUUM ANALYZE",
        _ => "ANALYZE",
    };
    db.execute_unprepared(maintenance).await?;
    Ok(())
}

async fn insert_chunks<A>(
    txn: &sea_orm::DatabaseTransaction,
    rows: Vec<A>,
) -> Result<(), sea_orm::DbErr>
where
    A: ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(CHUNK).collect();
        A::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}
