//! `model status|promote|challenge|rollback`: the model store from the operator's side.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::args::ModelCommand;
use model_store::{Caller, Change, ModelStore, StoreSettings};
use sensor_anomaly::model_ops::{self, Changed};

pub(crate) fn run(command: ModelCommand) -> Result<()> {
    let Some(settings) = StoreSettings::from_lookup(|n| std::env::var(n).ok())? else {
        bail!(
            "no model store is configured: set {} (the blob service URL; your `az login` identity is used) or {} (an account-key connection string, e.g. UseDevelopmentStorage=true for Azurite)",
            model_store::settings::SERVICE_URI,
            model_store::settings::CONNECTION
        );
    };
    let store = ModelStore::new(settings, Caller::Operator)?;
    let runtime = super::quiet_runtime()?;
    runtime.block_on(async {
        match command {
            ModelCommand::Status { json } => match store.pointer().await? {
                None => println!("no pointer in {}: every handler serves its packaged model (ANOMALY_MODEL_PATH)", store.target()),
                Some(v) if json => println!("{}", serde_json::to_string_pretty(&v.pointer)?),
                Some(v) => print!("{}", model_ops::describe(&v.pointer)),
            },
            ModelCommand::Promote { file, by } => {
                let checked = file.as_deref().map(read).transpose()?;
                report(model_ops::promote(&store, checked.as_ref(), &who(by)).await?);
            }
            ModelCommand::Challenge { file, by, .. } => {
                let checked = file.as_deref().map(read).transpose()?;
                report(model_ops::challenge(&store, checked.as_ref(), &who(by)).await?);
            }
            ModelCommand::Rollback { by } => report(model_ops::rollback(&store, &who(by)).await?),
        }
        anyhow::Ok(())
    })
}

fn read(path: &Path) -> Result<model_ops::Checked> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(model_ops::check(bytes, &path.display().to_string())?)
}

fn who(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn report(changed: Changed) {
    let after = &changed.after;
    match after.change {
        Change::Challenge | Change::ClearChallenger => println!(
            "{}: challenger {} (champion {})",
            after.change.as_str(),
            after.challenger.as_ref().map_or("none", |c| c.model_version.as_str()),
            after.champion.model_version
        ),
        Change::Promote | Change::Rollback => println!(
            "{}: champion {} (was {})",
            after.change.as_str(),
            after.champion.model_version,
            changed.before.as_ref().map_or("the packaged model", |p| p.champion.model_version.as_str())
        ),
    }
    if let Some((challenger, missing)) = &changed.challenger_cleared {
        println!(
            "challenger {} cleared: it reads features the new champion's windows do not carry ({})",
            challenger.model_version,
            missing.join(", ")
        );
    }
    print!("{}", model_ops::describe(&changed.after));
}
