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
    /// Moves confirmed deposits from their deposit addresses to the treasury, chain by chain.
    Sweep(ChainArgs),
    /// Validates the configuration and reaches the database and the RPC node.
    Check(CheckArgs),
    /// The operator's overview in a terminal (chains, lag, orders, webhooks, unswept money);
    /// exits 1 when a watcher is stalled or a chain's RPC is unreachable.
    Status(ConfigArg),
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
struct ChainArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this chain (`main` or a `[chains.NAME]`); default: every chain.
    #[arg(long)]
    chain: Option<String>,
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
        /// Only this chain; default: every chain (the factory lands at one address on all).
        #[arg(long)]
        chain: Option<String>,
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
        Command::Serve(c) => serve(c).await,
        Command::Devnet { port, anvil_port, dir } => devnet::run(devnet::Options { port, anvil_port, dir }).await,
        Command::Migrate(c) => migrate(c).await,
        Command::Team { command: TeamCommand::Create { name, config } } => team_create(name, config).await,
        Command::Catalog { command: CatalogCommand::Import { file, config } } => catalog_import(file, config).await,
        Command::Contracts { command: ContractsCommand::Deploy { config, mocks, treasury, chain } } => {
            contracts_deploy(config, mocks, treasury, chain).await
        }
        Command::Status(c) => status(c).await,
        Command::Reconcile(c) => reconcile(c).await,
        Command::Sweep(c) => sweep(c).await,
        Command::Check(c) => check(c).await,
    }
}

/// `serve`: the API, a watcher per chain and the jobs until SIGINT/SIGTERM.
async fn serve(c: ConfigArg) -> anyhow::Result<()> {
    let config = Config::load(&c.config)?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("server.listen {}", config.server.listen))?;
    let shutdown = CancellationToken::new();
    startup::cancel_on_signal(shutdown.clone());
    startup::run(config, listener, shutdown).await
}

/// `migrate`: applies the migrations and exits.
async fn migrate(c: ConfigArg) -> anyhow::Result<()> {
    let config = Config::load(&c.config)?;
    let store = Store::connect(config.database_url()).await.context("database")?;
    store.migrate().await.context("database")?;
    println!("{}", serde_json::json!({"migrated": true}));
    Ok(())
}

/// `team create`: a team and its first key (shown once).
async fn team_create(name: String, config: ConfigArg) -> anyhow::Result<()> {
    let config = Config::load(&config.config)?;
    let store = Store::connect(config.database_url()).await.context("database")?;
    store.migrate().await.context("database")?;
    let (team, key) = teams::create_with_key(&store, &name).await?;
    println!("{}", serde_json::json!({"team_id": team.team_id, "api_key": key.api_key, "key_id": key.key_id}));
    Ok(())
}

