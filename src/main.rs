use clap::Parser;

fn main() {
    let cli = pnc_pki::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PNC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match pnc_pki::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line, whatever the cause says.
            eprintln!("error: {}", e.to_string().replace(['\n', '\r'], " "));
            std::process::exit(1);
        }
    }
}
