//! The PyTorch layers diffusers models are made of, loaded under PyTorch's parameter names.

use crate::diffusers::common::weights::{LoadError, Vb};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

/// `torch.nn.Linear`: `weight` [out, in] (kept as stored, multiplied transposed), optional `bias`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// [in, out], transposed once at load.
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
}

impl Linear {
    pub fn load(vb: &Vb, inp: usize, out: usize, bias: bool) -> Result<Self, LoadError> {
        Ok(Self {
            weight: vb.get("weight", [out, inp])?.transpose(),
            bias: if bias { Some(vb.get("bias", [out])?) } else { None },
        })
    }

    /// A copy on `device` (block swap moves layers between the host and the GPU).
    pub fn to_device(&self, device: &Device) -> Self {
        Self { weight: self.weight.clone().to_device(device), bias: self.bias.clone().map(|b| b.to_device(device)) }
    }

    /// From a PyTorch-layout `weight` [out, in] and optional `bias` [out] already loaded.
    pub fn from_tensors(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        Self { weight: weight.transpose(), bias }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let w = self.weight.clone().unsqueeze::<D>();
        let y = x.matmul(w);
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze::<D>(),
            None => y,
        }
    }
}

/// `torch.nn.Conv2d` with square kernels, symmetric padding and groups of 1.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    pub fn load(
        vb: &Vb,
        inp: usize,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            weight: vb.get("weight", [out, inp, kernel, kernel])?,
            bias: Some(vb.get("bias", [out])?),
            stride,
            padding,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let options = ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1);
        conv2d(x, self.weight.clone(), self.bias.clone(), options)
    }

    /// With explicit (top, bottom, left, right) zero padding instead of the symmetric one.
    pub fn forward_padded(&self, x: Tensor<4>, pad: [(usize, usize); 2]) -> Tensor<4> {
        let options = ConvOptions::new_with_padding([self.stride; 2], pad, [1, 1], 1);
        conv2d(x, self.weight.clone(), self.bias.clone(), options)
    }
}

/// `torch.nn.GroupNorm` with affine parameters, computed in f32.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor<1>,
    bias: Tensor<1>,
    groups: usize,
    eps: f64,
}

impl GroupNorm {
    pub fn load(vb: &Vb, groups: usize, channels: usize, eps: f64) -> Result<Self, LoadError> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(LoadError::config(
                std::path::Path::new(&vb.key("")),
                "norm_num_groups",
                groups,
                &format!("{channels} channels do not split into {groups} groups"),
            ));
        }
        Ok(Self { weight: vb.get("weight", [channels])?, bias: vb.get("bias", [channels])?, groups, eps })
    }

    /// Normalises [B, C, ...] over groups of channels and everything after the channel dim.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let dtype = x.dtype();
        let (b, c) = (dims[0], dims[1]);
        let rest: usize = dims[2..].iter().product();
        let x = x.cast(DType::F32).reshape([b, self.groups, (c / self.groups) * rest]);
        let (var, mean) = x.clone().var_mean_bias(2);
        let x = (x - mean) / (var + self.eps).sqrt();
        let x = x.reshape([b, c, rest]);
        let w = self.weight.clone().cast(DType::F32).reshape([1, c, 1]);
        let bias = self.bias.clone().cast(DType::F32).reshape([1, c, 1]);
        (x * w + bias).reshape(dims).cast(dtype)
    }
}

/// `torch.nn.LayerNorm` over the last dimension, computed in f32.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
}

impl LayerNorm {
    pub fn load(vb: &Vb, dim: usize, eps: f64) -> Result<Self, LoadError> {
        Ok(Self { weight: vb.get("weight", [dim])?, bias: vb.get("bias", [dim])?, eps })
    }

    /// A copy on `device`.
    pub fn to_device(&self, device: &Device) -> Self {
        Self { weight: self.weight.clone().to_device(device), bias: self.bias.clone().to_device(device), eps: self.eps }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let x = (x - mean) / (var + self.eps).sqrt();
        let w = self.weight.clone().cast(DType::F32).unsqueeze::<D>();
        let b = self.bias.clone().cast(DType::F32).unsqueeze::<D>();
        (x * w + b).cast(dtype)
    }
}

/// An RMS norm over the last dimension with a weight and no bias (`torch.nn.RMSNorm`, T5's
/// `T5LayerNorm`), computed in f32.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    /// In f32.
    weight: Tensor<1>,
    eps: f64,
}

impl RmsNorm {
    pub fn load(vb: &Vb, dim: usize, eps: f64) -> Result<Self, LoadError> {
        Ok(Self { weight: vb.get_f32("weight", [dim])?, eps })
    }

    /// A copy on `device`.
    pub fn to_device(&self, device: &Device) -> Self {
        Self { weight: self.weight.clone().to_device(device), eps: self.eps }
    }

    /// Normalised in f32, returned in `dtype`.
    pub fn forward_to<const D: usize>(&self, x: Tensor<D>, dtype: DType) -> Tensor<D> {
        let x = x.cast(DType::F32);
        let rms = (x.clone().powi_scalar(2).mean_dim(D - 1) + self.eps).sqrt();
        (x / rms * self.weight.clone().unsqueeze::<D>()).cast(dtype)
    }

    /// Normalised in f32, returned in the input's dtype.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        self.forward_to(x, dtype)
    }
}

/// `torch.nn.Embedding`.
#[derive(Debug, Clone)]
pub struct Embedding {
    pub weight: Tensor<2>,
}

impl Embedding {
    pub fn load(vb: &Vb, count: usize, dim: usize) -> Result<Self, LoadError> {
        Ok(Self { weight: vb.get("weight", [count, dim])? })
    }

    /// [B, T] ids -> [B, T, dim].
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        burn::tensor::module::embedding(self.weight.clone(), ids)
    }
}

/// Activation functions named as in diffusers/transformers configs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Silu,
    Gelu,
    GeluTanh,
    QuickGelu,
}

impl Activation {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "silu" | "swish" => Activation::Silu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu-approximate" => Activation::GeluTanh,
            "quick_gelu" => Activation::QuickGelu,
            _ => return None,
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        use burn::tensor::activation as act;
        match self {
            Activation::Silu => act::silu(x),
            Activation::Gelu => act::gelu(x),
            Activation::GeluTanh => act::gelu_approximate(x),
            Activation::QuickGelu => x.clone() * act::sigmoid(x * 1.702),
        }
    }
}
