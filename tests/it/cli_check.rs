//! `paywatch check` on good and bad configurations: each problem is one line naming it, exit 1.

use crate::support::chain::TestChain;
use crate::support::{paywatch, write_file};

fn config(rpc: &str, chain_id: u64, db: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[database]
url = "{db}"

[chain]
chain_id = {chain_id}
rpc_http = "{rpc}"
confirmations = 2

[tokens.ANKR_ERC20]
address = "0x8290333ceF9e6D528dD5618Fb97a76f268f3EDD4"
decimals = 18

[auth]
admin_token = "a-very-secret-admin-token-value"
{extra}
"#
    )
}

/// Runs `paywatch check` and returns (exit code, stderr lines).
fn check(dir: &std::path::Path, text: &str, envs: &[(&str, &str)]) -> (i32, Vec<String>) {
    let path = write_file(dir, "paywatch.toml", text);
    let out = paywatch(&["check", "--config", path.to_str().unwrap()], envs);
    let stderr = String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect();
    (out.status.code().unwrap_or(-1), stderr)
}

fn assert_one_line_failure((code, lines): (i32, Vec<String>), needle: &str) {
    assert_eq!(code, 1, "exit code; stderr: {lines:?}");
    assert_eq!(lines.len(), 1, "exactly one line: {lines:?}");
    assert!(lines[0].contains(needle), "{:?} should name {needle:?}", lines[0]);
}

#[tokio::test]
async fn a_good_config_passes_check() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/db/paywatch.db", dir.path().display());
    let (code, lines) = check(dir.path(), &config(&chain.anvil.rpc_url(), 31337, &db, ""), &[]);
    assert_eq!(code, 0, "stderr: {lines:?}");
}

#[test]
fn an_unknown_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = config("http://127.0.0.1:1", 1, "sqlite://x.db", "").replace("confirmations = 2", "confirmation = 2");
    assert_one_line_failure(check(dir.path(), &text, &[]), "chain.confirmation");
}

#[test]
fn a_malformed_address_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = config("http://127.0.0.1:1", 1, "sqlite://x.db", "")
        .replace("0x8290333ceF9e6D528dD5618Fb97a76f268f3EDD4", "0x8290");
    assert_one_line_failure(check(dir.path(), &text, &[]), "tokens.ANKR_ERC20.address");
}

#[test]
fn a_bad_decimal_and_a_period_outside_1_to_12_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let base = config("http://127.0.0.1:1", 1, "sqlite://x.db", "");
    let bad_decimal = format!("{base}\n[pricing.default]\ncpu_per_core_month = \"ten\"\n");
    assert_one_line_failure(check(dir.path(), &bad_decimal, &[]), "pricing.default.cpu_per_core_month");
    let bad_period = format!("{base}\n[pricing.discounts]\n13 = \"0.5\"\n");
    assert_one_line_failure(check(dir.path(), &bad_period, &[]), "pricing.discounts.13");
}

#[test]
fn an_env_override_is_applied_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let text = config("http://127.0.0.1:1", 1, "sqlite://x.db", "");
    let result = check(dir.path(), &text, &[("PAYWATCH__CHAIN__CONFIRMATIONS", "soon")]);
    assert_one_line_failure(result, "chain.confirmations");
}

#[test]
fn an_unreachable_rpc_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let port = paywatch::devnet::anvil::free_port().unwrap();
    let db = format!("sqlite://{}/paywatch.db", dir.path().display());
    let text = config(&format!("http://127.0.0.1:{port}"), 1, &db, "");
    assert_one_line_failure(check(dir.path(), &text, &[]), "cannot reach");
}

#[test]
fn an_unreachable_database_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let port = paywatch::devnet::anvil::free_port().unwrap();
    let text = config("http://127.0.0.1:1", 1, &format!("postgres://nobody@127.0.0.1:{port}/none"), "");
    assert_one_line_failure(check(dir.path(), &text, &[]), "database");
}

