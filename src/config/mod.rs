//! Typed settings from the command line and `CONDUIT_*` environment variables, grouped by concern
//! and validated at start-up.
//!
//! Each group is plain data: the type that uses a group builds itself from it, next to that type
//! (`Limits::from(&LimitSettings)`, ...), so this module imports nothing from the crate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod report;

/// The `conduit` command line.
#[derive(Debug, Parser)]
#[command(
    name = "conduit",
    version,
    about = "Conduit: a GraphQL API server for a blogging platform"
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every command.
    #[command(flatten)]
    pub config: Config,
}

/// The sub-commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the migrations, then serve the API (the default).
    Serve,
    /// Run the pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL) to standard output and exit; `check` and `usage` weigh a
    /// schema change against recorded traffic.
    Schema(SchemaArgs),
    /// Print the effective configuration, with where each value comes from (secrets redacted).
    Config,
    /// Fill an empty database with deterministic demo data.
    Seed(SeedArgs),
}

/// `conduit schema`: print the SDL, or one of its sub-commands.
#[derive(Debug, Clone, Args)]
pub struct SchemaArgs {
    /// What to do with the schema (default: print it).
    #[command(subcommand)]
    pub action: Option<SchemaAction>,
}

/// What `conduit schema` does besides printing the SDL.
#[derive(Debug, Clone, Subcommand)]
pub enum SchemaAction {
    /// Classify every change from the released schema (or `--against`) to the served one (or
    /// `--schema`) as breaking, dangerous or safe, with the clients that used what changed.
    /// Exit status: 0 when no breaking change is used, 1 when one is, 2 on error.
    Check(SchemaCheckArgs),
    /// Who used a schema coordinate (`Article.tagList`, `Query.articles(tag:)`, `Enum.VALUE`):
    /// clients, versions, operations, counts, last seen.
    Usage(SchemaUsageArgs),
}

/// `conduit schema check`.
#[derive(Debug, Clone, Args)]
pub struct SchemaCheckArgs {
    /// The schema to compare against (default: the released baseline).
    #[arg(long, default_value = "tests/contract/released.graphql")]
    pub against: PathBuf,
    /// The proposed schema (default: the one this binary serves).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// The window of recorded usage, in days.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// `human` or `json`.
    #[arg(long, value_enum, default_value = "human")]
    pub format: OutputFormat,
}

/// `conduit schema usage`.
#[derive(Debug, Clone, Args)]
pub struct SchemaUsageArgs {
    /// The schema coordinate: `Type`, `Type.field`, `Type.field(arg:)`, `Input.field` or
    /// `Enum.VALUE`.
    pub coordinate: String,
    /// The window of recorded usage, in days.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// `human` or `json`.
    #[arg(long, value_enum, default_value = "human")]
    pub format: OutputFormat,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For a person.
    Human,
    /// One JSON document, for CI.
    Json,
}

/// The sizes of `conduit seed`.
#[derive(Debug, Clone, Copy, Args)]
pub struct SeedArgs {
    /// Users to create.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub users: u32,
    /// Articles to create, spread over the users.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub articles: u32,
    /// Comments to create, spread over the articles.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub comments: u32,
    /// Favorites to create (distinct user and article pairs).
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub favorites: u32,
    /// Follows to create (distinct pairs of users).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub follows: u32,
    /// The seed of the generator: the same seed and sizes give the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Add to a database that already holds users or articles.
    #[arg(long)]
    pub force: bool,
}

