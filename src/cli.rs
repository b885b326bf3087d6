//! The command line. Every command ends with exit code 1 and one line on stderr when it fails.

use std::path::PathBuf;
use std::process::ExitCode;

use alloy::primitives::Address;
use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::chain::{deploy, rpc};
use crate::config::Config;
use crate::store::{Store, teams};
use crate::{devnet, startup};

#[derive(Parser)]
#[command(name = "paywatch", version, about = "Self-hosted payment watcher for ERC20 tokens")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the API, the chain watcher and the scheduled jobs.
    Serve(ConfigArg),
    /// The newcomer's demo: anvil, contracts, a demo team and catalog, served on SQLite.
    Devnet {
        /// API port (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// anvil's port (0 picks a free one).
        #[arg(long, default_value_t = 8545)]
        anvil_port: u16,
        /// Where devnet.json, paywatch.toml and the database go.
        #[arg(long, default_value = ".devnet")]
        dir: PathBuf,
    },
    /// Applies the database migrations and exits.
    Migrate(ConfigArg),
    /// Teams and their API keys.
    Team {
        #[command(subcommand)]
        command: TeamCommand,
    },
    /// The hosting product catalog.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// The project's contracts.
    Contracts {
        #[command(subcommand)]
        command: ContractsCommand,
    },
    /// Moves confirmed deposits from their deposit addresses to the treasury.
    Sweep(ConfigArg),
    /// Validates the configuration and reaches the database and the RPC node.
    Check(CheckArgs),
    /// Compares, at the last processed block, each deposit address's token balance with the
    /// ledger; prints the result as JSON and exits 1 when any differs.
    Reconcile(ConfigArg),
}

#[derive(clap::Args)]
struct CheckArgs {
    #[arg(long, env = "PAYWATCH_CONFIG")]
    config: PathBuf,
    /// Only validate the configuration (file and PAYWATCH__ variables); reach nothing.
    #[arg(long)]
    offline: bool,
}

#[derive(clap::Args)]
struct ConfigArg {
    #[arg(long, env = "PAYWATCH_CONFIG")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Loads a whole catalog (first groups, groups, products) from a JSON file, in one
    /// transaction; entries with the same ids are replaced.
    Import {
        /// The catalog document (see `src/devnet/demo_catalog.json`).
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum TeamCommand {
    /// Creates a team and prints its id and a new API key (shown once).
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum ContractsCommand {
    /// Deploys the deposit factory with the [signer] key; --mocks adds mock tokens and a feed.
    Deploy {
        #[command(flatten)]
        config: ConfigArg,
        /// Also deploy the mock tokens and price feed (devnets only).
        #[arg(long)]
        mocks: bool,
        /// Treasury for the factory; defaults to [deposits] treasury, then the signer's address.
        #[arg(long)]
        treasury: Option<Address>,
    },
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemons log what they do; one-shot commands keep stderr for their one-line answer
    // (a slow statement under load is not news there).
    let long_running = matches!(cli.command, Command::Serve(_) | Command::Devnet { .. });
    init_tracing(if long_running { "info" } else { "warn,sqlx=error" });
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole cause chain.
            eprintln!("paywatch: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PAYWATCH_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("PAYWATCH_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(c) => {
            let config = Config::load(&c.config)?;
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .with_context(|| format!("server.listen {}", config.server.listen))?;
            let shutdown = CancellationToken::new();
            startup::cancel_on_signal(shutdown.clone());
            startup::run(config, listener, shutdown).await
        }
        Command::Devnet { port, anvil_port, dir } => devnet::run(devnet::Options { port, anvil_port, dir }).await,
        Command::Migrate(c) => {
            let config = Config::load(&c.config)?;
            let store = Store::connect(config.database_url()).await.context("database")?;
            store.migrate().await.context("database")?;
            println!("{}", serde_json::json!({"migrated": true}));
            Ok(())
        }
        Command::Team { command: TeamCommand::Create { name, config } } => {
            let config = Config::load(&config.config)?;
            let store = Store::connect(config.database_url()).await.context("database")?;
            store.migrate().await.context("database")?;
            let (team, key) = teams::create_with_key(&store, &name).await?;
            println!("{}", serde_json::json!({"team_id": team.team_id, "api_key": key.api_key, "key_id": key.key_id}));
            Ok(())
        }
        Command::Catalog { command: CatalogCommand::Import { file, config } } => {
            let config = Config::load(&config.config)?;
            let text = std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
            let doc: crate::catalog::products::CatalogDocument =
                serde_json::from_str(&text).with_context(|| format!("{}", file.display()))?;
            let store = Store::connect(config.database_url()).await.context("database")?;
            store.migrate().await.context("database")?;
            let result = crate::catalog::import::import(&store, &doc).await;
            store.close().await;
            let (first_groups, groups, products) = result.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("{}", serde_json::json!({"first_groups": first_groups, "groups": groups, "products": products}));
            Ok(())
        }
        Command::Contracts { command: ContractsCommand::Deploy { config, mocks, treasury } } => {
            let config = Config::load(&config.config)?;
            let signer = rpc::signer_key(&config)?;
            let treasury =
                treasury.or_else(|| config.deposits.as_ref().map(|d| d.treasury)).unwrap_or_else(|| signer.address());
            let provider = rpc::signing_provider(config.chain.rpc_http.primary(), signer)?;
            rpc::check_chain_id(&provider, &config.chain.rpc_http.urls()[..1], config.chain.chain_id).await?;
            let deployment = deploy::deploy_all(&provider, treasury, mocks).await.context("deploy")?;
            println!("{}", serde_json::to_string(&deployment)?);
            Ok(())
        }
        Command::Reconcile(c) => {
            let config = Config::load(&c.config)?;
            let (store, provider) = startup::connect(&config).await?;
            let result = crate::jobs::reconcile::reconcile(&store, &config, &provider).await;
            store.close().await;
            let result = result?;
            println!("{}", serde_json::to_string(&result)?);
            anyhow::ensure!(
                result.differences.is_empty(),
                "{} deposit address(es) differ from the ledger at block {}",
                result.differences.len(),
                result.block
            );
            Ok(())
        }
        Command::Sweep(c) => {
            let config = Config::load(&c.config)?;
            let (store, _) = startup::connect(&config).await?;
            let signer = rpc::signing_provider_for(&config)?;
            let report = crate::jobs::sweep::sweep_once(&store, &config, &signer).await?;
            store.close().await;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Check(c) => {
            let config = Config::load(&c.config)?;
            if c.offline {
                println!("{}", serde_json::json!({"config": "ok", "database": "not checked", "rpc": "not checked"}));
                return Ok(());
            }
            let (store, provider) = startup::connect(&config).await?;
            store.close().await;
            rpc::check_finality_tag(&provider, config.chain.confirmations).await?;
            let warnings = config.warnings();
            for w in &warnings {
                eprintln!("paywatch: warning: {w}");
            }
            println!("{}", serde_json::json!({"config": "ok", "database": "ok", "rpc": "ok", "warnings": warnings}));
            Ok(())
        }
    }
}