#[tokio::test]
async fn a_chain_id_mismatch_is_named() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/paywatch.db", dir.path().display());
    let (code, lines) = check(dir.path(), &config(&chain.anvil.rpc_url(), 1, &db, ""), &[]);
    assert_one_line_failure((code, lines.clone()), "chain id 31337");
    assert!(lines[0].contains("chain.chain_id is 1"), "{lines:?}");
}

#[test]
fn secrets_never_reach_the_error_line_or_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "0xnot-a-key-but-still-a-secret-value";
    let text = config("http://127.0.0.1:1", 1, "sqlite://x.db", &format!("[signer]\nprivate_key = \"{secret}\"\n"));
    let (code, lines) = check(dir.path(), &text, &[]);
    assert_eq!(code, 1);
    assert!(lines[0].contains("signer.private_key"), "{lines:?}");
    assert!(!lines.join("\n").contains(secret), "the key leaked: {lines:?}");

    let good = config("http://127.0.0.1:1", 1, "postgres://u:hunter2pass@127.0.0.1/db", "");
    let path = write_file(dir.path(), "good.toml", &good);
    let loaded = ::paywatch::config::Config::load(&path).expect("valid config");
    let debug = format!("{loaded:?}");
    assert!(!debug.contains("a-very-secret-admin-token-value"), "admin token in Debug");
    assert!(!debug.contains("hunter2pass"), "database password in Debug");
}

#[test]
fn the_refund_key_must_not_be_the_sweep_signer() {
    let dir = tempfile::tempdir().unwrap();
    let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    let both = format!("[signer]\nprivate_key = \"{key}\"\n\n[refunds]\nprivate_key = \"{key}\"\n");
    let (code, lines) = check(dir.path(), &config("http://127.0.0.1:1", 1, "sqlite://x.db", &both), &[]);
    assert_eq!(code, 1, "{lines:?}");
    assert!(lines[0].contains("refunds.private_key") && lines[0].contains("[signer]"), "{lines:?}");
    assert!(!lines.join("\n").contains(&key[2..]), "the key leaked: {lines:?}");
}

#[tokio::test]
async fn team_create_prints_a_key_that_reaches_the_team() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/paywatch.db", dir.path().display());
    let path = write_file(dir.path(), "paywatch.toml", &config("http://127.0.0.1:1", 1, &db, ""));
    let out = paywatch(&["team", "create", "--name", "acme", "--config", path.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    let store = paywatch::store::Store::connect(&db).await.unwrap();
    let owner =
        paywatch::store::teams::find_key_owner(store.pool(), printed["api_key"].as_str().unwrap()).await.unwrap();
    assert_eq!(owner.map(|o| o.team_id).as_deref(), printed["team_id"].as_str());
    let empty = paywatch(&["team", "create", "--name", " ", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(empty.status.code(), Some(1), "a blank name is refused");
}

/// The paywatch service's environment in docker-compose.yml.
fn compose_environment() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("docker-compose.yml is YAML");
    let env = &docs[0]["services"]["paywatch"]["environment"];
    let map = env.as_hash().expect("the paywatch service sets its environment as a map");
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                yaml_rust2::Yaml::String(s) => s.clone(),
                yaml_rust2::Yaml::Integer(n) => n.to_string(),
                other => panic!("{k:?} has a value that is not text: {other:?}"),
            };
            (k.as_str().unwrap().to_string(), value)
        })
        .collect()
}

