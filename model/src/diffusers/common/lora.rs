//! LoRAs: low-rank updates of a model's weights, trained apart and merged into the weights at
//! load (`W + scale * alpha / rank * B A`, as diffusers' `fuse_lora` does), so a job with a LoRA
//! runs as fast as one without.
//!
//! Two namings are read, the ones LoRAs ship in:
//! - diffusers / PEFT: `unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight`
//!   and `...lora_B.weight` (`text_encoder.` and `transformer.` for those components), with
//!   `alpha / rank` from the file's `lora_adapter_metadata` (`lora_alpha`, `r`) when it has
//!   one, else 1 (diffusers' default for a file without it);
//! - kohya / ComfyUI: `lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight`,
//!   `...lora_up.weight` and `...alpha` (`lora_te_` for the text encoder): the module's dots
//!   became underscores, so a name is matched against the component's own weight names;
//! - the original model's module names under `diffusion_model.` (ComfyUI's Wan LoRAs:
//!   `diffusion_model.blocks.0.self_attn.q.lora_down.weight`, or `lora_A`/`lora_B`), which the
//!   family renames to diffusers' ([`Merge::resolve`]'s `rename`).
//!
//! ComfyUI's Wan LoRAs (lightx2v's distillations) also carry whole differences, read as
//! diffusers reads them: `MODULE.diff_b` adds to the module's bias, `head.head.diff` to the
//! output head's weight; the norms' differences (zeros in the files that ship them), other
//! weights' `.diff` and, in a file without a LoRA on `time_projection`, its differences are left
//! out, as diffusers leaves them.
//!
//! A LoRA entry that matches no weight of its component is an error naming it: a LoRA for
//! another model must not load as a silent no-op.

use super::load_error::{LoadError, decode_f32};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What an entry adds to a tensor, before the job's scale.
#[derive(Debug, Clone)]
enum Update {
    /// `up` [out, rank] times `down` [rank, in...], times `alpha / rank`.
    LowRank { down: Vec<f32>, down_shape: Vec<usize>, up: Vec<f32>, up_shape: Vec<usize>, alpha: Option<f32> },
    /// A whole difference, of the tensor's shape.
    Full { values: Vec<f32>, shape: Vec<usize> },
}

/// How an entry names the weight it updates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// The weight's own key (diffusers / PEFT naming).
    Key(String),
    /// The module's path with dots as underscores (kohya naming).
    Underscored(String),
    /// The module's path in the original model's code (ComfyUI's naming of Wan).
    Original(String),
    /// The bias of such a module (`MODULE.diff_b`).
    OriginalBias(String),
}

/// A LoRA file, read.
#[derive(Debug)]
pub struct Lora {
    pub path: PathBuf,
    /// SHA-256 of the file, hex (recorded with results).
    pub sha256: String,
    /// Component (`unet`, `text_encoder`, `transformer`) -> what each entry updates.
    updates: BTreeMap<String, Vec<(Target, Update)>>,
}

/// A LoRA and the scale a job applies it with.
#[derive(Debug, Clone)]
pub struct LoraUse {
    pub lora: Arc<Lora>,
    pub scale: f32,
}

