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
        Ok(())
    }

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
