//! The `conduit` binary: parse the command line, load the settings, start telemetry, run.

use std::process::ExitCode;

/// mimalloc: measured faster than the system allocator on the request path (see the README's
/// Performance section), which allocates many small, short-lived values.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use conduit::app::{App, shutdown_signal};
use conduit::config::{Cli, Command};
use conduit::{db, schema, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    telemetry::init(&config.log.filter, config.log.format);
    if let Err(err) = config.validate() {
        tracing::error!(error = %err, "invalid configuration");
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Serve) {
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
        Command::Serve => {
            let app = match App::build(&config).await {
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