impl Lora {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let fail = |message: String| LoadError::File { path: path.to_path_buf(), message };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let sha256 = sha256_hex(&bytes);
        let st = SafeTensors::deserialize(&bytes).map_err(|e| fail(format!("not a safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| fail(e.to_string()))?;
        let alpha_of = peft_alphas(header.metadata().as_ref());
        let read = |key: &str| -> Result<(Vec<f32>, Vec<usize>), LoadError> {
            let view = st.tensor(key).map_err(|e| fail(e.to_string()))?;
            let values = decode_f32(view.dtype(), view.data())
                .ok_or_else(|| fail(format!("`{key}` has dtype {:?}", view.dtype())))?;
            Ok((values, view.shape().to_vec()))
        };
        // kohya's and ComfyUI's per-module alpha (`MODULE.alpha`), when there is one.
        let alpha_of_module = |module: &str| -> Result<Option<f32>, LoadError> {
            let key = format!("{module}.alpha");
            match st.tensor(&key) {
                Ok(_) => Ok(read(&key)?.0.first().copied()),
                Err(_) => Ok(None),
            }
        };
        let mut updates: BTreeMap<String, Vec<(Target, Update)>> = BTreeMap::new();
        let mut names: Vec<&str> = st.names();
        names.sort();
        // diffusers keeps `time_projection`'s differences only beside a LoRA on it.
        let time_projection_lora = names.iter().any(|n| {
            n.starts_with("diffusion_model.time_projection") && (n.contains(".lora_down.") || n.contains(".lora_A."))
        });
        for name in names {
            let difference = name
                .strip_suffix(".diff_b")
                .map(|m| (m, true))
                .or_else(|| name.strip_suffix(".diff").map(|m| (m, false)));
            if let Some((module, bias)) = difference
                && let Some(module) = module.strip_prefix("diffusion_model.")
            {
                let norm = module.split('.').any(|part| part.starts_with("norm"));
                let time_projection = module.starts_with("time_projection") && !time_projection_lora;
                let target = match (bias, module) {
                    _ if norm || time_projection => continue,
                    (true, _) => Target::OriginalBias(module.to_string()),
                    (false, "head.head") => Target::Original(module.to_string()),
                    // diffusers applies no other weight's difference.
                    (false, _) => continue,
                };
                let (values, shape) = read(name)?;
                updates.entry("transformer".into()).or_default().push((target, Update::Full { values, shape }));
                continue;
            }
            let original =
                |module: &str| module.strip_prefix("diffusion_model.").map(|m| Target::Original(m.to_string()));
            let (component, target, up_name, alpha) = if let Some(module) = name.strip_suffix(".lora_A.weight")
                && let Some(target) = original(module)
            {
                ("transformer".to_string(), target, format!("{module}.lora_B.weight"), None)
            } else if let Some(module) = name.strip_suffix(".lora_down.weight")
                && let Some(target) = original(module)
            {
                let alpha = alpha_of_module(module)?;
                ("transformer".to_string(), target, format!("{module}.lora_up.weight"), alpha)
            } else if let Some(module) = name.strip_suffix(".lora_A.weight") {
                let (component, module) = module
                    .split_once('.')
                    .ok_or_else(|| fail(format!("`{name}` names no component (unet., text_encoder., transformer.)")))?;
                let alpha = alpha_of.get(component).copied();
                (
                    component.to_string(),
                    Target::Key(format!("{module}.weight")),
                    format!("{component}.{module}.lora_B.weight"),
                    alpha,
                )
            } else if let Some(module) = name.strip_suffix(".lora_down.weight") {
                let (component, rest) = if let Some(rest) = module.strip_prefix("lora_unet_") {
                    ("unet", rest)
                } else if let Some(rest) = module.strip_prefix("lora_te_") {
                    ("text_encoder", rest)
                } else if let Some(rest) = module.strip_prefix("lora_transformer_") {
                    ("transformer", rest)
                } else {
                    return Err(fail(format!("`{name}` names no component (lora_unet_, lora_te_, lora_transformer_)")));
                };
                let alpha = alpha_of_module(module)?;
                (
                    component.to_string(),
                    Target::Underscored(rest.to_string()),
                    format!("{module}.lora_up.weight"),
                    alpha,
                )
            } else if name.ends_with(".lora_B.weight") || name.ends_with(".lora_up.weight") || name.ends_with(".alpha")
            {
                continue;
            } else if name.ends_with(".diff") || name.ends_with(".diff_b") {
                return Err(fail(format!(
                    "`{name}` is a whole difference; those are read in the original Wan naming (`diffusion_model.MODULE.diff`) only"
                )));
            } else {
                return Err(fail(format!("`{name}` is not a LoRA weight (lora_A/lora_B or lora_down/lora_up)")));
            };
            let (down, down_shape) = read(name)?;
            let (up, up_shape) = read(&up_name).map_err(|_| fail(format!("`{name}` has no `{up_name}`")))?;
            let rank = down_shape.first().copied().unwrap_or(0);
            // `up` is [out, rank] (or [out, rank, 1, 1] for a convolution's update).
            if up_shape.get(1) != Some(&rank) || up_shape.iter().skip(2).any(|&d| d != 1) || down_shape.len() < 2 {
                return Err(fail(format!("`{name}` {down_shape:?} and `{up_name}` {up_shape:?} do not multiply")));
            }
            updates
                .entry(component)
                .or_default()
                .push((target, Update::LowRank { down, down_shape, up, up_shape, alpha }));
        }
        if updates.is_empty() {
            return Err(fail("holds no LoRA weights".into()));
        }
        Ok(Self { path: path.to_path_buf(), sha256, updates })
    }

    /// The file's name, as results record it.
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// The components it updates.
    pub fn components(&self) -> Vec<&str> {
        self.updates.keys().map(String::as_str).collect()
    }
}

/// diffusers' `lora_adapter_metadata` (JSON in the file's header, each component's PEFT config
/// under `COMPONENT.KEY`): each component's `lora_alpha`.
fn peft_alphas(metadata: Option<&HashMap<String, String>>) -> HashMap<String, f32> {
    let Some(text) = metadata.and_then(|m| m.get("lora_adapter_metadata")) else { return HashMap::new() };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return HashMap::new();
    };
    map.iter()
        .filter_map(|(key, value)| Some((key.strip_suffix(".lora_alpha")?.to_string(), value.as_f64()? as f32)))
        .collect()
}

/// The updates of the LoRAs of a job that fall on one component's weights, by weight key:
/// what [`super::weights::Weights`] adds to a weight as it reads it.
#[derive(Debug, Default)]
pub struct Merge {
    deltas: HashMap<String, Vec<(Update, f32)>>,
}

impl Merge {
    /// The updates of `loras` for `component`, each matched against the component's weight
    /// keys (an original module name first renamed by `rename`, the family's map to diffusers'
    /// names); an entry that matches none is an error naming it.
    pub fn resolve<'k>(
        loras: &[LoraUse],
        component: &str,
        keys: impl Iterator<Item = &'k String>,
        rename: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, LoadError> {
        let keys: Vec<&String> = keys.collect();
        let underscored: HashMap<String, &String> =
            keys.iter().filter_map(|k| k.strip_suffix(".weight").map(|m| (m.replace('.', "_"), *k))).collect();
        let mut merge = Merge::default();
        for used in loras {
            let Some(updates) = used.lora.updates.get(component) else { continue };
            for (target, update) in updates {
                let key = match target {
                    // PEFT names a module from where its adapter sat, which may be below the
                    // file's root (the text encoder's `encoder.` for `text_model.encoder.`).
                    Target::Key(key) => keys.iter().find(|k| **k == key).or_else(|| {
                        let mut below = keys.iter().filter(|k| k.ends_with(&format!(".{key}")));
                        below.next().filter(|_| below.next().is_none())
                    }),
                    Target::Underscored(name) => underscored.get(name),
                    Target::Original(module) => rename(module).and_then(|m| {
                        let key = format!("{m}.weight");
                        keys.iter().find(|k| ***k == key)
                    }),
                    Target::OriginalBias(module) => rename(module).and_then(|m| {
                        let key = format!("{m}.bias");
                        keys.iter().find(|k| ***k == key)
                    }),
                }
                .map(|k| (*k).clone());
                let Some(key) = key else {
                    let name = match target {
                        Target::Key(key) => key.clone(),
                        Target::Underscored(name) | Target::Original(name) => name.clone(),
                        Target::OriginalBias(name) => format!("{name}.diff_b"),
                    };
                    return Err(LoadError::File {
                        path: used.lora.path.clone(),
                        message: format!(
                            "`{name}` matches no weight of the model's {component}: a LoRA for another model?"
                        ),
                    });
                };
                merge.deltas.entry(key).or_default().push((update.clone(), used.scale));
            }
        }
        Ok(merge)
    }

    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }

