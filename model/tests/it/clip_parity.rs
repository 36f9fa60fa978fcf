//! transformers' `CLIPModel` in Burn against transformers itself, on the tiny random fixture
//! made by scripts/clip_fixtures.py: the tokenizer's ids, every text layer, both projections and
//! the logits within 1e-4; and openai/clip-vit-large-patch14's names and shapes load unchanged.

use crate::common;

use common::*;
use model::diffusers::clip::model::{ClipModel, ClipModelConfig, normalized};
use model::diffusers::common::weights::Weights;
use std::collections::BTreeMap;

#[test]
fn clip_matches_transformers() {
    let folder = fixtures_root().join("clip/clip1");
    let prompts: Vec<String> = serde_json::from_value(meta(&folder)["prompts"].clone()).unwrap();
    for (label, device) in devices() {
        let model = ClipModel::load_dir(&folder, &device).unwrap_or_else(|e| panic!("{e}"));
        let expected = Expected::open(&folder, &device);
        // The tokenizer gives transformers' ids.
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let ids = model.tokenize(&refs).unwrap();
        let want_ids: Vec<u32> = expected.weights.read_i64("ids").unwrap().into_iter().map(|i| i as u32).collect();
        assert_eq!(ids.concat(), want_ids, "{label}: token ids");

        let text = model.text_features(&ids, &device);
        assert_close(text.clone(), &expected.values("text_features"), 1e-4, &format!("{label}: text_features"));
        assert_close(normalized(text.clone()), &expected.values("text_embeds"), 1e-4, &format!("{label}: text_embeds"));
        let pixels = expected.t::<4>("pixel_values");
        let image = model.image_features(pixels);
        assert_close(image.clone(), &expected.values("image_features"), 1e-4, &format!("{label}: image_features"));
        let logits = normalized(image).matmul(normalized(text).transpose()) * model.logit_scale.exp();
        assert_close(logits, &expected.values("logits_per_image"), 1e-4, &format!("{label}: logits_per_image"));
    }
}

#[test]
fn clip_vit_large_names_and_shapes_load_unchanged() {
    let root = fixtures_root().join("clip/clip-vit-large-patch14-shapes");
    let shapes: BTreeMap<String, Vec<usize>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("shapes.json")).unwrap()).unwrap();
    let path = root.join("config.json");
    let config = ClipModelConfig::read(&path).unwrap();
    assert_eq!(
        (config.projection_dim, config.vision.image_size, config.vision.patch_size, config.eos_token_id),
        (768, 224, 14, 2)
    );
    let weights = Weights::shapes_only(&root, shapes.clone(), &cpu());
    ClipModel::load(&weights, &config, &path).unwrap_or_else(|e| panic!("{e}"));
    let params: usize = shapes.values().map(|s| s.iter().product::<usize>()).sum();
    assert!(params > 427_000_000 && params < 429_000_000, "{params}");
}