/// The compose file's variables on top of the file the image ships (deploy/paywatch.compose.toml):
/// as they are (offline), and with the compose host names pointed at this machine's PostgreSQL
/// and a fresh anvil (connected).
#[tokio::test]
async fn check_accepts_what_the_compose_file_sets() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = root.join("deploy/paywatch.compose.toml");
    let env = compose_environment();
    assert!(env.iter().any(|(k, _)| k == "PAYWATCH__DATABASE__URL"), "compose sets the database: {env:?}");
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = paywatch(&["check", "--offline", "--config", base.to_str().unwrap()], &pairs);
    assert!(out.status.success(), "offline check: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""config":"ok""#));

    let chain = TestChain::start().await;
    let db = crate::support::db::TestDb::postgres().await;
    let rpc = chain.anvil.rpc_url();
    let ws = chain.anvil.ws_url();
    let local: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            let v = match k.as_str() {
                "PAYWATCH__DATABASE__URL" => {
                    assert!(v.contains("@postgres:5432/"), "compose points at its postgres service: {v}");
                    db.url.clone()
                }
                _ => v.replace("http://anvil:8545", &rpc).replace("ws://anvil:8545", &ws),
            };
            (k.clone(), v)
        })
        .collect();
    let pairs: Vec<(&str, &str)> = local.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = paywatch(&["check", "--config", base.to_str().unwrap()], &pairs);
    assert!(out.status.success(), "connected check: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""rpc":"ok""#));
    db.cleanup().await;
}

#[tokio::test]
async fn several_endpoints_and_a_finality_tag_pass_check() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/db/paywatch.db", dir.path().display());
    let rpc = chain.anvil.rpc_url();
    let text = config(&rpc, 31337, &db, "")
        .replace(&format!("rpc_http = \"{rpc}\""), &format!("rpc_http = [\"{rpc}\", \"{rpc}/\"]"))
        .replace("confirmations = 2", "confirmations = \"finalized\"");
    let (code, lines) = check(dir.path(), &text, &[]);
    assert_eq!(code, 0, "stderr: {lines:?}");
    assert!(lines.is_empty(), "no warning on a devnet with two endpoints: {lines:?}");
}

#[test]
fn one_endpoint_on_a_real_chain_is_warned_about_without_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let one = config("https://eth.example.com/v3/SECRETKEY", 1, "sqlite://x.db", "");
    let path = write_file(dir.path(), "one.toml", &one);
    let warnings = ::paywatch::config::Config::load(&path).unwrap().warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("https://eth.example.com") && !warnings[0].contains("SECRETKEY"), "{warnings:?}");
    let two = one.replace(
        "rpc_http = \"https://eth.example.com/v3/SECRETKEY\"",
        "rpc_http = [\"https://eth.example.com/v3/SECRETKEY\", \"https://other.example.org/KEY2\"]",
    );
    let path = write_file(dir.path(), "two.toml", &two);
    assert!(::paywatch::config::Config::load(&path).unwrap().warnings().is_empty());
}

#[test]
fn an_unreachable_rpc_is_one_line_without_the_urls_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/db/paywatch.db", dir.path().display());
    let text = config("http://127.0.0.1:1/v3/SECRETKEY", 31337, &db, "");
    let (code, lines) = check(dir.path(), &text, &[]);
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("http://127.0.0.1:1") && !lines[0].contains("SECRETKEY"), "{lines:?}");
}

#[test]
fn an_unknown_chain_name_and_a_duplicate_chain_id_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let base = config("http://127.0.0.1:1", 1, "sqlite://x.db", "");
    let l2 = "\n[chains.arbitrum]\nchain_id = 42161\nrpc_http = \"http://127.0.0.1:2\"\n";
    let unknown = format!(
        "{base}{l2}\n[tokens.USDT_BASE]\nchain = \"base\"\naddress = \"0xdAC17F958D2ee523a2206206994597C13D831ec7\"\ndecimals = 6\n"
    );
    assert_one_line_failure(check(dir.path(), &unknown, &[]), "tokens.USDT_BASE.chain");
    let duplicate = format!("{base}{}", l2.replace("42161", "1"));
    assert_one_line_failure(check(dir.path(), &duplicate, &[]), "chains.arbitrum.chain_id");
    let same_token_twice = format!(
        "{base}\n[tokens.ANKR_AGAIN]\naddress = \"0x8290333ceF9e6D528dD5618Fb97a76f268f3EDD4\"\ndecimals = 18\n"
    );
    assert_one_line_failure(check(dir.path(), &same_token_twice, &[]), "address");
}

