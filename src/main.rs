//! `tongdai serve | check | reload | import | campaign | dnc`: thin — telemetry,
//! configuration, run until SIGTERM/Ctrl-C (SIGHUP reloads the dialplans); the campaign
//! and do-not-call commands are in `campaign_cmd.rs`.

mod campaign_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tongdai::app::{self, App};
use tongdai::clock::{Clock, SystemClock};
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
    /// Ask the running service (on `http.listen`) to reload its dialplans. Needs an
    /// admin API token: `--token` or the `TONGDAI_TOKEN` environment variable.
    Reload {
        #[arg(long, env = "TONGDAI_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// API tokens: create one, or hash an existing one for the configuration.
    Token {
        #[command(subcommand)]
        what: TokenCmd,
    },
    /// Load data into the registration store.
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// Outbound campaigns (invitations, surveys): create, list, show, start, pause,
    /// resume, stop. Works on the store directly; a running service follows within a
    /// second.
    Campaign {
        #[command(subcommand)]
        cmd: campaign_cmd::CampaignCmd,
    },
    /// The do-not-call list shared by every campaign.
    Dnc {
        #[command(subcommand)]
        cmd: campaign_cmd::DncCmd,
    },
    /// The Covid-19 handbook page (`[handbook]`).
    Handbook {
        #[command(subcommand)]
        cmd: HandbookCmd,
    },
}

#[derive(Subcommand)]
enum HandbookCmd {
    /// Print the handbook link of a registered number (made on first use, the same
    /// afterwards), and how often it was opened.
    Link { number: String },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Print a fresh random token and the `[[api.tokens]]` entry (with its SHA-256) to
    /// add to the configuration. Only the hash goes into the file; hand the token to
    /// its user.
    New {
        /// Who holds it (shown in logs and recorded as the actor of changes).
        #[arg(long)]
        name: String,
        /// vinmec | fanpage | supervisor | admin
        #[arg(long)]
        role: tongdai::api::Role,
    },
    /// Read a token on standard input and print its SHA-256 for the configuration.
    Hash,
}

#[derive(Subcommand)]
enum ImportWhat {
    /// The screened target list: CSV `msisdn,plan,charge_per_cycle_vnd,list_source[,name]`.
    /// Every row is validated; one bad row and nothing is loaded.
    Subscribers { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tongdai: {e:#}");
            match e.downcast_ref::<campaign_cmd::Failure>() {
                Some(f) => ExitCode::from(f.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Token commands need no configuration (they help write it).
    if let Cmd::Token { what } = &cli.command {
        return token(what);
    }
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Cmd::Token { .. } => Ok(()),
        Cmd::Check => {
            let (_, _, report) = app::check(&settings)?;
            println!(
                "ok: configuration valid, {} prompts in {}, {} dialplans in {} answering {}",
                report.prompts,
                settings.prompts.dir.display(),
                report.dialplans,
                settings.dialplans.dir.display(),
                report.numbers.join(", ")
            );
            Ok(())
        }
        Cmd::Reload { token } => {
            let token = token
                .context("`tongdai reload` needs an admin API token: --token or TONGDAI_TOKEN")?;
            let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            let answer = runtime.block_on(post_reload(settings.http.listen, &token))?;
            println!("{answer}");
            Ok(())
        }
        Cmd::Import {
            what: ImportWhat::Subscribers { file },
        } => {
            let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            runtime.block_on(async {
                let store = tongdai::store::Store::connect(&settings.database.url)
                    .await
                    .context("opening the registration store")?;
                let report = store
                    .import_subscribers_csv(&file, SystemClock.now())
                    .await
                    .with_context(|| format!("importing {}", file.display()))?;
                println!(
                    "ok: {} rows from {} ({} new, {} updated), batch {}",
                    report.rows,
                    file.display(),
                    report.inserted,
                    report.updated,
                    report.batch
                );
                store.close().await;
                anyhow::Ok(())
            })
        }
        Cmd::Campaign { cmd } => {
            let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            runtime.block_on(campaign_cmd::campaign(&settings, cmd))
        }
        Cmd::Dnc { cmd } => {
            let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            runtime.block_on(campaign_cmd::dnc(&settings, cmd))
        }
        Cmd::Handbook {
            cmd: HandbookCmd::Link { number },
        } => {
            let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            runtime.block_on(handbook_link(&settings, &number))
        }
        Cmd::Serve => {
            tongdai::telemetry::init(&settings.log);
            let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            runtime.block_on(serve(settings))
        }
    }
}

async fn handbook_link(settings: &Settings, number: &str) -> anyhow::Result<()> {
    let store = tongdai::store::Store::connect(&settings.database.url)
        .await
        .context("opening the registration store")?;
    let result = async {
        let reg = store
            .registration_by_msisdn(number)
            .await?
            .with_context(|| format!("{number} has no registration"))?;
        let token = store.handbook_token(reg.id, SystemClock.now()).await?;
        println!(
            "{}",
            tongdai::api::handbook::link(&settings.handbook, &token)
        );
        if let Some((_, last, opens)) = store.handbook_opens(reg.id).await? {
            match last {
                Some(last) => println!("opened {opens} time(s), last at {last}"),
                None => println!("not opened yet"),
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Handlers first: a signal right after "tongdai is up" must not hit the defaults
    // (SIGHUP's would terminate the process).
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let app = App::start(settings).await.context("starting the service")?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; break; }
            _ = term.recv() => break,
            _ = hup.recv() => {
                // A bad edit keeps the running plans; the error is logged.
                let _ = app.reload();
            }
        }
    }
    tracing::info!("signal received");
    app.shutdown().await;
    Ok(())
}

fn token(what: &TokenCmd) -> anyhow::Result<()> {
    match what {
        TokenCmd::New { name, role } => {
            let token = tongdai::api::new_token();
            println!("token (give it to {name}; it is not stored anywhere): {token}");
            println!();
            println!("# add to the configuration file:");
            println!("[[api.tokens]]");
            println!("name = {name:?}");
            println!("role = \"{role}\"");
            println!("sha256 = \"{}\"", tongdai::api::hash_token(&token));
            Ok(())
        }
        TokenCmd::Hash => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the token from standard input")?;
            let token = line.trim();
            anyhow::ensure!(!token.is_empty(), "no token on standard input");
            println!("{}", tongdai::api::hash_token(token));
            Ok(())
        }
    }
}

/// `POST /reload` to the local service; plain HTTP/1.1 so the CLI needs no client crate.
async fn post_reload(addr: std::net::SocketAddr, token: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the service on {addr}"))?;
    anyhow::ensure!(
        token.bytes().all(|b| b.is_ascii_graphic()),
        "the token must be printable ASCII"
    );
    let request = format!(
        "POST /reload HTTP/1.1\r\nHost: tongdai\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let ok = response.starts_with("HTTP/1.1 200");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    if ok {
        Ok(body)
    } else {
        anyhow::bail!("reload refused: {body}")
    }
}
