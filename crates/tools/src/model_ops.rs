//! `sensor-anomaly model`: the operator's side of the model store. Every change validates what
//! it names with the checks the handler makes (the contract, the metadata, a probe inference),
//! uploads the file under its content-addressed name, and writes the pointer conditionally on
//! the ETag it was computed from: two operators racing cannot clobber each other, the loser is
//! told and nothing of theirs lands.

use model_store::{Change, ModelRef, ModelStore, Pointer, PointerError, StoreError, Versioned};
use scoring::{Model, ModelError};

#[derive(Debug, thiserror::Error)]
pub enum ModelOpError {
    #[error("the model file was refused: {0}")]
    Invalid(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pointer(#[from] PointerError),
    #[error("the pointer changed while this {change} was being made (someone else changed it): nothing was written; run `sensor-anomaly model status` and try again")]
    Raced { change: &'static str },
    #[error("the model file has {bytes} bytes, more than the {} a handler downloads", model_store::MAX_MODEL_BYTES)]
    TooLarge { bytes: usize },
    #[error(transparent)]
    VersionMismatch(#[from] service::model_follow::VersionMismatch),
    #[error("there is no challenger to promote: name a file with --file, or set one with `model challenge --file`")]
    NoChallenger,
    #[error("the challenger reads features the champion's windows do not carry ({}): it cannot be scored on the same windows in shadow; promote it instead", .missing.join(", "))]
    FeatureMismatch { missing: Vec<String> },
}

/// What a change did, for the command's output.
#[derive(Debug, Clone)]
pub struct Changed {
    pub before: Option<Pointer>,
    pub after: Pointer,
    /// The challenger this change had to stop shadowing: it reads features the new champion's
    /// windows do not carry (and the features it missed).
    pub challenger_cleared: Option<(ModelRef, Vec<String>)>,
}

/// A model file checked the way the handler checks one, and its reference once uploaded.
pub struct Checked {
    pub model: Model,
    pub bytes: Vec<u8>,
}

pub fn check(bytes: Vec<u8>, source: &str) -> Result<Checked, ModelOpError> {
    if bytes.len() > model_store::MAX_MODEL_BYTES {
        return Err(ModelOpError::TooLarge { bytes: bytes.len() });
    }
    let model = Model::load_bytes(&bytes, source)?;
    Ok(Checked { model, bytes })
}

async fn upload(store: &ModelStore, checked: &Checked) -> Result<ModelRef, ModelOpError> {
    store.ensure_container().await?;
    Ok(store.upload_model(&checked.model.info.model_version, &checked.bytes).await?)
}

/// Writes `after` if the pointer is still `before`'s version. A conflict can also be this very
/// write answered twice (it landed, its response was lost, the retry found the ETag moved): the
/// pointer is read back, and if it is `after` the change is done, not raced.
pub async fn write(store: &ModelStore, before: Option<Versioned>, after: Pointer) -> Result<Changed, ModelOpError> {
    let expected = before.as_ref().map(|v| v.etag.clone());
    match store.put_pointer(&after, expected.as_ref()).await {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => {
            let now = store.pointer().await?;
            if now.map(|v| v.pointer) != Some(after.clone()) {
                return Err(ModelOpError::Raced { change: after.change.as_str() });
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Changed {
        before: before.map(|v| v.pointer),
        after,
        challenger_cleared: None,
    })
}

/// A new champion must be able to feed the challenger it keeps; when it cannot, the
/// challenger stops in the same write (the handler would refuse it), and the change says so.
async fn keep_challenger_if_it_fits(
    store: &ModelStore,
    champion: &Model,
    after: &mut Pointer,
) -> Result<Option<(ModelRef, Vec<String>)>, ModelOpError> {
    let Some(challenger) = after.challenger.clone() else {
        return Ok(None);
    };
    let model = fetch(store, &challenger).await?;
    match shadow_compatible(champion, &model) {
        Ok(()) => Ok(None),
        Err(ModelOpError::FeatureMismatch { missing }) => {
            after.challenger = None;
            Ok(Some((challenger, missing)))
        }
        Err(e) => Err(e),
    }
}

fn now() -> String {
    domain::time::format(domain::time::now())
}

/// `model promote`: `file` (checked and uploaded) becomes the champion; without a file, the
/// current challenger does, once its stored bytes are verified and load.
pub async fn promote(store: &ModelStore, file: Option<&Checked>, by: &str) -> Result<Changed, ModelOpError> {
    let fetched;
    let (before, model, champion) = match file {
        Some(checked) => {
            let model = upload(store, checked).await?;
            (store.pointer().await?, model, &checked.model)
        }
        None => {
            let before = store.pointer().await?;
            let named = before
                .as_ref()
                .and_then(|v| v.pointer.challenger.clone())
                .ok_or(ModelOpError::NoChallenger)?;
            fetched = fetch(store, &named).await?;
            (before, named, &fetched)
        }
    };
    let mut after = Pointer::promote(before.as_ref().map(|v| &v.pointer), model, by, &now());
    let cleared = keep_challenger_if_it_fits(store, champion, &mut after).await?;
    let mut changed = write(store, before, after).await?;
    changed.challenger_cleared = cleared;
    Ok(changed)
}

/// `model challenge`: `file` is scored in shadow beside the champion (None: stop).
pub async fn challenge(store: &ModelStore, file: Option<&Checked>, by: &str) -> Result<Changed, ModelOpError> {
    let before = store.pointer().await?;
    let model = match file {
        Some(checked) => {
            let champion = before.as_ref().ok_or(PointerError::NoChampion)?;
            let champion_model = fetch(store, &champion.pointer.champion).await?;
            shadow_compatible(&champion_model, &checked.model)?;
            Some(upload(store, checked).await?)
        }
        None => None,
    };
    let after = Pointer::challenge(before.as_ref().map(|v| &v.pointer), model, by, &now())?;
    write(store, before, after).await
}

/// `model rollback`: the previous champion serves again.
pub async fn rollback(store: &ModelStore, by: &str) -> Result<Changed, ModelOpError> {
    let before = store.pointer().await?;
    let mut after = Pointer::rollback(before.as_ref().map(|v| &v.pointer), by, &now())?;
    // The champion it goes back to must still be in the store, unchanged.
    let champion = fetch(store, &after.champion).await?;
    let cleared = keep_challenger_if_it_fits(store, &champion, &mut after).await?;
    let mut changed = write(store, before, after).await?;
    changed.challenger_cleared = cleared;
    Ok(changed)
}

/// A stored model, verified against its reference and loaded, and refused as the handler
/// refuses it when its own model_version is not the one the reference names.
pub async fn fetch(store: &ModelStore, model: &ModelRef) -> Result<Model, ModelOpError> {
    let bytes = store.download_model(model).await?;
    let loaded = Model::load_bytes(&bytes, &model.blob)?;
    service::model_follow::check_version(&loaded, model)?;
    Ok(loaded)
}

/// A challenger is scored on the windows decoded for the champion: it may read their features
/// in another order, or fewer of them, but none they do not carry (the handler's own rule).
pub fn shadow_compatible(champion: &Model, challenger: &Model) -> Result<(), ModelOpError> {
    service::shadow::feature_map(&champion.info.feature_names, &challenger.info.feature_names)
        .map(|_| ())
        .map_err(|missing| ModelOpError::FeatureMismatch { missing })
}

/// One line per role, for `model status` and after a change.
pub fn describe(pointer: &Pointer) -> String {
    let line = |m: &ModelRef| format!("{} ({}, {} bytes, sha256 {})", m.model_version, m.blob, m.bytes, &m.sha256[..12.min(m.sha256.len())]);
    let mut out = format!("champion    {}\n", line(&pointer.champion));
    match &pointer.challenger {
        Some(c) => out.push_str(&format!("challenger  {} (scored in shadow)\n", line(c))),
        None => out.push_str("challenger  none\n"),
    }
    for (i, m) in pointer.history.iter().enumerate() {
        out.push_str(&format!("{}{}\n", if i == 0 { "earlier     " } else { "            " }, line(m)));
    }
    let change = match pointer.change {
        Change::Promote => "promoted",
        Change::Rollback => "rolled back",
        Change::Challenge => "challenger set",
        Change::ClearChallenger => "challenger cleared",
    };
    out.push_str(&format!("last change {change} at {} by {}\n", pointer.updated_at, pointer.updated_by));
    out
}
