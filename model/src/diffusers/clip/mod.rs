//! CLIP: the text encoder (Stable Diffusion's conditioning), the vision encoder with projection
//! (Stable Video Diffusion's image conditioning) or without it (Wan 2.1 image-to-video's, with
//! transformers' image processor), the BPE tokenizer, and the whole CLIPModel with both
//! projections (visual search and CLIP scores).

pub mod image_processor;
pub mod model;
pub mod text;
pub mod tokenizer;
pub mod vision;
