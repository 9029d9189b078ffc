//! The `conduit` binary: parse the command line, load the settings, start telemetry, run.

use std::process::ExitCode;

/// mimalloc: measured faster than the system allocator on the request path (see the README's
/// Performance section), which allocates many small, short-lived values.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches};
use conduit::app::{App, shutdown_signal};
use conduit::config::{Cli, Command, Config, report};
use conduit::{db, schema, seed, telemetry};

/// The exit status of a configuration that cannot be used.
const BAD_CONFIGURATION: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
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
    let telemetry = match telemetry::init(&config.log, &config.tracing) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("conduit: {err}");
            return ExitCode::from(BAD_CONFIGURATION);
        }
    };
    let status = run(command, &config).await;
    telemetry.shutdown();
    status
}

/// Runs `command` once telemetry is up.
async fn run(command: Command, config: &Config) -> ExitCode {
    match command {
        Command::Config => ExitCode::SUCCESS,
        Command::Schema => {
            print!("{}", schema::sdl());
            ExitCode::SUCCESS
        }
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
