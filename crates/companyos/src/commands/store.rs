//! The commands that open the store themselves: `init`, `serve`, and opening an existing
//! store for the store commands, with a missing PostgreSQL database explained.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use companyos_core::App;

use super::{UsageError, clock, open_secret_file, server_settings};
use crate::Cli;
use crate::config::FileConfig;

pub(super) async fn init(
    cli: &Cli,
    file: &FileConfig,
    token_file: Option<&Path>,
) -> anyhow::Result<u8> {
    let resolved = server_settings(cli, file)?;
    let dir = resolved.settings.data_dir.clone();
    // The token file is opened (and refused, if it is a link) before the store creates the
    // token: a token that cannot be written must not be created, it could never be shown.
    let secret = token_file.map(open_secret_file).transpose()?;
    let database_url = resolved.settings.database_url.clone();
    let (app, report) = match App::open(resolved.settings, clock(resolved.clock_offset)).await {
        Ok(opened) => opened,
        Err(error) => {
            if let Some(secret) = secret {
                let _ = secret.abandon();
            }
            return Err(open_error(error, database_url.as_deref()).context("failed to initialise"));
        }
    };
    app.db().close().await;
    match report.admin_token {
        Some(token) => match (token_file, secret) {
            (Some(path), Some(secret)) => {
                secret
                    .write(format!("{token}\n").as_bytes())
                    .with_context(|| {
                        format!("failed to write the secret file {}", path.display())
                    })?;
                println!(
                    "initialised {}; the admin token is in {} (mode 0600)",
                    dir.display(),
                    path.display()
                );
            }
            _ => {
                println!("initialised {}", dir.display());
                println!("admin token (shown once, keep it safe): {token}");
            }
        },
        None => {
            if let Some(secret) = secret {
                secret
                    .abandon()
                    .context("failed to remove the unused token file")?;
            }
            println!("{} is already initialised; nothing changed", dir.display());
        }
    }
    Ok(0)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

pub(super) async fn serve(cli: &Cli, file: &FileConfig) -> anyhow::Result<u8> {
    let resolved = server_settings(cli, file)?;
    let listen = cli
        .listen
        .clone()
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let address: std::net::SocketAddr = listen.parse().map_err(|_| {
        UsageError(format!(
            "setting listen must be an address like 127.0.0.1:8080, got {listen:?}"
        ))
    })?;
    // Bind before the store is opened: a first start that cannot listen must not initialise
    // the store, or the bootstrap admin token it creates would never be shown.
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to listen on {address}"))?;
    let database_url = resolved.settings.database_url.clone();
    let (app, report) = App::open(resolved.settings, clock(resolved.clock_offset))
        .await
        .map_err(|error| open_error(error, database_url.as_deref()))
        .context("failed to open the store")?;
    let bound = listener.local_addr()?;
    if let Some(token) = &report.admin_token {
        println!("admin token (shown once, keep it safe): {token}");
    }
    // Scripts and tests parse the "listening on" line: it stays exactly as it is, the console
    // gets its own line after it.
    println!("listening on http://{bound}");
    println!("console: http://{bound}/console (sign in with an operator token)");
    std::io::stdout().flush()?;
    tracing::info!(address = %bound, store = app.db().backend().as_str(), "serving");
    let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
    let jobs_app = app.clone();
    let jobs = tokio::spawn(async move { jobs_app.jobs().run(jobs_stopped).await });
    let state = companyos_server::AppState {
        app: app.clone(),
        body_bytes_max: resolved.body_bytes_max,
    };
    companyos_server::serve(state, listener, shutdown_signal())
        .await
        .context("the server failed")?;
    let _ = stop_jobs.send(true);
    let _ = jobs.await;
    app.db().close().await;
    tracing::info!("stopped");
    Ok(0)
}

/// Opens the store of an existing data dir (store commands must not create one).
pub(super) async fn open_existing(cli: &Cli, file: &FileConfig) -> anyhow::Result<App> {
    let resolved = server_settings(cli, file)?;
    if resolved.settings.database_url.is_none()
        && !resolved.settings.data_dir.join("companyos.db").exists()
    {
        bail!(
            "no CompanyOS store in {} (run companyos init, or pass --data-dir / --database-url)",
            resolved.settings.data_dir.display()
        );
    }
    let database_url = resolved.settings.database_url.clone();
    let (app, _) = App::open(resolved.settings, clock(resolved.clock_offset))
        .await
        .map_err(|error| open_error(error, database_url.as_deref()))?;
    Ok(app)
}

/// A PostgreSQL database that does not exist yet: the store never creates one (its owner,
/// encoding and place are the operator's choice), so the error says how to.
#[derive(Debug, thiserror::Error)]
#[error(
    "PostgreSQL database {name:?} does not exist; create it first: createdb -h {host} -p {port} -U {user} {name} (or CREATE DATABASE {name};)"
)]
pub struct MissingDatabase {
    name: String,
    host: String,
    port: u16,
    user: String,
}

/// The error of `App::open`, with a missing PostgreSQL database named once with its remedy.
fn open_error<E>(error: E, database_url: Option<&str>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut missing = false;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = current {
        if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>() {
            // 3D000 invalid_catalog_name: the database named in the URL does not exist.
            missing |= db.code().as_deref() == Some("3D000");
        }
        current = cause.source();
    }
    let url = database_url.and_then(|u| reqwest::Url::parse(u).ok());
    match (missing, url) {
        (true, Some(url)) => MissingDatabase {
            name: url.path().trim_start_matches('/').to_owned(),
            host: url.host_str().unwrap_or("127.0.0.1").to_owned(),
            port: url.port().unwrap_or(5432),
            user: match url.username() {
                "" => "postgres".to_owned(),
                user => user.to_owned(),
            },
        }
        .into(),
        _ => error.into(),
    }
}
