//! What a sampler made before the decoder turns it into pixels. Kept with the job while it is
//! decoded, so a decode that fails (out of memory at the very end of a long generation, the
//! known pain of video models) can be run again, in smaller pieces, without sampling again.
//!
//! Stored as safetensors (one F32 tensor named `latents`, the notes as its metadata), so a kept
//! file can also be read by any safetensors reader.

use std::collections::{BTreeMap, HashMap};

/// The tensor's name in the file.
const NAME: &str = "latents";

/// Sampled latents with what their decoder needs besides.
#[derive(Debug, Clone, PartialEq)]
pub struct Latents {
    pub shape: Vec<usize>,
    /// Row-major values, `shape`'s product of them.
    pub values: Vec<f32>,
    /// What the decode needs that the job's parameters do not say (how long sampling took, the
    /// size asked for), as text.
    pub notes: BTreeMap<String, String>,
}

impl Latents {
    pub fn new(shape: Vec<usize>, values: Vec<f32>) -> Result<Self, String> {
        let expected: usize = shape.iter().product();
        if expected != values.len() {
            return Err(format!("latents of shape {shape:?} need {expected} values, not {}", values.len()));
        }
        Ok(Self { shape, values, notes: BTreeMap::new() })
    }

    pub fn with_note(mut self, key: &str, value: impl ToString) -> Self {
        self.notes.insert(key.into(), value.to_string());
        self
    }

    /// A note read as a number; `None` when absent or not a number.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.notes.get(key)?.parse().ok()
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let bytes: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, self.shape.clone(), &bytes)
            .map_err(|e| format!("latents: {e}"))?;
        let notes: HashMap<String, String> = self.notes.clone().into_iter().collect();
        safetensors::tensor::serialize([(NAME, view)], Some(notes)).map_err(|e| format!("latents: {e}"))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let unreadable = |e: &dyn std::fmt::Display| format!("the kept latents cannot be read: {e}");
        let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| unreadable(&e))?;
        let tensors = safetensors::SafeTensors::deserialize(bytes).map_err(|e| unreadable(&e))?;
        let tensor = tensors.tensor(NAME).map_err(|e| unreadable(&e))?;
        if tensor.dtype() != safetensors::Dtype::F32 {
            return Err(unreadable(&format!("{:?} values, not F32", tensor.dtype())));
        }
        let values = tensor.data().as_chunks::<4>().0.iter().map(|b| f32::from_le_bytes(*b)).collect();
        let notes = metadata.metadata().clone().unwrap_or_default().into_iter().collect();
        Ok(Self { shape: tensor.shape().to_vec(), values, notes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_latents() {
        let latents = Latents::new(vec![1, 2, 3], (0..6).map(|v| v as f32 * 0.5 - 1.0).collect())
            .unwrap()
            .with_note("sampling_s", 12.5);
        let back = Latents::from_bytes(&latents.to_bytes().unwrap()).unwrap();
        assert_eq!(back, latents);
        assert_eq!(back.number("sampling_s"), Some(12.5));
        assert!(Latents::new(vec![2, 2], vec![0.0; 3]).is_err());
        assert!(Latents::from_bytes(b"not a safetensors file").unwrap_err().contains("cannot be read"));
    }
}
