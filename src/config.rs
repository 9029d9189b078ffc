//! Typed settings from the command line and `CONDUIT_*` environment variables, validated at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Run the migrations, then serve the API (the default).
    Serve,
    /// Run the pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL) to standard output and exit.
    Schema,
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

/// Every setting, each with a default that is safe on a laptop.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "CONDUIT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database URL: `postgres://user@host/db` or `sqlite://file.db` (created when missing).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://conduit.db")]
    pub database_url: String,

    /// Most database connections in the pool.
    #[arg(long, env = "CONDUIT_DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,

    /// Secret that signs tokens (at least 32 bytes). Default: random per start, with a warning.
    #[arg(long, env = "CONDUIT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// How long a token stays valid, in hours.
    #[arg(long, env = "CONDUIT_TOKEN_TTL_HOURS", default_value_t = 720, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub token_ttl_hours: u64,

    /// Most password hashes computed at once (default: the number of CPUs).
    #[arg(long, env = "CONDUIT_HASH_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub hash_concurrency: Option<u32>,

    /// `development` or `production`.
    #[arg(
        long = "env",
        env = "CONDUIT_ENV",
        value_enum,
        default_value = "development"
    )]
    pub environment: Environment,

    /// Redis URL (`redis://host:6379/0`): rate-limit buckets and persisted queries are shared by
    /// every instance. Default: none, state stays in this process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key this deployment writes.
    #[arg(long, env = "CONDUIT_REDIS_PREFIX", default_value = "conduit:")]
    pub redis_prefix: String,

    /// Deadline of one Redis call, in milliseconds; past it the request goes on without Redis.
    #[arg(long, env = "CONDUIT_REDIS_TIMEOUT_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub redis_timeout_ms: u64,

    /// Introspection and `GET /schema.graphql` (`true` or `false`).
    #[arg(long, env = "CONDUIT_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,

    /// The response cache (`true` or `false`): in Redis with `REDIS_URL`, in process otherwise.
    #[arg(long, env = "CONDUIT_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cache: bool,

    /// Most bytes of responses the in-process cache keeps.
    #[arg(long, env = "CONDUIT_CACHE_MAX_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub cache_max_bytes: u64,

    /// Longest time the server keeps a cached response, in seconds (the hints may say less).
    #[arg(long, env = "CONDUIT_CACHE_MAX_TTL_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub cache_max_ttl_secs: u64,

    /// Most nested fields on one path of an operation (QUERY_TOO_DEEP above).
    #[arg(long, env = "CONDUIT_MAX_DEPTH", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_depth: u32,

    /// Most cost points one operation may request (QUERY_TOO_COMPLEX above).
    #[arg(long, env = "CONDUIT_MAX_COST", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_cost: u64,

    /// Most aliases in one operation.
    #[arg(long, env = "CONDUIT_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: u32,

    /// Most root fields in one operation.
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

    /// Largest request body, in bytes (413 above).
    #[arg(long, env = "CONDUIT_MAX_BODY_BYTES", default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_body_bytes: u64,

    /// Longest time one request may take, in seconds (503 after).
    #[arg(long, env = "CONDUIT_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,

    /// Most GraphQL requests in progress at once; more are refused at once with 503.
    #[arg(long, env = "CONDUIT_MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Origins allowed to call the API from a browser (comma-separated, or `*`). Default: none.
    #[arg(long, env = "CONDUIT_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Header set by a trusted reverse proxy that holds the client address (e.g.
    /// `x-forwarded-for`, whose last entry is used, or `x-real-ip`). Default: the peer address.
    #[arg(long, env = "CONDUIT_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// Cost-based rate limiting per client (`true` or `false`).
    #[arg(long, env = "CONDUIT_RATE_LIMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limit: bool,

    /// Cost points a client's bucket holds.
    #[arg(long, env = "CONDUIT_RATE_LIMIT_CAPACITY", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_capacity: u32,

    /// Cost points restored to a client's bucket per second.
    #[arg(long, env = "CONDUIT_RATE_LIMIT_RESTORE_RATE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_restore_rate: u32,

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

    /// A manifest of trusted documents (JSON): when set, only its operations run.
    #[arg(long, env = "CONDUIT_TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<std::path::PathBuf>,

    /// Log filter, in `tracing` syntax (e.g. `info`, `conduit=debug,sea_orm=warn`).
    #[arg(long, env = "CONDUIT_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `pretty` or `json`.
    #[arg(long, env = "CONDUIT_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
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
    /// A Redis URL of an unsupported kind.
    #[error("REDIS_URL must start with redis://, rediss:// or unix://")]
    UnsupportedRedis,
    /// A CORS origin that is not `*` or `scheme://host[:port]`.
    #[error("CONDUIT_CORS_ORIGINS: {0} is not an origin like https://example.com")]
    BadCorsOrigin(String),
}

