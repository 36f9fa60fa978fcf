//! Reading diffusers/transformers safetensors files into Burn tensors, by their own names.
//!
//! Modules take their tensors with [`Vb::get`] under dotted prefixes that mirror the Python module
//! tree (`down_blocks.0.resnets.1.conv1.weight`), so files load without renaming. Every tensor read is
//! recorded; [`Weights::finish`] fails when a file holds a tensor no module used, so a partial or
//! mismatched port cannot go unnoticed. Errors name the file and the key.

use burn::prelude::*;
use burn::tensor::DType;
use safetensors::{Dtype as StDtype, SafeTensors};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use super::load_error::{LoadError, decode_f32};

struct File {
    path: PathBuf,
    map: memmap2::Mmap,
}

/// The tensors of one component (one or more safetensors shards), placed on one device.
pub struct Weights {
    files: Vec<File>,
    /// Key -> index into `files`.
    index: BTreeMap<String, usize>,
    used: RefCell<BTreeSet<String>>,
    /// Names and shapes only (no data): loading checks names and shapes, tensors are 1-element.
    shapes_only: Option<(PathBuf, BTreeMap<String, Vec<usize>>)>,
    pub device: Device,
    /// Floating dtype the model computes in (F32 or F16).
    pub dtype: DType,
    /// LoRA updates added to the weights as they are read.
    merge: Option<super::lora::Merge>,
}

impl Weights {
    /// Opens safetensors files; pickle checkpoints are refused.
    pub fn open(paths: &[PathBuf], device: &Device, dtype: DType) -> Result<Self, LoadError> {
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for path in paths {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if matches!(ext, "bin" | "pt" | "pth" | "ckpt" | "pkl") {
                return Err(LoadError::File {
                    path: path.clone(),
                    message: "pickle checkpoints are not loaded (they can run code); convert to safetensors".into(),
                });
            }
            let file = std::fs::File::open(path)
                .map_err(|e| LoadError::File { path: path.clone(), message: e.to_string() })?;
            // SAFETY: the map is read-only; a file changed underneath would give wrong numbers, not UB
            // in our code (safetensors validates offsets against the length).
            let map = unsafe { memmap2::Mmap::map(&file) }
                .map_err(|e| LoadError::File { path: path.clone(), message: e.to_string() })?;
            let st = SafeTensors::deserialize(&map)
                .map_err(|e| LoadError::File { path: path.clone(), message: format!("not a safetensors file: {e}") })?;
            for name in st.names() {
                index.insert(name.to_string(), files.len());
            }
            drop(st);
            files.push(File { path: path.clone(), map });
        }
        Ok(Self {
            files,
            index,
            used: RefCell::new(BTreeSet::new()),
            shapes_only: None,
            device: device.clone(),
            dtype,
            merge: None,
        })
    }

    /// A stand-in for a checkpoint that only lists tensor names and shapes (`origin` names where
    /// the list came from). Building a model from it checks every name and shape against the
    /// config without the memory of real weights; the tensors it gives are placeholders of one
    /// element and must not be run.
    pub fn shapes_only(origin: &Path, shapes: BTreeMap<String, Vec<usize>>, device: &Device) -> Self {
        let index = shapes.keys().map(|k| (k.clone(), 0)).collect();
        Self {
            files: vec![],
            index,
            used: RefCell::new(BTreeSet::new()),
            shapes_only: Some((origin.to_path_buf(), shapes)),
            device: device.clone(),
            dtype: DType::F32,
            merge: None,
        }
    }

    /// The file a key would come from (the first file when the key is absent).
    fn path_of(&self, key: &str) -> &Path {
        if let Some((origin, _)) = &self.shapes_only {
            return origin;
        }
        let i = self.index.get(key).copied().unwrap_or(0);
        self.files.get(i).map(|f| f.path.as_path()).unwrap_or(Path::new("(no file)"))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Merges `loras`' updates of `component` into its weights as they are read (`rename`: the
    /// family's diffusers name of an original module name); an update that matches no weight
    /// of the component is an error naming it.
    pub fn with_loras(
        mut self,
        component: &str,
        loras: &[super::lora::LoraUse],
        rename: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, LoadError> {
        let merge = super::lora::Merge::resolve(loras, component, self.index.keys(), rename)?;
        self.merge = (!merge.is_empty()).then_some(merge);
        Ok(self)
    }

    /// Finds a key's bytes and hands (dtype, shape, bytes, file) to `decode`; marks it used.
    fn read<R>(
        &self,
        key: &str,
        decode: impl FnOnce(StDtype, &[u8]) -> Option<R>,
    ) -> Result<(R, Vec<usize>), LoadError> {
        let Some(&i) = self.index.get(key) else {
            return Err(LoadError::Missing { path: self.path_of(key).into(), key: key.into() });
        };
        let Some(file) = self.files.get(i) else {
            return Err(LoadError::File {
                path: self.path_of(key).into(),
                message: format!("`{key}`: names and shapes only, no data"),
            });
        };
        let st = SafeTensors::deserialize(&file.map)
            .map_err(|e| LoadError::File { path: file.path.clone(), message: e.to_string() })?;
        let view = st.tensor(key).map_err(|e| LoadError::File { path: file.path.clone(), message: e.to_string() })?;
        let Some(values) = decode(view.dtype(), view.data()) else {
            return Err(LoadError::Dtype {
                path: file.path.clone(),
                key: key.into(),
                dtype: format!("{:?}", view.dtype()),
            });
        };
        self.used.borrow_mut().insert(key.to_string());
        Ok((values, view.shape().to_vec()))
    }

    /// Reads one floating tensor as f32 values with its shape.
    pub fn read_f32(&self, key: &str) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
        let (mut values, shape) = self.read_f32_as_stored(key)?;
        if let Some(merge) = &self.merge {
            merge.apply(key, &shape, &mut values, self.path_of(key))?;
        }
        Ok((values, shape))
    }

    fn read_f32_as_stored(&self, key: &str) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
        self.read(key, decode_f32)
    }

