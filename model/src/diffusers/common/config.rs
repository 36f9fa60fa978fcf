//! Reading diffusers' config.json files: parsing with errors that name the file, and refusing
//! settings this port does not implement.

use crate::diffusers::common::weights::LoadError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Reads and parses a JSON file; errors name the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| LoadError::File { path: path.into(), message: e.to_string() })?;
    serde_json::from_str(&text)
        .map_err(|e| LoadError::File { path: path.into(), message: format!("invalid JSON: {e}") })
}

/// A config value given once for all blocks or once per block.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum IntOrList {
    One(usize),
    List(Vec<usize>),
}

impl IntOrList {
    pub fn per_block(&self, blocks: usize) -> Result<Vec<usize>, String> {
        match self {
            IntOrList::One(v) => Ok(vec![*v; blocks]),
            IntOrList::List(v) if v.len() == blocks => Ok(v.clone()),
            IntOrList::List(v) => Err(format!("has {} entries for {blocks} blocks", v.len())),
        }
    }
}

impl std::fmt::Display for IntOrList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrList::One(v) => write!(f, "{v}"),
            IntOrList::List(v) => write!(f, "{v:?}"),
        }
    }
}

/// Fails when a config sets a key to something other than the value this port implements
/// (absent keys and nulls are the defaults).
pub fn check_unsupported(path: &Path, raw: &serde_json::Value, keys: &[(&str, &str)]) -> Result<(), LoadError> {
    for (key, expected) in keys {
        let Some(value) = raw.get(*key) else { continue };
        let expected: serde_json::Value = serde_json::from_str(expected).expect("valid JSON literal");
        let same = value == &expected
            || value.is_null()
            || matches!((value.as_f64(), expected.as_f64()), (Some(a), Some(b)) if a == b);
        if !same {
            return Err(LoadError::config(path, key, value, &format!("this port implements {expected} only")));
        }
    }
    Ok(())
}

/// Block type lists must have one entry per `block_out_channels` entry, each of the given kinds.
pub fn check_block_lists(
    path: &Path,
    channels: usize,
    lists: [(&str, &[String], &[&str]); 2],
) -> Result<(), LoadError> {
    for (key, list, allowed) in lists {
        if channels == 0 || list.len() != channels {
            return Err(LoadError::config(
                path,
                key,
                list.len(),
                "block lists must have one entry per block_out_channels",
            ));
        }
        if let Some(t) = list.iter().find(|t| !allowed.contains(&t.as_str())) {
            return Err(LoadError::config(path, key, t, &format!("supported: {}", allowed.join(", "))));
        }
    }
    Ok(())
}
