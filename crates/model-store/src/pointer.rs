//! The pointer: one small JSON blob naming the champion (the model every instance scores with),
//! optionally a challenger (scored in shadow), and the champions before it (for rollback).
//! Each model is named by its blob and its SHA-256, so an instance never serves bytes other
//! than those the operator validated. Changes are pure functions here; the store writes them
//! conditionally on the ETag the change was computed from.

use serde::{Deserialize, Serialize};

/// The pointer's blob name in the container.
pub const POINTER_BLOB: &str = "pointer.json";
/// The pointer format this build reads and writes; a newer one is refused, not misread.
pub const POINTER_SCHEMA: u32 = 1;
/// Previous champions kept for rollback.
pub const MAX_HISTORY: usize = 20;
/// A pointer larger than this is not a pointer.
pub const MAX_POINTER_BYTES: usize = 64 << 10;

/// One model file in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// `anomaly.model_version` from the file's metadata.
    pub model_version: String,
    /// The blob's name in the container (`models/<version>/<sha256>.onnx`).
    pub blob: String,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    pub bytes: u64,
}

impl ModelRef {
    /// The content-addressed blob name of a model file: uploading the same file twice is one
    /// blob, and a name never changes its bytes.
    pub fn blob_name(model_version: &str, sha256: &str) -> String {
        let safe: String = model_version
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') { c } else { '_' })
            .collect();
        format!("models/{safe}/{sha256}.onnx")
    }

    fn check(&self, role: &str) -> Result<(), PointerError> {
        let bad = |problem: String| PointerError::Invalid(format!("{role}: {problem}"));
        if self.model_version.is_empty() || self.model_version.chars().count() > 128 {
            return Err(bad("model_version must be 1 to 128 characters".into()));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad("sha256 must be 64 lowercase hex digits".into()));
        }
        if !self.blob.starts_with("models/") || self.blob.contains("..") || self.blob.len() > 1024 {
            return Err(bad(format!("blob {:?} must be a name under models/", self.blob)));
        }
        Ok(())
    }
}

/// What the last change to the pointer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Promote,
    Rollback,
    Challenge,
    ClearChallenger,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Promote => "promote",
            Change::Rollback => "rollback",
            Change::Challenge => "challenge",
            Change::ClearChallenger => "clear_challenger",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub schema: u32,
    pub champion: ModelRef,
    #[serde(default)]
    pub challenger: Option<ModelRef>,
    /// Previous champions, newest first (at most [`MAX_HISTORY`]).
    #[serde(default)]
    pub history: Vec<ModelRef>,
    pub change: Change,
    /// RFC 3339.
    pub updated_at: String,
    /// Who made the change (the operator's user name, or what `--by` said).
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    #[error("the pointer is not valid: {0}")]
    Invalid(String),
    #[error("the pointer has schema {found}; this build reads schema {POINTER_SCHEMA} (upgrade the handler or the CLI)")]
    NewerSchema { found: u32 },
    #[error("there is no earlier champion to roll back to")]
    NothingToRollBack,
    #[error("no champion is set yet: promote a model first")]
    NoChampion,
}

impl Pointer {
    /// Reads and checks a pointer's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, PointerError> {
        if bytes.len() > MAX_POINTER_BYTES {
            return Err(PointerError::Invalid(format!("larger than {MAX_POINTER_BYTES} bytes")));
        }
        #[derive(Deserialize)]
        struct Schema {
            schema: u32,
        }
        let schema: Schema = serde_json::from_slice(bytes).map_err(|e| PointerError::Invalid(e.to_string()))?;
        if schema.schema != POINTER_SCHEMA {
            return Err(PointerError::NewerSchema { found: schema.schema });
        }
        let pointer: Pointer = serde_json::from_slice(bytes).map_err(|e| PointerError::Invalid(e.to_string()))?;
        pointer.champion.check("champion")?;
        if let Some(c) = &pointer.challenger {
            c.check("challenger")?;
        }
        for (i, m) in pointer.history.iter().enumerate() {
            m.check(&format!("history[{i}]"))?;
        }
        if pointer.history.len() > MAX_HISTORY {
            return Err(PointerError::Invalid(format!("more than {MAX_HISTORY} history entries")));
        }
        Ok(pointer)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // A plain struct of strings and numbers: serialization cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// `model` becomes the champion; the champion it replaces heads the history. A challenger
    /// that is the promoted file is cleared (it is the champion now); another stays in shadow.
    pub fn promote(current: Option<&Pointer>, model: ModelRef, by: &str, at: &str) -> Pointer {
        let mut history = Vec::new();
        let mut challenger = None;
        if let Some(current) = current {
            if current.champion.sha256 != model.sha256 {
                history.push(current.champion.clone());
            }
            history.extend(current.history.iter().filter(|m| m.sha256 != model.sha256).cloned());
            challenger = current.challenger.clone().filter(|c| c.sha256 != model.sha256);
        }
        history.truncate(MAX_HISTORY);
        Pointer {
            schema: POINTER_SCHEMA,
            champion: model,
            challenger,
            history,
            change: Change::Promote,
            updated_at: at.into(),
            updated_by: by.into(),
        }
    }

