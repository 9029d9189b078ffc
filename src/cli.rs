//! The command line: parse it, load the settings, start telemetry, run the command.
//!
//! It lives in the library rather than in `main.rs` so that everything it runs is compiled once,
//! here: async bodies and generic code are instantiated in the crate that polls them, and a binary
//! crate is compiled after the library, alone, on one core (about half a minute of a cold build).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::app::{App, shutdown_signal};
use crate::config::{
    Cli, Command, Config, OutputFormat, SchemaAction, SchemaCheckArgs, SchemaUsageArgs, report,
};
use crate::{db, evolution, schema, seed, telemetry};

/// The exit status of a configuration that cannot be used.
const BAD_CONFIGURATION: u8 = 2;

/// Runs the command line: what `conduit` does, on a multi-threaded Tokio runtime.
pub fn main() -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(start()),
        Err(err) => {
            eprintln!("conduit: cannot start the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line, checks the settings, starts telemetry and runs the command.
async fn start() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(err) => match report::refusal(&err) {
            Some(line) => {
                eprintln!("conduit: {line}");
                return ExitCode::from(BAD_CONFIGURATION);
            }
            None => err.exit(),
        },
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let config = cli.config;
    if let Err(err) = config.validate() {
        eprintln!("conduit: {err}");
        return ExitCode::from(BAD_CONFIGURATION);
    }
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Config = command {
        print!("{}", report::effective(&matches));
        return ExitCode::SUCCESS;
    }
    if let Command::Schema(_) = command {
        // Reports only: standard output carries the SDL or the report (JSON for CI), no logs.
        return run(command, &config).await;
    }
    let telemetry = match telemetry::init(&config.log, &config.tracing) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("conduit: {err}");
            return ExitCode::from(BAD_CONFIGURATION);
        }
    };
    let status = run(command, &config).await;
    // The exporter's last batch goes out from a task on this runtime: waiting for it blocks, so
    // not on a worker thread.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    status
}

/// Runs `command` once telemetry is up.
async fn run(command: Command, config: &Config) -> ExitCode {
    match command {
        Command::Config => ExitCode::SUCCESS,
        Command::Schema(args) => match args.action {
            None => {
                print!("{}", schema::sdl());
                ExitCode::SUCCESS
            }
            Some(SchemaAction::Check(check)) => schema_check(config, &check).await,
            Some(SchemaAction::Usage(usage)) => schema_usage(config, &usage).await,
        },
        Command::Migrate => {
            let migrated = async {
                let db = db::connect(&config.database.url, 1, Default::default()).await?;
                db::migrate(&db).await
            };
            match migrated.await {
                Ok(()) => {
                    tracing::info!("migrations applied");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    tracing::error!(error = %err, "migration failed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Seed(sizes) => match seed::run(config, sizes).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("conduit seed: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Serve => {
            let app = match App::build(config).await {
                Ok(app) => app,
                Err(err) => {
                    tracing::error!(error = %err, "cannot start");
                    return ExitCode::FAILURE;
                }
            };
            if let Ok(addr) = app.local_addr() {
                tracing::info!(
                    graphql = %format!("http://{addr}/graphql"),
                    playground = %format!("http://{addr}/playground"),
                    "Conduit is listening"
                );
            }
            match app.run(shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "server failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The exit status of `conduit schema check` and `usage` when they cannot answer.
const CHECK_FAILED: u8 = 2;

/// `conduit schema check`: 0 when no breaking change is used, 1 when one is, 2 on error.
async fn schema_check(config: &Config, args: &SchemaCheckArgs) -> ExitCode {
    let report = async {
        let old = evolution::read_schema(&args.against)?;
        let new = match &args.schema {
            Some(path) => evolution::read_schema(path)?,
            None => schema::sdl(),
        };
        let db = usage_records(config).await?;
        let against = args.against.display().to_string();
        evolution::check(&db, &against, &old, &new, args.days).await
    };
    match report.await {
        Ok(report) => {
            print_report(args.format, &report.human(), &report);
            if report.breaking_used() > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => refused("check", &err),
    }
}

/// `conduit schema usage COORDINATE`.
async fn schema_usage(config: &Config, args: &SchemaUsageArgs) -> ExitCode {
    let report = async {
        let db = usage_records(config).await?;
        evolution::usage(&db, &args.coordinate, args.days).await
    };
    match report.await {
        Ok(report) => {
            print_report(args.format, &report.human(), &report);
            ExitCode::SUCCESS
        }
        Err(err) => refused("usage", &err),
    }
}

/// The database holding the usage records (one connection: a report reads, then exits).
async fn usage_records(
    config: &Config,
) -> Result<sea_orm::DatabaseConnection, evolution::EvolutionError> {
    db::connect(&config.database.url, 1, Default::default())
        .await
        .map_err(evolution::EvolutionError::Database)
}

/// Prints a report for a person (`human`) or as JSON.
fn print_report(format: OutputFormat, human: &str, report: &impl serde::Serialize) {
    match format {
        OutputFormat::Human => print!("{human}"),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        ),
    }
}

/// Says why `conduit schema <command>` could not answer; exit status 2.
fn refused(command: &str, err: &evolution::EvolutionError) -> ExitCode {
    eprintln!("conduit schema {command}: {err}");
    ExitCode::from(CHECK_FAILED)
}
