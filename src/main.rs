//! The `dbsync` command: parses the command line, sets up logging, runs the job and turns
//! its outcome into the exit code scripts check.

use clap::{CommandFactory, Parser};
use dbsync::cli::{Cli, Command, ProgressArg};
use dbsync::report::Exit;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage as u8 } else { 0 });
        }
    };
    if let Some(command) = &cli.command {
        return about_itself(command);
    }
    init_logging(&cli);
    steady_memory();
    dbsync::interrupt::install(|| dbsync::connect::session::ALL.abandon());
    if let Some(path) = cli.summary_json.as_ref().filter(|p| p.as_os_str() != "-") {
        // A run killed before its end must not leave the previous run's summary behind.
        if let Err(e) = dbsync::report::write_running(path) {
            eprintln!(
                "dbsync: error: cannot write --summary-json {}: {e}",
                path.display()
            );
            return ExitCode::from(Exit::Usage as u8);
        }
    }
    // connectorx reports failures by panicking; they are caught and reported as errors,
    // so the default hook's backtrace note would only confuse.
    std::panic::set_hook(Box::new(|info| log::debug!("panic: {info}")));
    use dbsync::pipeline::ProgressMode;
    let progress = match cli.progress {
        ProgressArg::Off => ProgressMode::Off,
        ProgressArg::Log => ProgressMode::Log,
        ProgressArg::Auto if !cli.quiet && std::io::stderr().is_terminal() => {
            ProgressMode::Terminal
        }
        ProgressArg::Auto => ProgressMode::Off,
    };
    let outcome = std::panic::catch_unwind(|| dbsync::run(&cli, progress)).unwrap_or_else(|p| {
        let mut s = dbsync::report::Summary::new("", "");
        s.error = Some(format!(
            "internal error (please report it): {}",
            dbsync::fence::panic_message(p.as_ref())
        ));
        dbsync::report::Outcome::One(s)
    });
    if let Some(error) = outcome.error() {
        eprintln!("dbsync: error: {error}");
        dbsync::logfile::line(&format!("dbsync: error: {error}"));
    }
    let exit = outcome.exit();
    dbsync::logfile::line(&format!("dbsync: exit {}", exit as u8));
    if let Some(path) = &cli.summary_json {
        if let Err(e) = outcome.write_json(path) {
            eprintln!(
                "dbsync: error: cannot write --summary-json {}: {e}",
                path.display()
            );
        }
    }
    ExitCode::from(exit as u8)
}

/// `dbsync completions SHELL` and `dbsync man`: generated from the same definition as
/// `--help`, so they never drift from it.
fn about_itself(command: &Command) -> ExitCode {
    use std::io::Write;
    let mut definition = Cli::command();
    // Made in memory first: clap_complete panics on a write error (a closed pipe).
    let mut text = Vec::new();
    let made = match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut definition, "dbsync", &mut text);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(definition).render(&mut text),
    };
    match made.and_then(|()| std::io::stdout().write_all(&text)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dbsync: error: cannot write to stdout: {e}");
            ExitCode::from(Exit::Failed as u8)
        }
    }
}

fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => log::LevelFilter::Warn,
        (false, 0) => log::LevelFilter::Info,
        (false, 1) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    // Other crates' records (connectorx's "parser error ... manually compose query string",
    // r2d2's pool errors) are not the user's log: dbsync reports what went wrong itself.
    // They show at -vv, or as RUST_LOG asks.
    let others = match level {
        log::LevelFilter::Trace => log::LevelFilter::Trace,
        _ => log::LevelFilter::Off,
    };
    let logger = env_logger::Builder::new()
        .filter_level(others)
        .filter_module("dbsync", level)
        .parse_env("RUST_LOG")
        .format_target(false)
        .target(env_logger::Target::Stderr)
        .build();
    // Warnings go into the summary even when the terminal shows fewer.
    log::set_max_level(logger.filter().max(log::LevelFilter::Warn));
    let _ = log::set_boxed_logger(Box::new(dbsync::logfile::Capture(logger)));
}

/// Rows are built and dropped a batch (a few MB) at a time. glibc raises its mmap
/// threshold after each such free, after which batches come from the heap and peak RSS
/// creeps up with the length of the run; a fixed threshold keeps it flat.
fn steady_memory() {
    // SAFETY: mallopt only tunes the allocator; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