/// Where the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    /// A laptop: safe defaults, a random JWT secret when none is set.
    Development,
    /// Production: `CONDUIT_JWT_SECRET` is required.
    Production,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Every setting, by group; each has a default that is safe on a laptop.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Listeners and what they serve.
    #[command(flatten)]
    pub server: ServerSettings,
    /// The database.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// Tokens and passwords.
    #[command(flatten)]
    pub auth: AuthSettings,
    /// The shared Redis.
    #[command(flatten)]
    pub redis: RedisSettings,
    /// The response cache.
    #[command(flatten)]
    pub cache: CacheSettings,
    /// Static limits on one operation.
    #[command(flatten)]
    pub limits: LimitSettings,
    /// Cost budgets and sign-in throttling.
    #[command(flatten)]
    pub rate_limit: RateLimitSettings,
    /// The HTTP layer.
    #[command(flatten)]
    pub http: HttpSettings,
    /// Persisted and trusted documents.
    #[command(flatten)]
    pub persisted: PersistedSettings,
    /// Subscriptions over WebSockets and Server-Sent Events.
    #[command(flatten)]
    pub realtime: RealtimeSettings,
    /// Logging.
    #[command(flatten)]
    pub log: LogSettings,
    /// OpenTelemetry traces.
    #[command(flatten)]
    pub tracing: TracingSettings,
    /// Schema usage by client, and deprecation dates.
    #[command(flatten)]
    pub usage: UsageSettings,
}

/// Schema usage by client, and deprecation dates.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Schema usage")]
pub struct UsageSettings {
    /// Record which client used which schema coordinate (`true` or `false`).
    #[arg(id = "usage", long = "usage", env = "CONDUIT_USAGE", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Days of usage kept; older records are deleted.
    #[arg(long, env = "CONDUIT_USAGE_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub usage_retention_days: u32,

    /// Seconds between two writes of the usage aggregated in memory (a crash loses at most
    /// this much; a graceful stop loses nothing).
    #[arg(long, env = "CONDUIT_USAGE_FLUSH_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub usage_flush_secs: u64,

    /// Most distinct clients (name and version) one instance records; others count as `other`.
    #[arg(long, env = "CONDUIT_USAGE_MAX_CLIENTS", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub usage_max_clients: u32,

    /// Removal dates of deprecated fields (`Article.tagList=2027-06-30`, comma-separated): a
    /// response that used one carries `Sunset`.
    #[arg(long, env = "CONDUIT_SUNSET", value_delimiter = ',')]
    pub sunset: Vec<String>,
}

/// Listeners and what they serve.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerSettings {
    /// Address and port to listen on.
    #[arg(long, env = "CONDUIT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// A separate address for `GET /metrics` (kept off the public port then). Default: the
    /// public listener serves it.
    #[arg(long, env = "CONDUIT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// `development` or `production`.
    #[arg(
        long = "env",
        env = "CONDUIT_ENV",
        value_enum,
        default_value = "development"
    )]
    pub environment: Environment,

    /// Introspection and `GET /schema.graphql` (`true` or `false`).
    #[arg(long, env = "CONDUIT_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,

    /// Compiled reads (`true` or `false`): queries whose fields the areas declare run from their
    /// plan, without the executor; `false` runs every query through the executor (for
    /// comparison, or as an escape hatch).
    #[arg(long, env = "CONDUIT_COMPILED_READS", default_value_t = true, action = clap::ArgAction::Set)]
    pub compiled_reads: bool,

    /// After SIGTERM, how long to keep serving (readiness answers 503 meanwhile, so load
    /// balancers stop sending), in seconds.
    #[arg(long, env = "CONDUIT_SHUTDOWN_GRACE_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub shutdown_grace_secs: u64,

    /// Then, how long requests in flight may take to finish before the process exits, in seconds.
    #[arg(long, env = "CONDUIT_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub shutdown_timeout_secs: u64,
}

/// The database.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseSettings {
    /// Database URL: `postgres://user@host/db` or `sqlite://file.db` (created when missing).
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "sqlite://conduit.db"
    )]
    pub url: String,

    /// Most database connections in the pool.
    #[arg(long = "db-max-connections", env = "CONDUIT_DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_connections: u32,

    /// How long start-up waits for the database (retrying with backoff, each attempt logged), in
    /// seconds.
    #[arg(long = "db-connect-timeout-secs", env = "CONDUIT_DB_CONNECT_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout_secs: u64,

    /// PostgreSQL streaming replicas that queries may read from (comma-separated URLs), each with
    /// a pool of its own; mutations always use the primary (`DATABASE_URL`).
    #[arg(
        long = "database-replica-urls",
        env = "DATABASE_REPLICA_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub replica_urls: Vec<String>,

    /// A replica further behind the primary than this (milliseconds) gets no reads.
    #[arg(long = "replica-max-lag-ms", env = "CONDUIT_REPLICA_MAX_LAG_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub replica_max_lag_ms: u64,
}

