//! `operator ...`: operators through the API, and `reset-admin` on the store itself.

use std::path::Path;

use anyhow::Context as _;
use reqwest::Method;
use serde_json::json;

use super::{OperatorCommand, api, open_existing, open_secret_file};
use crate::Cli;
use crate::client::encode;
use crate::config::FileConfig;
use crate::output::{self, fields, table};

pub(super) async fn operator(
    cli: &Cli,
    file: &FileConfig,
    command: &OperatorCommand,
) -> anyhow::Result<u8> {
    if let OperatorCommand::ResetAdmin { token_file } = command {
        return reset_admin(cli, file, token_file.as_deref()).await;
    }
    let api = api(cli, file)?;
    match command {
        OperatorCommand::Create { name, role } => {
            let (_, value) = api
                .call(
                    Method::POST,
                    "/v1/operators",
                    Some(&json!({"name": name, "role": role})),
                )
                .await?;
            output::print(cli.format(), &value, |v| {
                format!(
                    "{}token (shown once): {}\n",
                    fields(v, &["id", "name", "role"]),
                    output::cell(&v["token"])
                )
            });
        }
        OperatorCommand::List => {
            let (_, value) = api.call(Method::GET, "/v1/operators", None).await?;
            output::print(cli.format(), &value, |v| {
                table(
                    v.as_array().map_or(&[], Vec::as_slice),
                    &["id", "name", "role", "revoked", "created_at"],
                )
            });
        }
        OperatorCommand::ResetAdmin { .. } => {}
        OperatorCommand::Revoke { id } => {
            let (_, value) = api
                .call(
                    Method::POST,
                    &format!("/v1/operators/{}/revoke", encode(id)),
                    None,
                )
                .await?;
            output::print(cli.format(), &value, |_| format!("revoked {id}\n"));
        }
    }
    Ok(0)
}

/// `operator reset-admin`: a new admin token from the store itself (the lost-token recovery).
async fn reset_admin(
    cli: &Cli,
    file: &FileConfig,
    token_file: Option<&Path>,
) -> anyhow::Result<u8> {
    // Opened first: the old token is not revoked unless the new one has somewhere to go.
    let secret = token_file.map(open_secret_file).transpose()?;
    let result = async {
        let app = open_existing(cli, file).await?;
        let result = app.operators().reset_admin().await;
        app.db().close().await;
        result.context("failed to reset the admin token")
    }
    .await;
    let token = match result {
        Ok(token) => token,
        Err(error) => {
            if let Some(secret) = secret {
                let _ = secret.abandon();
            }
            return Err(error);
        }
    };
    match (token_file, secret) {
        (Some(path), Some(secret)) => {
            secret
                .write(format!("{token}\n").as_bytes())
                .with_context(|| format!("failed to write the secret file {}", path.display()))?;
            println!(
                "the old admin token is revoked; the new one is in {} (mode 0600)",
                path.display()
            );
        }
        _ => {
            println!("the old admin token is revoked");
            println!("admin token (shown once, keep it safe): {token}");
        }
    }
    Ok(0)
}