    /// Reads an integer buffer (e.g. CLIP's `position_ids`).
    pub fn read_i64(&self, key: &str) -> Result<Vec<i64>, LoadError> {
        let (values, _) = self.read(key, |dtype, b| match dtype {
            StDtype::I64 => Some(b.as_chunks::<8>().0.iter().map(|c| i64::from_le_bytes(*c)).collect()),
            StDtype::I32 => Some(b.as_chunks::<4>().0.iter().map(|c| i32::from_le_bytes(*c) as i64).collect()),
            _ => None,
        })?;
        Ok(values)
    }

    /// For a shapes-only set: checks `key` has `shape`, marks it used and answers true (the
    /// caller then returns a placeholder). False for a set with real tensors.
    fn check_shape_only(&self, key: &str, shape: &[usize]) -> Result<bool, LoadError> {
        let Some((origin, shapes)) = &self.shapes_only else { return Ok(false) };
        let Some(found) = shapes.get(key) else {
            return Err(LoadError::Missing { path: origin.clone(), key: key.into() });
        };
        if found[..] != shape[..] {
            return Err(LoadError::Shape {
                path: origin.clone(),
                key: key.into(),
                found: found.clone(),
                expected: shape.to_vec(),
            });
        }
        self.used.borrow_mut().insert(key.to_string());
        Ok(true)
    }

    /// A tensor of exactly `shape`, in the compute dtype, on the device.
    pub fn tensor<const D: usize>(&self, key: &str, shape: [usize; D]) -> Result<Tensor<D>, LoadError> {
        self.tensor_in(key, shape, self.dtype)
    }

    /// A tensor of exactly `shape` in f32 whatever the compute dtype: for the parts a model keeps
    /// in full precision (diffusers' `_keep_in_fp32_modules`).
    pub fn tensor_f32<const D: usize>(&self, key: &str, shape: [usize; D]) -> Result<Tensor<D>, LoadError> {
        self.tensor_in(key, shape, DType::F32)
    }

    fn tensor_in<const D: usize>(&self, key: &str, shape: [usize; D], dtype: DType) -> Result<Tensor<D>, LoadError> {
        if self.check_shape_only(key, &shape)? {
            return Ok(Tensor::zeros([1; D], &self.device));
        }
        let (values, found) = self.read_f32(key)?;
        if found != shape {
            return Err(LoadError::Shape {
                path: self.path_of(key).into(),
                key: key.into(),
                found,
                expected: shape.to_vec(),
            });
        }
        let t = Tensor::<D>::from_data(TensorData::new(values, shape), &self.device);
        Ok(if dtype == DType::F32 { t } else { t.cast(dtype) })
    }

    /// A tensor of exactly `shape` kept in host memory as f32 (empty for a shapes-only set): for
    /// tables too large for one device buffer on some drivers, e.g. CLIP's token embeddings.
    pub fn host_f32(&self, key: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        if self.check_shape_only(key, shape)? {
            return Ok(Vec::new());
        }
        let (values, found) = self.read_f32(key)?;
        if found != shape {
            return Err(LoadError::Shape {
                path: self.path_of(key).into(),
                key: key.into(),
                found,
                expected: shape.to_vec(),
            });
        }
        Ok(values)
    }

    /// Fails when any tensor in the files was not read.
    pub fn finish(&self) -> Result<(), LoadError> {
        let used = self.used.borrow();
        let unused: Vec<&String> = self.index.keys().filter(|k| !used.contains(*k)).collect();
        if unused.is_empty() {
            return Ok(());
        }
        let examples = unused.iter().take(5).map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
        Err(LoadError::Unused { path: self.path_of(unused[0]).into(), count: unused.len(), examples })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The root scope.
    pub fn root(&self) -> Vb<'_> {
        Vb { weights: self, prefix: String::new() }
    }
}

/// A scope inside [`Weights`]: a dotted prefix, like a module path in PyTorch.
#[derive(Clone)]
pub struct Vb<'a> {
    pub weights: &'a Weights,
    prefix: String,
}

impl<'a> Vb<'a> {
    /// The scope of a child module.
    pub fn pp(&self, name: impl std::fmt::Display) -> Vb<'a> {
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        Vb { weights: self.weights, prefix }
    }

    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }

    pub fn get<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>, LoadError> {
        self.weights.tensor(&self.key(name), shape)
    }

    /// [`Weights::tensor_f32`] under this scope.
    pub fn get_f32<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>, LoadError> {
        self.weights.tensor_f32(&self.key(name), shape)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.weights.contains(&self.key(name))
    }

    pub fn device(&self) -> &Device {
        &self.weights.device
    }
}