/// Tokens and passwords.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthSettings {
    /// Secret that signs tokens (at least 32 bytes). Default: random per start, with a warning.
    #[arg(long, env = "CONDUIT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// How long a token stays valid, in hours.
    #[arg(long, env = "CONDUIT_TOKEN_TTL_HOURS", default_value_t = 720, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub token_ttl_hours: u64,

    /// How long an instance trusts what it knows of a user's revoked tokens, in seconds: a
    /// revocation reaches the other instances within this time (the serving one at once).
    #[arg(long, env = "CONDUIT_REVOCATION_CHECK_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub revocation_check_secs: u64,

    /// Most password hashes computed at once (default: the number of CPUs).
    #[arg(long, env = "CONDUIT_HASH_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub hash_concurrency: Option<u32>,
}

impl AuthSettings {
    /// How long a token stays valid.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_hours * 3600)
    }

    /// How many password hashes may run at once.
    pub fn hash_concurrency(&self) -> usize {
        self.hash_concurrency.map_or_else(
            || std::thread::available_parallelism().map_or(2, |n| n.get()),
            |n| n as usize,
        )
    }
}

/// The shared Redis.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisSettings {
    /// Redis URL (`redis://host:6379/0`): the response cache, rate-limit buckets and persisted
    /// queries are shared by every instance. Default: none, state stays in this process.
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "REDIS_URL",
        hide_env_values = true
    )]
    pub url: Option<String>,

    /// Prefix of every Redis key this deployment writes.
    #[arg(
        long = "redis-prefix",
        env = "CONDUIT_REDIS_PREFIX",
        default_value = "conduit:"
    )]
    pub prefix: String,

    /// Deadline of one Redis call, in milliseconds; past it the request goes on without Redis.
    #[arg(long = "redis-timeout-ms", env = "CONDUIT_REDIS_TIMEOUT_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub timeout_ms: u64,
}

impl RedisSettings {
    /// The deadline of one Redis call.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The response cache.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Response cache")]
pub struct CacheSettings {
    /// The response cache (`true` or `false`): in Redis with `REDIS_URL`, in process otherwise.
    #[arg(id = "cache", long = "cache", env = "CONDUIT_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Most bytes of responses the in-process cache keeps.
    #[arg(long = "cache-max-bytes", env = "CONDUIT_CACHE_MAX_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_bytes: u64,

    /// Longest time the server keeps a cached response, in seconds (the hints may say less).
    #[arg(long = "cache-max-ttl-secs", env = "CONDUIT_CACHE_MAX_TTL_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_ttl_secs: u64,
}

/// Static limits on one operation.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitSettings {
    /// Most nested fields on one path of an operation (QUERY_TOO_DEEP above).
    #[arg(long, env = "CONDUIT_MAX_DEPTH", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_depth: u32,

    /// Most cost points one operation may request (QUERY_TOO_COMPLEX above).
    #[arg(long, env = "CONDUIT_MAX_COST", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_cost: u64,

    /// Most aliased fields that one operation executes.
    #[arg(long, env = "CONDUIT_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: u32,

    /// Most root fields that one operation executes.
    #[arg(long, env = "CONDUIT_MAX_ROOT_FIELDS", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_root_fields: u32,

    /// Most directives on one field or fragment.
    #[arg(long, env = "CONDUIT_MAX_DIRECTIVES", default_value_t = 5)]
    pub max_directives: u32,

    /// Most selections in one operation once fragments are expanded.
    #[arg(long, env = "CONDUIT_MAX_FIELDS", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_fields: u32,

    /// Longest GraphQL document, in bytes.
    #[arg(long, env = "CONDUIT_MAX_DOCUMENT_BYTES", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(64..))]
    pub max_document_bytes: u32,