/// `check` reaches every chain and finds the factory on each, or says that deploy must run there.
#[tokio::test]
async fn check_verifies_the_factory_on_every_chain() {
    let first = TestChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/paywatch.db", dir.path().display());
    let factory = first.deployment.factory;
    let second = paywatch::devnet::anvil::Anvil::spawn(paywatch::devnet::anvil::AnvilOptions {
        chain_id: paywatch::devnet::L2_CHAIN_ID,
        ..Default::default()
    })
    .await
    .unwrap();
    let extra = format!(
        "[deposits]\nfactory = \"{factory}\"\ntreasury = \"{}\"\n\n[chains.l2]\nchain_id = {}\nrpc_http = \"{}\"\n",
        first.treasury,
        paywatch::devnet::L2_CHAIN_ID,
        second.rpc_url()
    );
    let text = config(&first.anvil.rpc_url(), 31337, &db, &extra);
    assert_one_line_failure(check(dir.path(), &text, &[]), "contracts deploy --chain l2");

    let signer: alloy::signers::local::PrivateKeySigner =
        paywatch::devnet::anvil::accounts::DEPLOYER_KEY.parse().unwrap();
    let provider = paywatch::chain::rpc::signing_provider(&second.rpc_url(), signer).unwrap();
    assert_eq!(paywatch::chain::deploy::deploy_factory(&provider, first.treasury).await.unwrap(), factory);
    let (code, lines) = check(dir.path(), &text, &[]);
    assert_eq!(code, 0, "the factory is on both chains now: {lines:?}");
}

