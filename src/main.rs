#[tokio::main]
async fn main() -> std::process::ExitCode {
    paywatch::cli::main().await
}