impl Config {
    /// The settings a test or an embedding program starts from: every default, no secret.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Cli::parse_from(["conduit"])
            .config
            .with_database_url(database_url)
    }

    fn with_database_url(mut self, database_url: impl Into<String>) -> Self {
        self.database_url = database_url.into();
        self
    }

    /// Checks the settings that clap cannot check alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.jwt_secret {
            None if self.environment == Environment::Production => {
                return Err(ConfigError::MissingJwtSecret);
            }
            Some(secret) if secret.expose().len() < 32 => return Err(ConfigError::WeakJwtSecret),
            _ => {}
        }
        let url = self.database_url.as_str();
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            return Err(ConfigError::UnsupportedDatabase);
        }
        if let Some(redis) = &self.redis_url
            && !["redis://", "rediss://", "unix://"]
                .iter()
                .any(|scheme| redis.starts_with(scheme))
        {
            return Err(ConfigError::UnsupportedRedis);
        }
        for origin in &self.cors_origins {
            let valid = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && axum::http::HeaderValue::from_str(origin).is_ok());
            if !valid {
                return Err(ConfigError::BadCorsOrigin(origin.clone()));
            }
        }
        Ok(())
    }

    /// How long a token stays valid.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_hours * 3600)
    }

    /// The static limits on one operation.
    pub fn limits(&self) -> crate::graphql::limits::Limits {
        crate::graphql::limits::Limits {
            max_depth: self.max_depth as usize,
            max_cost: self.max_cost,
            max_aliases: self.max_aliases as usize,
            max_root_fields: self.max_root_fields as usize,
            max_directives: self.max_directives as usize,
            max_fields: self.max_fields as usize,
            max_document_bytes: self.max_document_bytes as usize,
            max_tokens: self.max_tokens as usize,
            max_fragment_depth: self.max_fragment_depth as usize,
        }
    }

    /// The bucket of cost points of each client.
    pub fn cost_bucket(&self) -> crate::rate_limit::BucketPolicy {
        crate::rate_limit::BucketPolicy {
            capacity: f64::from(self.rate_limit_capacity),
            restore_per_second: f64::from(self.rate_limit_restore_rate),
        }
    }

    /// Sign-in and sign-up throttling.
    pub fn throttle_policy(&self) -> crate::auth::ThrottlePolicy {
        use crate::rate_limit::BucketPolicy;
        crate::auth::ThrottlePolicy {
            login_per_account: BucketPolicy::per_window(
                self.login_attempts_per_account,
                self.login_window_secs,
            ),
            login_per_address: BucketPolicy::per_window(
                self.login_attempts_per_address,
                self.login_window_secs,
            ),
            registrations_per_address: BucketPolicy::per_window(self.registrations_per_hour, 3600),
        }
    }

    /// The deadline of one Redis call.
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// How many password hashes may run at once.
    pub fn hash_concurrency(&self) -> usize {
        self.hash_concurrency.map_or_else(
            || std::thread::available_parallelism().map_or(2, |n| n.get()),
            |n| n as usize,
        )
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
}