    /// The previous champion serves again; the one rolled back is dropped from the pointer
    /// (its file stays in the store). The challenger, if any, stays.
    pub fn rollback(current: Option<&Pointer>, by: &str, at: &str) -> Result<Pointer, PointerError> {
        let current = current.ok_or(PointerError::NoChampion)?;
        let mut history = current.history.clone();
        if history.is_empty() {
            return Err(PointerError::NothingToRollBack);
        }
        let champion = history.remove(0);
        Ok(Pointer {
            schema: POINTER_SCHEMA,
            champion,
            challenger: current.challenger.clone(),
            history,
            change: Change::Rollback,
            updated_at: at.into(),
            updated_by: by.into(),
        })
    }

    /// Names `model` as the challenger (None: no challenger). Needs a champion.
    pub fn challenge(current: Option<&Pointer>, model: Option<ModelRef>, by: &str, at: &str) -> Result<Pointer, PointerError> {
        let current = current.ok_or(PointerError::NoChampion)?;
        Ok(Pointer {
            change: if model.is_some() { Change::Challenge } else { Change::ClearChallenger },
            challenger: model,
            updated_at: at.into(),
            updated_by: by.into(),
            ..current.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(n: u8) -> ModelRef {
        let sha256 = format!("{n:02x}").repeat(32);
        ModelRef {
            model_version: format!("ae-{n}"),
            blob: ModelRef::blob_name(&format!("ae-{n}"), &sha256),
            sha256,
            bytes: 100,
        }
    }

    #[test]
    fn promotions_stack_history_and_rollback_unwinds_it() {
        let p1 = Pointer::promote(None, model(1), "op", "t1");
        let p2 = Pointer::promote(Some(&p1), model(2), "op", "t2");
        let p3 = Pointer::promote(Some(&p2), model(3), "op", "t3");
        assert_eq!(p3.champion, model(3));
        assert_eq!(p3.history, vec![model(2), model(1)]);
        let back = Pointer::rollback(Some(&p3), "op", "t4").unwrap();
        assert_eq!((back.champion.clone(), back.history.clone(), back.change), (model(2), vec![model(1)], Change::Rollback));
        let back = Pointer::rollback(Some(&back), "op", "t5").unwrap();
        assert_eq!(back.champion, model(1));
        assert_eq!(Pointer::rollback(Some(&back), "op", "t6"), Err(PointerError::NothingToRollBack));
        assert_eq!(Pointer::rollback(None, "op", "t6"), Err(PointerError::NoChampion));
    }

    #[test]
    fn promoting_the_champion_again_or_the_challenger_keeps_the_history_clean() {
        let p1 = Pointer::promote(None, model(1), "op", "t1");
        let again = Pointer::promote(Some(&p1), model(1), "op", "t2");
        assert!(again.history.is_empty());
        let challenged = Pointer::challenge(Some(&p1), Some(model(2)), "op", "t3").unwrap();
        assert_eq!(challenged.challenger, Some(model(2)));
        let promoted = Pointer::promote(Some(&challenged), model(2), "op", "t4");
        assert_eq!((promoted.challenger.clone(), promoted.history.clone()), (None, vec![model(1)]));
        let other = Pointer::promote(Some(&challenged), model(3), "op", "t4");
        assert_eq!(other.challenger, Some(model(2)), "another challenger stays in shadow");
        let cleared = Pointer::challenge(Some(&challenged), None, "op", "t5").unwrap();
        assert_eq!((cleared.challenger.clone(), cleared.change), (None, Change::ClearChallenger));
        assert_eq!(Pointer::challenge(None, Some(model(2)), "op", "t"), Err(PointerError::NoChampion));
    }

    #[test]
    fn history_is_bounded() {
        let mut p = Pointer::promote(None, model(0), "op", "t");
        for n in 1..=30 {
            p = Pointer::promote(Some(&p), model(n), "op", "t");
        }
        assert_eq!(p.history.len(), MAX_HISTORY);
        assert_eq!(p.history[0], model(29));
    }

    #[test]
    fn parse_round_trips_and_refuses_what_it_cannot_trust() {
        let p = Pointer::challenge(Some(&Pointer::promote(None, model(1), "op", "t")), Some(model(2)), "op", "t").unwrap();
        assert_eq!(Pointer::parse(&p.to_bytes()).unwrap(), p);
        let mut newer: serde_json::Value = serde_json::from_slice(&p.to_bytes()).unwrap();
        newer["schema"] = 2.into();
        assert_eq!(Pointer::parse(newer.to_string().as_bytes()), Err(PointerError::NewerSchema { found: 2 }));
        for (field, value) in [
            ("sha256", serde_json::json!("ABC")),
            ("blob", serde_json::json!("../pointer.json")),
            ("model_version", serde_json::json!("")),
        ] {
            let mut bad: serde_json::Value = serde_json::from_slice(&p.to_bytes()).unwrap();
            bad["champion"][field] = value;
            assert!(matches!(Pointer::parse(bad.to_string().as_bytes()), Err(PointerError::Invalid(m)) if m.contains("champion")), "{field}");
        }
        assert!(matches!(Pointer::parse(b"{}"), Err(PointerError::Invalid(_))));
        assert!(matches!(Pointer::parse(&vec![b' '; MAX_POINTER_BYTES + 1]), Err(PointerError::Invalid(_))));
    }

    #[test]
    fn blob_names_are_content_addressed_and_path_safe() {
        assert_eq!(ModelRef::blob_name("ae-1", "ff"), "models/ae-1/ff.onnx");
        assert_eq!(ModelRef::blob_name("a/../b c", "ff"), "models/a____b_c/ff.onnx");
    }
}
