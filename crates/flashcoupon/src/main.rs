//! The `flashcoupon` binary: parse the command line and hand over.

use anyhow::Context;
use clap::{Parser, Subcommand};
use flashcoupon::app::Application;
use flashcoupon::auth::hash_password;
use flashcoupon::clock::Clock;
use flashcoupon::domain::account::{Email, Password};
use flashcoupon::settings::Durability;
use flashcoupon::settings::Settings;
use flashcoupon::store::{PgStore, SqliteStore, Store};
use flashcoupon::telemetry;
use std::io::Write;

#[derive(Debug, Parser)]
#[command(
    name = "flashcoupon",
    version,
    about = "First-come-first-served coupon drops"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the platform: embedded mode (SQLite in the data dir) by default,
    /// scale-out mode with --redis-url and --postgres-url.
    Serve(Box<Settings>),
    /// Replay a drop (or, with --scenario time-sale, a time sale) against
    /// running servers, verify every promise, report.
    Loadtest(flashcoupon::loadtest::LoadtestArgs),
    /// Administer a data dir.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin, or promote an existing user and reset their password.
    Create {
        #[arg(long, env = "FLASHCOUPON_ADMIN_EMAIL")]
        email: String,
        #[arg(long, env = "FLASHCOUPON_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, env = "FLASHCOUPON_DATA_DIR", default_value = "./data")]
        data_dir: std::path::PathBuf,
        /// Scale-out: the PostgreSQL record instead of the data dir.
        #[arg(long, env = "FLASHCOUPON_POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<String>,
    },
    /// Rewrite the embedded database with smaller pages (new databases
    /// get 1 KiB pages; an older one keeps 4 KiB until this runs). Stop
    /// the server first; it rewrites the whole file.
    Repage {
        #[arg(long, env = "FLASHCOUPON_DATA_DIR", default_value = "./data")]
        data_dir: std::path::PathBuf,
        #[arg(long, default_value_t = flashcoupon::store::SQLITE_PAGE_SIZE)]
        page_size: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(settings) => serve(*settings).await,
        Command::Loadtest(args) => {
            let out = args.out.clone();
            let report = flashcoupon::loadtest::run(args).await?;
            print!("{}", report.summary());
            if let Some(dir) = out {
                println!("report: {}", dir.join("report.html").display());
            }
            if !report.violations().is_empty() {
                eprintln!("{} promise violation(s)", report.violations().len());
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Admin(AdminCommand::Repage {
            data_dir,
            page_size,
        }) => {
            let path = data_dir.join("flashcoupon.db");
            let done = flashcoupon::store::repage(&path, page_size, |before| {
                println!(
                    "rewriting {} from {before}- to {page_size}-byte pages (the whole file: a while for a large one)",
                    path.display()
                );
            })?;
            if done.before == done.after {
                println!("nothing to do: its pages are {} bytes already", done.after);
            } else {
                println!("done: {} -> {} bytes a page", done.before, done.after);
            }
            Ok(())
        }
        Command::Admin(AdminCommand::Create {
            email,
            password,
            data_dir,
            postgres_url,
        }) => {
            let telemetry = telemetry::init(flashcoupon::settings::LogFormat::Text, None)?;
            let email = Email::parse(&email).context("--email")?;
            let password = Password::parse(password).context("--password")?;
            let (store, place): (Box<dyn Store>, String) = match postgres_url {
                Some(url) => (Box::new(PgStore::connect(&url).await?), "PostgreSQL".into()),
                None => (
                    Box::new(SqliteStore::open(&data_dir, Durability::Full).await?),
                    data_dir.display().to_string(),
                ),
            };
            let hash = hash_password(password.expose())?;
            let (id, created) = store
                .upsert_admin(&email, &hash, Some(&hash), Clock::default().now())
                .await?;
            store.close().await;
            let verb = if created { "created" } else { "promoted" };
            println!("{verb} admin {} ({id}) in {place}", email.as_str());
            telemetry.shutdown();
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let telemetry = telemetry::init(settings.log_format, settings.otlp_endpoint.as_deref())?;
    if let Some(endpoint) = &settings.otlp_endpoint {
        // Its host only: the URL may carry credentials.
        let host = reqwest::Url::parse(endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        tracing::info!(%host, "exporting request spans over OTLP");
    }
    let app = Application::build(&settings, Clock::default()).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, data_dir = %settings.data_dir.display(), "flashcoupon started");
    // Scripts and tests read this line to find the port.
    // Errors are ignored: a parent that read the first line and closed the
    // pipe must not take the server down (println! would panic).
    let _ = writeln!(
        std::io::stdout().lock(),
        "flashcoupon listening on http://{addr}\n  shop page:     http://{addr}/\n  admin console: http://{addr}/admin"
    );
    let ran = app.run_until_stopped(shutdown_signal()).await;
    // The spans still queued go out before the process ends.
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    ran
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests and draining the commit queue");
}