/// Issue 26, item 7: `[deposits] treasury` must be the factory's own (fixed at its deployment).
/// `check` refuses another, naming both addresses; so does `serve` (it exits); `contracts
/// deploy` refuses to pick a treasury silently, and with `--mocks` says which it used.
#[tokio::test]
async fn a_treasury_that_is_not_the_factorys_is_refused_and_deploy_never_picks_one_silently() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/paywatch.db", dir.path().display());
    let factory = chain.deployment.factory;
    let elsewhere = alloy::primitives::Address::repeat_byte(0x42);
    let deposits = |treasury: alloy::primitives::Address| {
        format!("[deposits]\nfactory = \"{factory}\"\ntreasury = \"{treasury}\"\n")
    };
    let good = config(&chain.anvil.rpc_url(), 31337, &db, &deposits(chain.treasury));
    let (code, lines) = check(dir.path(), &good, &[]);
    assert_eq!(code, 0, "the factory's own treasury passes: {lines:?}");

    let wrong = config(&chain.anvil.rpc_url(), 31337, &db, &deposits(elsewhere));
    let (code, lines) = check(dir.path(), &wrong, &[]);
    assert_eq!(code, 1, "{lines:?}");
    let line = lines.join("\n");
    assert!(
        line.contains(&elsewhere.to_string()) && line.contains(&chain.treasury.to_string()),
        "check names both treasuries: {line}"
    );

    let path = write_file(dir.path(), "wrong.toml", &wrong);
    let serve = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_paywatch"))
            .args(["serve", "--config", path.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
                return (status.code(), err);
            }
            if started.elapsed() > std::time::Duration::from_secs(60) {
                let _ = child.kill();
                return (None, "serve was still running after 60 s".to_string());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert_eq!(serve.0, Some(1), "serve refuses the config: {}", serve.1);
    assert!(
        serve.1.contains(&elsewhere.to_string()) && serve.1.contains(&chain.treasury.to_string()),
        "serve names both treasuries: {}",
        serve.1
    );

    // contracts deploy: no treasury named and no --mocks is refused; with --mocks it says so.
    let key = paywatch::devnet::anvil::accounts::DEPLOYER_KEY;
    let bare = config(&chain.anvil.rpc_url(), 31337, &db, &format!("[signer]\nprivate_key = \"{key}\"\n"));
    let path = write_file(dir.path(), "bare.toml", &bare);
    let out =
        crate::support::paywatch_beside_server(&["contracts", "deploy", "--config", path.to_str().unwrap()]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--treasury"), "names how to give one: {err}");
    let out =
        crate::support::paywatch_beside_server(&["contracts", "deploy", "--mocks", "--config", path.to_str().unwrap()])
            .await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{err}");
    let signer: alloy::signers::local::PrivateKeySigner = key.parse().unwrap();
    assert!(err.contains(&signer.address().to_string()), "--mocks says it used the signer: {err}");
}

/// Issue 28: a chain's `payment_link` template is checked at start: `check` and `serve` refuse
/// a broken one with one line naming the chain's key (nothing is served with a wrong link).
#[test]
fn a_broken_payment_link_template_is_refused_naming_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let second = r#"
[chains.arbitrum]
chain_id = 42161
rpc_http = "http://127.0.0.1:1"
payment_link = "safepal://send?to={address}&amount={amont}"
"#;
    let text = config("http://127.0.0.1:1", 1, "sqlite://x.db", second);
    assert_one_line_failure(check(dir.path(), &text, &[]), "chains.arbitrum.payment_link");
    let (_, lines) = check(dir.path(), &text, &[]);
    assert!(lines[0].contains("unknown placeholder {amont}"), "{lines:?}");
    let path = write_file(dir.path(), "paywatch.toml", &text);
    let out = paywatch(&["serve", "--config", path.to_str().unwrap()], &[]);
    let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect();
    assert_one_line_failure((out.status.code().unwrap_or(-1), stderr), "chains.arbitrum.payment_link");
}

/// Issue 36: a token with `authorization = "eip3009"` is checked on its chain: one that does
/// not answer `authorizationState` (Ethereum's USDT) is named; so is one whose domain is not the
/// configured `eip712`; USDT0 passes. And the relayer key must be its own.
#[tokio::test]
async fn check_verifies_that_gasless_tokens_take_authorizations() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/paywatch.db", dir.path().display());
    let usdt0 = paywatch::chain::deploy::deploy_mock_usdt0(&chain.deployer).await.unwrap();
    let usdt = chain.token(paywatch::money::Token::UsdtErc20);
    let relayer = format!("[relayer]\nprivate_key = \"{}\"\n", paywatch::devnet::anvil::accounts::RELAYER_KEY);
    let token = |address: alloy::primitives::Address, eip712: &str| {
        format!(
            "[tokens.USDT0_ERC20]\naddress = \"{address}\"\ndecimals = 6\nasset = \"USDT\"\nauthorization = \"eip3009\"\n{eip712}\n{relayer}"
        )
    };
    let text = |extra: String| config(&chain.anvil.rpc_url(), 31337, &db, &extra);

    let (code, lines) = check(dir.path(), &text(token(usdt0, "")), &[]);
    assert_eq!(code, 0, "USDT0 takes authorizations: {lines:?}");
    assert_one_line_failure(check(dir.path(), &text(token(usdt, "")), &[]), "authorizationState");
    let wrong = "eip712 = { name = \"USD Coin\", version = \"2\" }";
    assert_one_line_failure(check(dir.path(), &text(token(usdt0, wrong)), &[]), "DOMAIN_SEPARATOR");
    let without_relayer = text(token(usdt0, "").replace(&relayer, ""));
    assert_one_line_failure(check(dir.path(), &without_relayer, &[]), "needs a [relayer]");
    let same = format!("[signer]\nprivate_key = \"{}\"\n", paywatch::devnet::anvil::accounts::RELAYER_KEY);
    assert_one_line_failure(
        check(dir.path(), &text(format!("{}{same}", token(usdt0, ""))), &[]),
        "relayer.private_key",
    );
}