/// `catalog import`: a whole catalog document, saved in one transaction.
async fn catalog_import(file: PathBuf, config: ConfigArg) -> anyhow::Result<()> {
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

/// `contracts deploy`: the deposit factory (and mocks) on each selected chain.
async fn contracts_deploy(
    config: ConfigArg,
    mocks: bool,
    treasury: Option<Address>,
    chain: Option<String>,
) -> anyhow::Result<()> {
    let config = Config::load(&config.config)?;
    let signer = rpc::signer_key(&config)?;
    // Fixed for good at deployment: never picked silently.
    let treasury = match treasury.or_else(|| config.deposits.as_ref().map(|d| d.treasury)) {
        Some(t) => t,
        None if mocks => {
            eprintln!(
                "paywatch: no treasury named (--treasury or [deposits] treasury): --mocks uses the \
                 signer's address {}",
                signer.address()
            );
            signer.address()
        }
        None => anyhow::bail!(
            "contracts deploy: name the treasury sweeps go to, fixed for good at deployment \
             (--treasury ADDRESS or [deposits] treasury)"
        ),
    };
    // The first chain's deployment at the top (as with one chain), every chain's below.
    let mut out: Option<serde_json::Value> = None;
    let mut per_chain = serde_json::Map::new();
    for c in config.select_chains(chain.as_deref())? {
        let provider = rpc::signing_provider(c.config.rpc_http.primary(), signer.clone())?;
        rpc::check_chain_id(&provider, &c.config.rpc_http.urls()[..1], c.chain_id()).await?;
        let deployment =
            deploy::deploy_all(&provider, treasury, mocks).await.with_context(|| format!("deploy on {}", c.name))?;
        let value = serde_json::to_value(&deployment)?;
        out.get_or_insert_with(|| value.clone());
        per_chain.insert(c.name.to_string(), value);
    }
    let mut out = out.unwrap_or_default();
    out["chains"] = serde_json::Value::Object(per_chain);
    println!("{out}");
    Ok(())
}

/// `status`: the overview in a terminal; an alarm fails it.
async fn status(c: ConfigArg) -> anyhow::Result<()> {
    let config = Config::load(&c.config)?;
    let store = startup::connect_store(&config).await?;
    let status = crate::overview::terminal::status(&store, &config).await;
    store.close().await;
    let status = status?;
    print!("{}", status.text);
    anyhow::ensure!(status.alarms.is_empty(), "{}", status.alarms.join("; "));
    Ok(())
}

/// `reconcile`: every chain's deposit balances against the ledger; a difference fails it.
async fn reconcile(c: ConfigArg) -> anyhow::Result<()> {
    let config = Config::load(&c.config)?;
    let (store, _) = startup::connect(&config).await?;
    let mut chains = Vec::new();
    for c in config.chains() {
        let provider = rpc::provider(c.config.rpc_http.urls())?;
        rpc::check_chain_id(&provider, c.config.rpc_http.urls(), c.chain_id()).await?;
        chains.push((c.chain_id(), provider));
    }
    let result = crate::jobs::reconcile::reconcile_all(&store, &chains).await;
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

/// `sweep`: every selected chain swept; a chain that fails fails it, after the others.
async fn sweep(c: ChainArgs) -> anyhow::Result<()> {
    let config = Config::load(&c.config.config)?;
    let chains = config.select_chains(c.chain.as_deref())?;
    rpc::signer_key(&config)?;
    let store = startup::connect_store(&config).await?;
    let runs = crate::jobs::sweep::sweep_chains(&store, &config, &chains).await;
    store.close().await;
    println!("{}", serde_json::json!({ "chains": runs }));
    let failed: Vec<String> =
        runs.iter().filter_map(|(name, r)| r.error.as_ref().map(|e| format!("{name}: {e}"))).collect();
    anyhow::ensure!(failed.is_empty(), "sweep failed on {}", failed.join("; "));
    Ok(())
}

/// `check`: the config, the database and every chain's endpoints, factory and tokens.
async fn check(c: CheckArgs) -> anyhow::Result<()> {
    let config = Config::load(&c.config)?;
    if c.offline {
        println!("{}", serde_json::json!({"config": "ok", "database": "not checked", "rpc": "not checked"}));
        return Ok(());
    }
    let store = startup::connect_store(&config).await?;
    store.close().await;
    let mut down = Vec::new();
    for c in config.chains() {
        down.extend(check_chain(&config, c).await?);
    }
    let mut warnings = config.warnings();
    warnings.extend(down);
    for w in &warnings {
        eprintln!("paywatch: warning: {w}");
    }
    println!("{}", serde_json::json!({"config": "ok", "database": "ok", "rpc": "ok", "warnings": warnings}));
    Ok(())
}

/// One chain of `check`: each endpoint's chain id on its own, the finality tag, the factory and
/// its treasury, the gasless tokens. Returns the endpoints that did not answer (a warning while
/// another does).
async fn check_chain(config: &Config, c: crate::config::ChainRef<'_>) -> anyhow::Result<Vec<String>> {
    let urls = c.config.rpc_http.urls();
    let mut unreachable = Vec::new();
    // Each endpoint alone: a fallback would answer for the first that works.
    for (url, check) in urls.iter().zip(rpc::check_endpoints(urls, c.chain_id()).await?) {
        match check {
            rpc::EndpointCheck::Serves => {}
            rpc::EndpointCheck::WrongChain(actual) => anyhow::bail!(
                "chain {}: the RPC at {} serves chain id {actual}, but {}.chain_id is {} (remove it \
                 from rpc_http; serve leaves it out)",
                c.name,
                rpc::redact(url),
                if c.chain_id() == config.first_chain().chain_id() {
                    "chain".to_string()
                } else {
                    format!("chains.{}", c.name)
                },
                c.chain_id()
            ),
            rpc::EndpointCheck::Unreachable(reason) => {
                unreachable.push(format!("chain {}: rpc: cannot reach {}: {reason}", c.name, rpc::redact(url)))
            }
        }
    }
    // One endpoint down is a warning (failover); all of them is a failure.
    if unreachable.len() >= urls.len() {
        anyhow::bail!("{}", unreachable.join("; "));
    }
    let provider = rpc::provider(urls)?;
    rpc::check_finality_tag(&provider, c.config.confirmations).await.with_context(|| format!("chain {}", c.name))?;
    if let Some(d) = &config.deposits {
        anyhow::ensure!(
            deploy::has_code(&provider, d.factory).await?,
            "chain {}: no deposit factory at {} (run `paywatch contracts deploy --chain {}`)",
            c.name,
            d.factory,
            c.name
        );
        deploy::check_treasury(&provider, d).await.with_context(|| format!("chain {}", c.name))?;
    }
    crate::payments::gasless::check_tokens(config, c).await?;
    Ok(unreachable)
}
