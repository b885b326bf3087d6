//! The configuration of a local setup (anvil, the project's contracts, a database), as TOML:
//! written by `paywatch devnet`, and used by the tests and benchmarks so all three run the
//! same pricing and rules.

use alloy::primitives::Address;

use crate::chain::deploy::Deployment;

pub struct LocalConfig<'a> {
    pub listen: String,
    pub database_url: String,
    pub chain_id: u64,
    pub rpc_http: String,
    pub rpc_ws: Option<String>,
    pub confirmations: u64,
    pub poll_interval_ms: u64,
    pub deployment: &'a Deployment,
    pub treasury: Address,
    /// `Some(max_age_s)` prices ANKR from the deployment's mock Chainlink feed; `None` at a
    /// fixed 0.025 USD.
    pub chainlink_max_age: Option<u64>,
    pub admin_token: String,
    pub signer_key: Option<String>,
    /// More chains (`[chains.NAME]`), each with its deployment's tokens.
    pub more_chains: Vec<MoreChain<'a>>,
    /// More sections, appended as they are.
    pub extra: String,
}

/// A `[chains.NAME]` section and the tokens deployed there (all priced by their asset).
pub struct MoreChain<'a> {
    pub name: String,
    pub chain_id: u64,
    pub rpc_http: String,
    pub confirmations: u64,
    pub poll_interval_ms: u64,
    pub deployment: &'a Deployment,
}

pub fn render(c: &LocalConfig) -> String {
    let ws = c.rpc_ws.as_ref().map(|ws| format!("rpc_ws = \"{ws}\"\n")).unwrap_or_default();
    let price = match (c.chainlink_max_age, c.deployment.price_feed) {
        (Some(max_age), Some(feed)) => format!("source = \"chainlink\"\nfeed = \"{feed}\"\nmax_age_s = {max_age}"),
        _ => "source = \"fixed\"\nusd = \"0.025\"".to_string(),
    };
    let mut toml = format!(
        r#"[server]
listen = "{listen}"
heartbeat_secs = 5

[database]
url = "{db}"

[chain]
chain_id = {chain_id}
display_name = "Local devnet"
rpc_http = "{rpc}"
{ws}confirmations = {confirmations}
poll_interval_ms = {poll}
start_block = 0

[deposits]
factory = "{factory}"
treasury = "{treasury}"

[prices.ANKR_ERC20]
{price}

[orders]
ttl_minutes = 60
late_window_hours = 24
underpayment_tolerance = "0"

[pricing.default]
cpu_per_core_month = "10"
mem_per_gib_month = "4"
storage_per_gib_month = "0.1"

[pricing.charts]
boinc = "1"

[pricing.discounts]
3 = "0.05"
6 = "0.10"
12 = "0.20"

[auth]
admin_token = "{admin}"

[catalog]
currency = "USD"
markup = "1.4526"
discount = "0.78"
"#,
        listen = c.listen,
        db = c.database_url,
        chain_id = c.chain_id,
        rpc = c.rpc_http,
        confirmations = c.confirmations,
        poll = c.poll_interval_ms,
        factory = c.deployment.factory,
        treasury = c.treasury,
        admin = c.admin_token,
    );
    if let Some(key) = &c.signer_key {
        toml.push_str(&format!("\n[signer]\nprivate_key = \"{key}\"\n"));
    }
    for (token, address) in &c.deployment.tokens {
        toml.push_str(&format!(
            "\n[tokens.{token}]\naddress = \"{address}\"\ndecimals = {}\n",
            super::token_decimals(*token)
        ));
    }
    for m in &c.more_chains {
        toml.push_str(&format!(
            "\n[chains.{name}]\nchain_id = {id}\ndisplay_name = \"Local {name} devnet\"\nrpc_http = \"{rpc}\"\n\
             confirmations = {conf}\npoll_interval_ms = {poll}\nstart_block = 0\n",
            name = m.name,
            id = m.chain_id,
            rpc = m.rpc_http,
            conf = m.confirmations,
            poll = m.poll_interval_ms,
        ));
        for (token, address) in &m.deployment.tokens {
            // USDT0 is USDT that also pays without gas (EIP-3009).
            let (asset, authorization) = match *token {
                super::L2_USDT0 => ("USDT", "authorization = \"eip3009\"\n"),
                other => (other.default_asset(), ""),
            };
            toml.push_str(&format!(
                "\n[tokens.{token}]\nchain = \"{name}\"\naddress = \"{address}\"\ndecimals = {}\nasset = \"{asset}\"\n{authorization}",
                super::token_decimals(*token),
                name = m.name,
            ));
        }
    }
    toml.push('\n');
    toml.push_str(&c.extra);
    toml
}
