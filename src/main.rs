use clap::Parser;
use std::io::IsTerminal;

fn main() {
    let cli = pnc_pki::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("PNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // JSON lines for log shippers (`PNC_LOG_FORMAT=json`); otherwise text, coloured only on a
    // terminal: a log file or a journal must not fill with escape sequences.
    let json = match std::env::var("PNC_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") | Ok("") | Err(_) => false,
        Ok(other) => {
            eprintln!("error: PNC_LOG_FORMAT='{other}' (use text or json)");
            std::process::exit(1);
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
    match pnc_pki::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line, whatever the cause says.
            eprintln!("error: {}", e.to_string().replace(['\n', '\r'], " "));
            std::process::exit(1);
        }
    }
}