    /// Most lexical tokens in one GraphQL document.
    #[arg(long, env = "CONDUIT_MAX_TOKENS", default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(16..))]
    pub max_tokens: u32,

    /// Most fragments nested inside each other.
    #[arg(long, env = "CONDUIT_MAX_FRAGMENT_DEPTH", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_fragment_depth: u32,

    /// Most operations in one batched request (a JSON array).
    #[arg(long, env = "CONDUIT_MAX_BATCH", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_batch: u32,
}

/// Cost budgets and sign-in throttling.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rate limiting")]
pub struct RateLimitSettings {
    /// Cost-based rate limiting per client (`true` or `false`).
    #[arg(id = "rate_limit", long = "rate-limit", env = "CONDUIT_RATE_LIMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Cost points a client's bucket holds.
    #[arg(long = "rate-limit-capacity", env = "CONDUIT_RATE_LIMIT_CAPACITY", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub capacity: u32,

    /// Cost points restored to a client's bucket per second.
    #[arg(long = "rate-limit-restore-rate", env = "CONDUIT_RATE_LIMIT_RESTORE_RATE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub restore_rate: u32,

    /// Failed logins allowed per account per login window.
    #[arg(long, env = "CONDUIT_LOGIN_ATTEMPTS_PER_ACCOUNT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_attempts_per_account: u32,

    /// Failed logins allowed per client address per login window.
    #[arg(long, env = "CONDUIT_LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_attempts_per_address: u32,

    /// The login window, in seconds: the allowance is restored evenly over it.
    #[arg(long, env = "CONDUIT_LOGIN_WINDOW_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub login_window_secs: u64,

    /// Registrations allowed per client address per hour.
    #[arg(long, env = "CONDUIT_REGISTRATIONS_PER_HOUR", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub registrations_per_hour: u32,
}

/// The HTTP layer.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpSettings {
    /// Largest request body, in bytes (413 above).
    #[arg(long, env = "CONDUIT_MAX_BODY_BYTES", default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_body_bytes: u64,

    /// Longest time to receive a request body, in seconds (408 after); separate from execution.
    #[arg(long, env = "CONDUIT_BODY_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub body_read_timeout_secs: u64,

    /// Longest time one request may take, in seconds (503 after).
    #[arg(long, env = "CONDUIT_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,

    /// Most GraphQL operations executing at once (counted once their body is read); more are
    /// refused at once with 503.
    #[arg(long, env = "CONDUIT_MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Time for a request's head (request line and headers) to arrive, in seconds, counted from
    /// the connection's start or, on a kept-alive connection, from the next request's first byte.
    #[arg(long, env = "CONDUIT_HEADER_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub header_read_timeout_secs: u64,

    /// Time a connection with no request in flight stays open, in seconds (keep-alive).
    #[arg(long, env = "CONDUIT_KEEPALIVE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keepalive_timeout_secs: u64,

    /// Time a response (or a WebSocket message) may wait for the client to read it, in seconds;
    /// past it the connection is dropped with what it held.
    #[arg(long, env = "CONDUIT_SEND_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub send_timeout_secs: u64,

    /// Most connections open at once on the public listener (lowered to fit the file-descriptor
    /// limit); more are answered 503 and closed.
    #[arg(id = "max_http_connections", long = "max-connections", env = "CONDUIT_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most connections open at once from one client address (an IPv6 /64); more are answered
    /// 429 and closed. Not applied behind a proxy (`CONDUIT_CLIENT_IP_HEADER`).
    #[arg(long, env = "CONDUIT_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_client: u32,

    /// Most concurrent streams on one HTTP/2 connection.
    #[arg(long, env = "CONDUIT_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub http2_max_concurrent_streams: u32,

    /// Largest response body of one request, in bytes: a larger answer is refused with
    /// RESPONSE_TOO_LARGE instead of being built.
    #[arg(long, env = "CONDUIT_MAX_RESPONSE_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_response_bytes: u64,

    /// Origins allowed to call the API from a browser (comma-separated, or `*`). Default: none.
    #[arg(long, env = "CONDUIT_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Header set by trusted reverse proxies that holds the client address (e.g.
    /// `x-forwarded-for` or `x-real-ip`). Default: the peer address.
    #[arg(long, env = "CONDUIT_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// How many trusted proxies append to the client address header: the address that many
    /// entries from the right is the client's (default 1 when the header is set).
    #[arg(long, env = "CONDUIT_TRUSTED_PROXIES", value_parser = clap::value_parser!(u32).range(1..=32))]
    pub trusted_proxies: Option<u32>,
}

