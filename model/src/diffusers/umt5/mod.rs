//! UMT5: transformers' `UMT5EncoderModel` (Wan's text encoder) and its tokenizer, read from
//! `tokenizer/tokenizer.json` (the Hugging Face tokenizers format).

pub mod encoder;
pub mod tokenizer;
