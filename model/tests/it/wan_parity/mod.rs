//! Wan 2.1 against diffusers and transformers on the tiny fixtures `scripts/wan_fixtures.py`
//! wrote (model/tests/fixtures/wan): the tokenizer, the UMT5 text encoder, the schedulers, the
//! transformer and the VAE block by block, whole pipelines from the same noise, and Wan 2.1
//! 1.3B's published names and shapes.

mod image_to_video;
mod pipeline;
mod schedulers;
mod text;
mod transformer;
mod vae;