impl HttpSettings {
    /// The deadline for receiving a request body.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs)
    }

    /// The deadline of a whole request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// Subscriptions over WebSockets and Server-Sent Events.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Subscriptions")]
pub struct RealtimeSettings {
    /// Most WebSocket and event-stream connections one client (address) holds at once; more are
    /// refused with 429.
    #[arg(long, env = "CONDUIT_MAX_WS_PER_CLIENT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_ws_per_client: u32,

    /// Most subscriptions open at once on one WebSocket.
    #[arg(long, env = "CONDUIT_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_subscriptions_per_connection: u32,

    /// Most WebSocket and event-stream connections on this instance; more are refused with 503.
    #[arg(id = "max_ws_connections", long = "max-ws-connections", env = "CONDUIT_MAX_WS_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// How many changes a subscriber may fall behind, and how many messages may wait to be
    /// written to one connection, before it is dropped as a slow consumer.
    #[arg(id = "subscription_buffer", long = "subscription-buffer", env = "CONDUIT_SUBSCRIPTION_BUFFER", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub buffer: u32,

    /// Most bytes of messages waiting to be written to one WebSocket or event stream; past it the
    /// client is dropped as a slow consumer.
    #[arg(id = "subscription_queue_bytes", long = "subscription-queue-bytes", env = "CONDUIT_SUBSCRIPTION_QUEUE_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub queue_bytes: u64,

    /// Seconds between the server's keep-alive pings on a WebSocket (and comments on an event
    /// stream); a WebSocket silent for three times as long is closed.
    #[arg(id = "ws_keepalive_secs", long = "ws-keepalive-secs", env = "CONDUIT_WS_KEEPALIVE_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keepalive_secs: u64,

    /// Seconds a WebSocket may stay open without `connection_init` (closed with 4408 after).
    #[arg(id = "ws_init_timeout_secs", long = "ws-init-timeout-secs", env = "CONDUIT_WS_INIT_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub init_timeout_secs: u64,
}

/// Persisted and trusted documents.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Persisted operations")]
pub struct PersistedSettings {
    /// A manifest of trusted documents (JSON): when set, only its operations run.
    #[arg(long, env = "CONDUIT_TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<PathBuf>,

    /// Most bytes of automatic persisted queries kept (in process, and in Redis when shared).
    #[arg(long, env = "CONDUIT_APQ_MAX_BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub apq_max_bytes: u64,

    /// Automatic persisted queries one client may register per hour.
    #[arg(long, env = "CONDUIT_APQ_REGISTRATIONS_PER_HOUR", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub apq_registrations_per_hour: u32,
}

/// Logging.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogSettings {
    /// Log filter, in `tracing` syntax (e.g. `info`, `conduit=debug,sea_orm=warn`).
    #[arg(long = "log", env = "CONDUIT_LOG", default_value = "info")]
    pub filter: String,

    /// Log format: `pretty` or `json`.
    #[arg(
        long = "log-format",
        env = "CONDUIT_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub format: LogFormat,
}

/// How spans reach the OpenTelemetry collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (usually port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (usually port 4318).
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// Which traces are kept, as `OTEL_TRACES_SAMPLER` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum TraceSampler {
    /// Every trace.
    AlwaysOn,
    /// No trace.
    AlwaysOff,
    /// A share of the traces (`OTEL_TRACES_SAMPLER_ARG`), chosen by trace id.
    #[value(name = "traceidratio")]
    TraceIdRatio,
    /// The caller's decision when it sent `traceparent`, every trace otherwise (the default).
    ParentbasedAlwaysOn,
    /// The caller's decision when it sent `traceparent`, none otherwise.
    ParentbasedAlwaysOff,
    /// The caller's decision when it sent `traceparent`, a share by trace id otherwise.
    #[value(name = "parentbased_traceidratio")]
    ParentbasedTraceIdRatio,
}

