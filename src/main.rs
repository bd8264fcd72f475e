// TEMPORARY local wiring by the bench helper; reverted to `fn main() {}` when done.
mod bench;
use clap::Parser;
#[derive(clap::Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}
#[derive(clap::Subcommand)]
enum Cmd {
    Bench(bench::BenchArgs),
}
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Bench(a) => bench::run(a).await,
    }
}
