//! `tongdai serve | check`: thin — telemetry, configuration, run until SIGTERM/Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tongdai::app::{self, App};
use tongdai::config::Settings;

#[derive(Parser)]
#[command(
    name = "tongdai",
    version,
    about = "9090 call-center service (tổng đài)"
)]
struct Cli {
    /// Configuration file (TOML) layered over the built-in defaults.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the service.
    Serve,
    /// Validate configuration, dialplans and prompts; exit non-zero on any problem.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tongdai: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Cmd::Check => {
            let (_, report) = app::check(&settings)?;
            println!(
                "ok: configuration valid, {} prompts in {}",
                report.prompts,
                settings.prompts.dir.display()
            );
            Ok(())
        }
        Cmd::Serve => {
            tongdai::telemetry::init(&settings.log);
            let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            runtime.block_on(serve(settings))
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = App::start(settings).await.context("starting the service")?;
    wait_for_signal().await?;
    app.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    tracing::info!("signal received");
    Ok(())
}