/// OpenTelemetry traces: off unless an OTLP endpoint is set. The standard `OTEL_*` variables.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tracing (OpenTelemetry)")]
pub struct TracingSettings {
    /// Where spans are exported (e.g. `http://collector:4318`). Default: none, tracing off.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// `grpc` or `http/protobuf`.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        value_enum,
        default_value = "http/protobuf"
    )]
    pub otlp_protocol: OtlpProtocol,

    /// The `service.name` of every span.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "conduit")]
    pub service_name: String,

    /// Which traces are kept.
    #[arg(
        long = "traces-sampler",
        env = "OTEL_TRACES_SAMPLER",
        value_enum,
        default_value = "parentbased_always_on"
    )]
    pub sampler: TraceSampler,

    /// The share of traces kept by the `traceidratio` samplers, from 0 to 1.
    #[arg(long = "traces-sampler-arg", env = "OTEL_TRACES_SAMPLER_ARG", default_value_t = 1.0, value_parser = parse_ratio)]
    pub sampler_arg: f64,

    /// Turns tracing off even with an endpoint (`true` or `false`).
    #[arg(long = "otel-sdk-disabled", env = "OTEL_SDK_DISABLED", default_value_t = false, action = clap::ArgAction::Set)]
    pub disabled: bool,
}

impl TracingSettings {
    /// The endpoint spans go to, when tracing is on.
    pub fn endpoint(&self) -> Option<&str> {
        self.otlp_endpoint
            .as_deref()
            .filter(|endpoint| !self.disabled && !endpoint.is_empty())
    }
}

/// A number from 0 to 1.
fn parse_ratio(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err("expected a number from 0 to 1".to_owned()),
    }
}

/// A secret setting: its `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Production needs an explicit secret.
    #[error("CONDUIT_JWT_SECRET is required when CONDUIT_ENV=production")]
    MissingJwtSecret,
    /// A secret too short to be safe.
    #[error("CONDUIT_JWT_SECRET must be at least 32 bytes long")]
    WeakJwtSecret,
    /// A database URL of an unsupported kind.
    #[error("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")]
    UnsupportedDatabase,
    /// Replicas of anything but a PostgreSQL primary, or replicas that are not PostgreSQL.
    #[error(
        "DATABASE_REPLICA_URLS needs PostgreSQL: postgres:// URLs, and a postgres:// DATABASE_URL"
    )]
    UnsupportedReplicas,
    /// A Redis URL of an unsupported kind.
    #[error("REDIS_URL must start with redis://, rediss:// or unix://")]
    UnsupportedRedis,
    /// A CORS origin that is not `*` or `scheme://host[:port]`.
    #[error("CONDUIT_CORS_ORIGINS: {0} is not an origin like https://example.com")]
    BadCorsOrigin(String),
    /// A header name that HTTP does not allow.
    #[error("CONDUIT_CLIENT_IP_HEADER: {0} is not a valid header name")]
    BadHeaderName(String),
    /// Trusted proxies without the header they set.
    #[error("CONDUIT_TRUSTED_PROXIES needs CONDUIT_CLIENT_IP_HEADER")]
    ProxiesWithoutHeader,
    /// An OTLP endpoint that is not an http(s) URL.
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT: {0} is not an http:// or https:// URL")]
    BadOtlpEndpoint(String),
    /// A removal date that is not `Type.field=YYYY-MM-DD`.
    #[error("CONDUIT_SUNSET: {0} is not Type.field=YYYY-MM-DD")]
    BadSunset(String),
}