    /// Adds the updates of tensor `key` (of `shape`) to its values.
    pub fn apply(&self, key: &str, shape: &[usize], values: &mut [f32], path: &Path) -> Result<(), LoadError> {
        let Some(deltas) = self.deltas.get(key) else { return Ok(()) };
        let out = shape.first().copied().unwrap_or(0);
        let inner: usize = shape.iter().skip(1).product();
        let mismatch = |found: Vec<usize>, expected: Vec<usize>| LoadError::Shape {
            path: path.to_path_buf(),
            key: key.into(),
            found,
            expected,
        };
        for (update, scale) in deltas {
            let (down, down_shape, up, up_shape, alpha) = match update {
                Update::Full { values: diff, shape: diff_shape } => {
                    if diff_shape.as_slice() != shape {
                        return Err(mismatch(diff_shape.clone(), shape.to_vec()));
                    }
                    for (w, d) in values.iter_mut().zip(diff) {
                        *w += scale * d;
                    }
                    continue;
                }
                Update::LowRank { down, down_shape, up, up_shape, alpha } => (down, down_shape, up, up_shape, alpha),
            };
            let rank = down_shape[0];
            let down_inner: usize = down_shape.iter().skip(1).product();
            if up_shape[0] != out || down_inner != inner {
                return Err(mismatch(vec![up_shape[0], down_inner], vec![out, inner]));
            }
            let factor = scale * alpha.map_or(1.0, |a| a / rank as f32);
            for o in 0..out {
                let row = &mut values[o * inner..(o + 1) * inner];
                for r in 0..rank {
                    let u = up[o * rank + r] * factor;
                    if u == 0.0 {
                        continue;
                    }
                    let down = &down[r * inner..(r + 1) * inner];
                    for (w, d) in row.iter_mut().zip(down) {
                        *w += u * d;
                    }
                }
            }
        }
        Ok(())
    }
}

/// SHA-256 of `bytes`, hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
