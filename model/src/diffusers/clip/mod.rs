//! CLIP: the text encoder (Stable Diffusion's conditioning), the vision encoder with projection
//! (Stable Video Diffusion's image conditioning) and the BPE tokenizer.

pub mod text;
pub mod tokenizer;
pub mod vision;