impl UsageSettings {
    /// The configured removal dates: (`Type.field`, date).
    pub fn sunsets(&self) -> Result<Vec<(String, chrono::NaiveDate)>, ConfigError> {
        self.sunset
            .iter()
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| {
                let (field, date) = entry
                    .split_once('=')
                    .ok_or_else(|| ConfigError::BadSunset(entry.clone()))?;
                let field = field.trim();
                let date = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d")
                    .map_err(|_| ConfigError::BadSunset(entry.clone()))?;
                match field.split_once('.') {
                    Some((ty, name)) if !ty.is_empty() && !name.is_empty() => {
                        Ok((field.to_owned(), date))
                    }
                    _ => Err(ConfigError::BadSunset(entry.clone())),
                }
            })
            .collect()
    }

    /// Seconds between two flushes of the usage aggregated in memory.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_secs(self.usage_flush_secs)
    }
}

impl Config {
    /// The settings a test or an embedding program starts from: every default, no secret.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        let mut config = Cli::parse_from(["conduit"]).config;
        config.database.url = database_url.into();
        config
    }

    /// Checks the settings that clap cannot check alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.auth.jwt_secret {
            None if self.server.environment == Environment::Production => {
                return Err(ConfigError::MissingJwtSecret);
            }
            Some(secret) if secret.expose().len() < 32 => return Err(ConfigError::WeakJwtSecret),
            _ => {}
        }
        let url = self.database.url.as_str();
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            return Err(ConfigError::UnsupportedDatabase);
        }
        self.usage.sunsets()?;
        let postgres =
            |url: &str| url.starts_with("postgres://") || url.starts_with("postgresql://");
        let replicas = &self.database.replica_urls;
        let replicas_supported =
            replicas.is_empty() || (postgres(url) && replicas.iter().all(|url| postgres(url)));
        if !replicas_supported {
            return Err(ConfigError::UnsupportedReplicas);
        }
        if let Some(redis) = &self.redis.url
            && !["redis://", "rediss://", "unix://"]
                .iter()
                .any(|scheme| redis.starts_with(scheme))
        {
            return Err(ConfigError::UnsupportedRedis);
        }
        for origin in &self.http.cors_origins {
            let valid = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && axum::http::HeaderValue::from_str(origin).is_ok());
            if !valid {
                return Err(ConfigError::BadCorsOrigin(origin.clone()));
            }
        }
        match &self.http.client_ip_header {
            Some(name) if axum::http::HeaderName::try_from(name.as_str()).is_err() => {
                return Err(ConfigError::BadHeaderName(name.clone()));
            }
            None if self.http.trusted_proxies.is_some() => {
                return Err(ConfigError::ProxiesWithoutHeader);
            }
            _ => {}
        }
        if let Some(endpoint) = self.tracing.endpoint()
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::BadOtlpEndpoint(endpoint.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["conduit"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv).config
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn production_needs_a_strong_secret() {
        let missing = config(&["--env", "production", "--database-url", "sqlite://x.db"]);
        assert!(matches!(
            missing.validate(),
            Err(ConfigError::MissingJwtSecret)
        ));
        let weak = config(&[
            "--env",
            "production",
            "--jwt-secret",
            "short",
            "--database-url",
            "sqlite://x.db",
        ]);
        assert!(matches!(weak.validate(), Err(ConfigError::WeakJwtSecret)));
        let strong = config(&[
            "--env",
            "production",
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef",
            "--database-url",
            "postgres://db/conduit",
        ]);
        assert!(strong.validate().is_ok());
        assert!(
            !format!("{strong:?}").contains("0123456789abcdef"),
            "secrets stay out of Debug"
        );
    }

    #[test]
    fn only_postgres_and_sqlite_urls_are_accepted() {
        let mysql = config(&["--database-url", "mysql://db/conduit"]);
        assert!(matches!(
            mysql.validate(),
            Err(ConfigError::UnsupportedDatabase)
        ));
    }

    #[test]
    fn trusted_proxies_need_their_header() {
        let proxies = config(&["--trusted-proxies", "2"]);
        assert!(matches!(
            proxies.validate(),
            Err(ConfigError::ProxiesWithoutHeader)
        ));
        let both = config(&[
            "--trusted-proxies",
            "2",
            "--client-ip-header",
            "x-forwarded-for",
        ]);
        assert!(both.validate().is_ok());
    }
}
