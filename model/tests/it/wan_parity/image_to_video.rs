//! Wan 2.2 image to video (the A14B layout: two experts switched at `boundary_ratio`, 36 input
//! channels, no image encoder) against diffusers' `WanImageToVideoPipeline` on the tiny fixture
//! scripts/wan_i2v_fixtures.py wrote: the condition `prepare_latents` builds, whole clips from
//! the same noise with and without a last picture (one resized), a LoRA loaded into both
//! experts, the low-memory mode (one expert at a time), and bad requests. The fixture's weights
//! are scaled so that simulated bugs score far below the bound (its `expected.json`, `bugs`).

use super::transformer::fixture;
use crate::common::{Expected, assert_pipelines, cpu, devices, max_diff, meta, values};
use burn::tensor::DType;
use model::diffusers::common::lora::{Lora, LoraUse};
use model::diffusers::common::video::MemoryMode;
use model::diffusers::parity;
use model::diffusers::wan::pipeline::{Wan, WanOptions, WanRequest, WanTask};
use model::generate::GenerateError;
use std::sync::Arc;

const NAME: &str = "wan-i2v1";

fn load(memory: MemoryMode, loras: Vec<LoraUse>) -> Wan {
    let device = cpu();
    let options = WanOptions::on(&device, DType::F32, memory).with_loras(loras);
    Wan::load(&fixture(NAME), &device, DType::F32, options).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn clips_match_diffusers_with_and_without_a_last_picture() {
    for (label, device) in devices() {
        let results = parity::run_wan(&fixture(NAME), &device, DType::F32, MemoryMode::Resident)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(results.len(), 2);
        assert_pipelines(results, 40.0, &format!("{NAME} on {label}"));
    }
    // The simulated bugs the fixture was tuned against stay far below the bound.
    let m = meta(&fixture(NAME));
    for bug in m["bugs"].as_array().unwrap() {
        assert!(bug["psnr_db"].as_f64().unwrap() < 37.0, "{bug}");
    }
}

#[test]
fn the_condition_is_built_as_diffusers_builds_it() {
    let device = cpu();
    let wan = load(MemoryMode::Resident, Vec::new());
    assert_eq!((wan.task, wan.boundary), (WanTask::ImageToVideo, Some(900.0)));
    let expected = Expected::open(&fixture(NAME), &device);
    for (i, (req, _)) in parity::wan_runs(&fixture(NAME), &device).unwrap().into_iter().enumerate() {
        let got = values(wan.image_condition(&req).unwrap().expect("an image-to-video condition"));
        let d = max_diff(&got, &expected.values(&format!("pipeline.{i}.condition")), "condition");
        assert!(d < 1e-4, "run {i}: the condition is {d} off");
    }
}

#[test]
fn one_expert_at_a_time_gives_the_same_clip() {
    let device = cpu();
    let (req, want) = parity::wan_runs(&fixture(NAME), &device).unwrap().remove(0);
    let low = load(MemoryMode::Low, Vec::new());
    let got = low.generate(&req, &mut |_| {}, &|| false).unwrap().frames.concat();
    assert!(parity::psnr(&got, &want) >= 40.0);
}

/// Block swap: blocks kept in host memory and copied over for each pass give the same clip
/// (here the host is the device itself; on a GPU the copies cross to it).
#[test]
fn block_swap_gives_the_same_clip() {
    let device = cpu();
    let (req, _) = parity::wan_runs(&fixture(NAME), &device).unwrap().remove(0);
    let resident =
        load(MemoryMode::Resident, Vec::new()).generate(&req, &mut |_| {}, &|| false).unwrap().frames.concat();
    for keep in [0, 1] {
        let options =
            WanOptions { gpu_blocks: Some(keep), ..WanOptions::on(&device, DType::F32, MemoryMode::Resident) };
        let wan = Wan::load(&fixture(NAME), &device, DType::F32, options).unwrap();
        let got = wan.generate(&req, &mut |_| {}, &|| false).unwrap().frames.concat();
        assert_eq!(got, resident, "{keep} blocks on the device");
    }
}

/// A PEFT LoRA saved by diffusers, loaded into both experts (`load_into_transformer_2`) and
/// fused at 0.9: the frames diffusers makes; without it, far off.
#[test]
fn a_lora_merges_into_both_experts() {
    let device = cpu();
    let m = meta(&fixture(NAME));
    let lora = Arc::new(Lora::read(&fixture(NAME).join("lora.safetensors")).unwrap());
    let scale = m["lora"]["scale"].as_f64().unwrap() as f32;
    let wan = load(MemoryMode::Resident, vec![LoraUse { lora, scale }]);
    let (req, _) = parity::wan_runs(&fixture(NAME), &device).unwrap().remove(0);
    let got = wan.generate(&req, &mut |_| {}, &|| false).unwrap().frames.concat();
    let want = Expected::open(&fixture(NAME), &device).values("lora.0.frames");
    let db = parity::psnr(&got, &want);
    assert!(db >= 40.0, "with the LoRA: {db:.1} dB");
    let without = m["lora"]["psnr_without_db"].as_f64().unwrap();
    assert!(without < 37.0, "the LoRA dropped scores {without} dB");
}

#[test]
fn image_requests_are_checked() {
    let device = cpu();
    let wan = load(MemoryMode::Resident, Vec::new());
    let (req, _) = parity::wan_runs(&fixture(NAME), &device).unwrap().remove(1);
    for (bad, needle) in [
        (WanRequest { image: None, last_image: None, ..req.clone() }, "needs a picture"),
        (WanRequest { guidance_2: Some(f32::INFINITY), ..req.clone() }, "guidance 2"),
    ] {
        match wan.generate(&bad, &mut |_| {}, &|| false) {
            Err(GenerateError::InvalidRequest(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{needle}: {other:?}"),
        }
    }
    // A one-frame clip is the picture alone.
    let one = WanRequest { frames: 1, last_image: None, steps: 1, noise: None, ..req.clone() };
    assert_eq!(wan.generate(&one, &mut |_| {}, &|| false).unwrap().frames.len(), 1);
    // A text-to-video folder takes no picture, nor a second guidance.
    let t2v =
        Wan::load(&fixture("wan1"), &device, DType::F32, WanOptions::on(&device, DType::F32, MemoryMode::Resident))
            .unwrap();
    let mut text = WanRequest::new("a cat");
    (text.width, text.height, text.frames, text.steps) = (32, 32, 5, 1);
    for (bad, needle) in [
        (WanRequest { image: req.image.clone(), ..text.clone() }, "takes no picture"),
        (WanRequest { guidance_2: Some(3.0), ..text.clone() }, "two-expert"),
    ] {
        match t2v.generate(&bad, &mut |_| {}, &|| false) {
            Err(GenerateError::InvalidRequest(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{needle}: {other:?}"),
        }
    }
}

#[test]
fn folders_the_port_does_not_run_are_refused_by_name() {
    let device = cpu();
    let options = WanOptions::on(&device, DType::F32, MemoryMode::Resident);
    let root = std::env::temp_dir().join(format!("wan-i2v-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    crate::common::copy_dir(&fixture(NAME), &root);
    let index_path = root.join("model_index.json");
    let index = std::fs::read_to_string(&index_path).unwrap();
    for (edit, needle) in [
        (("\"expand_timesteps\": false", "\"expand_timesteps\": true"), "expand_timesteps"),
        (
            (
                "\"transformer_2\": [\n    \"diffusers\",\n    \"WanTransformer3DModel\"\n  ]",
                "\"transformer_2\": [null, null]",
            ),
            "transformer_2",
        ),
    ] {
        assert!(index.contains(edit.0), "{index}");
        std::fs::write(&index_path, index.replace(edit.0, edit.1)).unwrap();
        let err = Wan::load(&root, &device, DType::F32, options.clone()).err().expect("refused").to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Wan 2.2 I2V A14B's experts without their weights (`wan2.2-i2v-a14b-shapes/`: the published
/// configs and every name and shape diffusers gives an expert): each loads unchanged, with the
/// 36 input channels the image condition fills, and has 14.3 billion parameters.
#[test]
fn a14b_expert_names_and_shapes_load_unchanged() {
    use model::diffusers::common::weights::Weights;
    use model::diffusers::wan::transformer_wan::{WanTransformer3DModel, WanTransformerConfig};
    use std::collections::BTreeMap;
    let root = fixture("wan2.2-i2v-a14b-shapes");
    let all: BTreeMap<String, BTreeMap<String, Vec<usize>>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("shapes.json")).unwrap()).unwrap();
    for expert in ["transformer", "transformer_2"] {
        let config = WanTransformerConfig::read(&root.join(expert).join("config.json")).unwrap();
        assert_eq!(
            (config.inner_dim(), config.num_layers, config.in_channels, config.out_channels()),
            (5120, 40, 36, 16)
        );
        let weights = Weights::shapes_only(&root.join(expert), all["transformer"].clone(), &cpu());
        WanTransformer3DModel::load(&weights.root(), &config).unwrap_or_else(|e| panic!("{expert}: {e}"));
        weights.finish().unwrap_or_else(|e| panic!("{expert}: {e}"));
    }
    let count: usize = all["transformer"].values().map(|s| s.iter().product::<usize>()).sum();
    assert_eq!(count, 14_288_901_184);
    let index = meta_of(&root.join("model_index.json"));
    assert_eq!(
        (index["_class_name"].as_str(), index["boundary_ratio"].as_f64()),
        (Some(Wan::IMAGE_PIPELINE_CLASS), Some(0.9))
    );
}

fn meta_of(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Wan 2.1 image to video (`wan-i2v21`: one transformer with image cross-attention, a CLIP
/// image encoder and its processor) and its first-last-frame model (`wan-flf21`: position
/// embeddings over both pictures' tokens) against diffusers: the image processor's pixels, the
/// encoder's penultimate states, whole clips; and the last frame each requires or refuses.
#[test]
fn wan_2_1_image_models_match_diffusers() {
    use model::diffusers::clip::image_processor::ClipImageProcessor;
    let device = cpu();
    for name in ["wan-i2v21", "wan-flf21"] {
        let folder = fixture(name);
        let wan = Wan::load(&folder, &device, DType::F32, WanOptions::on(&device, DType::F32, MemoryMode::Resident))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = Expected::open(&folder, &device);
        let processor = ClipImageProcessor::read(&folder.join("image_processor/preprocessor_config.json")).unwrap();
        for (i, (req, want)) in parity::wan_runs(&folder, &device).unwrap().into_iter().enumerate() {
            let pixels: Vec<f32> = std::iter::once(req.image.as_ref().unwrap())
                .chain(req.last_image.as_ref())
                .flat_map(|p| processor.preprocess(p).data)
                .collect();
            let d = max_diff(&pixels, &expected.values(&format!("pipeline.{i}.clip_pixels")), "pixels");
            assert!(d < 1e-5, "{name}: the image processor's pixels are {d} off");
            let tokens = values(wan.image_tokens(&req).unwrap().expect("image tokens"));
            let d = max_diff(&tokens, &expected.values(&format!("pipeline.{i}.image_embeds")), "image tokens");
            assert!(d < 1e-4, "{name}: the image encoder's states are {d} off");
            let got = wan.generate(&req, &mut |_| {}, &|| false).unwrap().frames.concat();
            let db = parity::psnr(&got, &want);
            eprintln!("{name} run {i}: PSNR {db:.1} dB against diffusers");
            assert!(db >= 40.0, "{name} run {i}: {db:.1} dB");
            // The last frame: the first-last-frame model needs one, the other takes none.
            let flipped = WanRequest {
                last_image: match req.last_image {
                    Some(_) => None,
                    None => req.image.clone(),
                },
                ..req.clone()
            };
            match wan.generate(&flipped, &mut |_| {}, &|| false) {
                Err(GenerateError::InvalidRequest(m)) => assert!(m.contains("last frame"), "{name}: {m}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        for bug in meta(&folder)["bugs"].as_array().unwrap() {
            assert!(bug["psnr_db"].as_f64().unwrap() < 37.0, "{name}: {bug}");
        }
    }
}

/// Wan 2.1 I2V 14B without its weights (`wan2.1-i2v-14b-shapes/`: the published configs, every
/// name and shape of the transformer with its image cross-attention and of the CLIP ViT-H image
/// encoder): both load unchanged.
#[test]
fn wan_2_1_i2v_14b_names_and_shapes_load_unchanged() {
    use model::diffusers::clip::vision::{ClipVisionConfig, ClipVisionModelWithProjection};
    use model::diffusers::common::weights::Weights;
    use model::diffusers::wan::transformer_wan::{WanTransformer3DModel, WanTransformerConfig};
    use std::collections::BTreeMap;
    let root = fixture("wan2.1-i2v-14b-shapes");
    let all: BTreeMap<String, BTreeMap<String, Vec<usize>>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("shapes.json")).unwrap()).unwrap();
    let count = |part: &str| all[part].values().map(|s| s.iter().product::<usize>()).sum::<usize>();

    let config = WanTransformerConfig::read(&root.join("transformer/config.json")).unwrap();
    let weights = Weights::shapes_only(&root.join("transformer"), all["transformer"].clone(), &cpu());
    let transformer = WanTransformer3DModel::load(&weights.root(), &config).unwrap_or_else(|e| panic!("{e}"));
    weights.finish().unwrap_or_else(|e| panic!("{e}"));
    assert!(transformer.image_embedder.is_some());
    assert_eq!(count("transformer"), 16_394_878_784);

    let path = root.join("image_encoder/config.json");
    let config = ClipVisionConfig::read(&path).unwrap();
    let weights = Weights::shapes_only(&root.join("image_encoder"), all["image_encoder"].clone(), &cpu());
    ClipVisionModelWithProjection::load_without_projection(&weights, &config, &path).unwrap_or_else(|e| panic!("{e}"));
    weights.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count("image_encoder"), 630_766_080);
}
