use clap::Parser;
use std::io::IsTerminal;

/// `pnc-pki list | head`: once the reader has gone, stop quietly (exit 0) instead of panicking
/// with a stack trace. Rust ignores SIGPIPE, so a write to the closed pipe fails and `println!`
/// panics with this message; every other panic keeps the default report.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() {
    quiet_on_closed_stdout();
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
        // The reader of our output has gone (`| head`): nothing to report.
        Err(pnc_pki::cli::CliError::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(0)
        }
        Err(e) => {
            // One line, whatever the cause says.
            eprintln!("error: {}", e.to_string().replace(['\n', '\r'], " "));
            std::process::exit(1);
        }
    }
}
