//! The UMT5 tokenizer and text encoder against transformers (`T5TokenizerFast`,
//! `UMT5EncoderModel`) on the wan fixtures, diffusers' Wan prompt cleaning, umt5-xxl's published
//! names and shapes, and the errors bad files give.

use crate::common::{self, Expected, assert_close, cpu, devices};
use burn::tensor::DType;
use model::diffusers::common::weights::Weights;
use model::diffusers::umt5::encoder::{UMT5Config, UMT5EncoderModel, relative_position_bucket};
use model::diffusers::umt5::tokenizer::{T5Tokenizer, prompt_clean};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 2] = ["wan1", "wan2"];
const TOL: f32 = 1e-4;
/// F16 and BF16 against transformers' f32 (outputs are of order one; flex gives 5e-3 and 6e-2).
const F16_TOL: f32 = 0.02;
const BF16_TOL: f32 = 0.15;

fn fixture(name: &str) -> PathBuf {
    common::fixtures_root().join("wan").join(name)
}

/// The text encoder's safetensors file (wan2 holds the fp16 variant only).
fn text_encoder_file(folder: &Path) -> PathBuf {
    let dir = folder.join("text_encoder");
    ["model.safetensors", "model.fp16.safetensors"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{}: no text encoder weights", dir.display()))
}

fn ids(expected: &Expected, key: &str) -> Vec<u32> {
    expected.weights.read_i64(key).unwrap_or_else(|e| panic!("{e}")).into_iter().map(|v| v as u32).collect()
}

/// A scratch folder for files made up by a test, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidplay-umt5-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn tokenizer_matches_transformers() {
    for name in FIXTURES {
        let folder = fixture(name);
        let tokenizer =
            T5Tokenizer::from_file(&folder.join("tokenizer/tokenizer.json")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tokenizer.pad_id(), 0, "{name}: <pad>");
        let meta = common::meta(&folder);
        let cases = meta["tokenizer"].as_array().expect("tokenizer cases");
        assert!(cases.len() >= 7, "{name}: {} cases", cases.len());
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            match case["max_length"].as_u64() {
                None => {
                    let got = tokenizer.encode(text, 512).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(got, want, "{name}: {text:?}");
                }
                Some(max_length) => {
                    // Padded to max_length by transformers; the mask says how much is the text.
                    let mask: Vec<u64> =
                        case["attention_mask"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
                    let len = mask.iter().filter(|&&m| m == 1).count();
                    let got = tokenizer.encode(text, max_length as usize).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(got.len(), max_length as usize, "{name}: the long text is truncated");
                    assert_eq!(got[..], want[..len], "{name}: truncated ids");
                    assert_eq!(got.last(), Some(&1), "{name}: </s> stays last");
                    assert!(want[len..].iter().all(|&id| id == tokenizer.pad_id()), "{name}: padding");
                }
            }
        }
        // The encoder fixture's ids are the first text's.
        let expected = Expected::open(&folder, &cpu());
        let first = cases[0]["text"].as_str().unwrap();
        assert_eq!(
            tokenizer.encode(first, 512).unwrap(),
            ids(&expected, "text_encoder.input_ids"),
            "{name}: encoder ids"
        );
        // Short limits keep `</s>`.
        assert_eq!(tokenizer.encode(first, 4).unwrap(), [5, 25, 8, 1], "{name}: max_length 4");
        assert_eq!(tokenizer.encode(first, 1).unwrap(), [1], "{name}: max_length 1");
    }
}

#[test]
fn prompt_clean_matches_diffusers() {
    // Outputs of diffusers' `prompt_clean` (without ftfy).
    let cases = [
        ("  a  cat\n\tsits &amp;amp; waits  ", "a cat sits & waits"),
        ("caf&eacute; &lt;b&gt; &#233;&#xE9; &copy 2024", "café <b> éé © 2024"),
        ("&quot;quoted&quot; &hellip; &notit; &ampx", "\"quoted\" … ¬it; &x"),
        ("x\u{3000}y\u{1f}z\u{a0}w", "x y z w"),
        ("&#0;&#x80;&#1;&#xD800;&#99999999999;", "\u{fffd}€\u{fffd}\u{fffd}"),
        ("&bogus; & &#; &#x;", "&bogus; & &#; &#x;"),
        ("&amp;nbsp;end", "end"),
        ("", ""),
    ];
    for (text, want) in cases {
        assert_eq!(prompt_clean(text), want, "{text:?}");
    }
}

#[test]
fn relative_position_buckets_match_transformers() {
    // Where transformers' buckets change, for keys after (positive) the query: (offset, bucket).
    // Keys before use the same offsets with the first half of the buckets.
    type Changes = &'static [(i64, usize)];
    let tables: [(usize, usize, Changes); 3] = [
        (
            32,
            128,
            &[
                (0, 0),
                (1, 17),
                (2, 18),
                (3, 19),
                (4, 20),
                (5, 21),
                (6, 22),
                (7, 23),
                (8, 24),
                (12, 25),
                (16, 26),
                (23, 27),
                (32, 28),
                (46, 29),
                (64, 30),
                (91, 31),
            ],
        ),
        (8, 16, &[(0, 0), (1, 5), (2, 6), (6, 7)]),
        (16, 20, &[(0, 0), (1, 9), (2, 10), (3, 11), (4, 12), (6, 13), (9, 14), (14, 15)]),
    ];
    for (buckets, max_distance, changes) in tables {
        let half = buckets / 2;
        let mut want = 0;
        for offset in 0..600i64 {
            if let Some(&(_, b)) = changes.iter().find(|(o, _)| *o == offset) {
                want = b;
            }
            let after = relative_position_bucket(offset, buckets, max_distance);
            let before = relative_position_bucket(-offset, buckets, max_distance);
            assert_eq!(after, want, "{buckets}/{max_distance}: offset {offset}");
            assert_eq!(before, if offset == 0 { 0 } else { want - half }, "{buckets}/{max_distance}: offset -{offset}");
        }
    }
}

#[test]
fn text_encoder_matches_transformers() {
    for name in FIXTURES {
        let folder = fixture(name);
        let config = UMT5Config::read(&folder.join("text_encoder/config.json")).unwrap_or_else(|e| panic!("{e}"));
        for (label, device) in devices() {
            let what = |part: &str| format!("{name} on {label}: {part}");
            // wan2's weights are fp16; the reference ran on them upcast to f32.
            let weights =
                Weights::open(&[text_encoder_file(&folder)], &device, DType::F32).unwrap_or_else(|e| panic!("{e}"));
            let model = UMT5EncoderModel::load(&weights.root(), &config).unwrap_or_else(|e| panic!("{e}"));
            weights.finish().unwrap_or_else(|e| panic!("{e}"));
            let expected = Expected::open(&folder, &device);

            let input = ids(&expected, "text_encoder.input_ids");
            let hidden = model.forward_hidden_states(&input);
            assert_eq!(hidden.len(), config.num_layers + 1, "{}", what("hidden state count"));
            for (i, h) in hidden.into_iter().enumerate() {
                let key = format!("text_encoder.hidden.{i}");
                let d = assert_close(h, &expected.values(&key), TOL, &what(&key));
                eprintln!("{}: max abs {d:e}", what(&key));
            }
            let d = assert_close(model.forward(&input), &expected.values("text_encoder.out"), TOL, &what("out"));
            eprintln!("{}: max abs {d:e}", what("out"));

            // Padded to 64 with the mask, as the pipeline runs it: every row.
            let padded = ids(&expected, "text_encoder.padded_ids");
            let mask: Vec<bool> = ids(&expected, "text_encoder.padded_mask").into_iter().map(|m| m != 0).collect();
            let want = expected.values("text_encoder.padded_out");
            let d = assert_close(model.forward_masked(&padded, &mask), &want, TOL, &what("padded_out"));
            eprintln!("{}: max abs {d:e}", what("padded_out"));
            // The true tokens alone give the padded run's first rows.
            let len = mask.iter().filter(|&&m| m).count();
            assert!(len < padded.len() && mask[..len].iter().all(|&m| m), "{}", what("mask is a prefix"));
            let rows = &want[..len * config.d_model];
            let d = assert_close(model.forward(&padded[..len]), rows, TOL, &what("true tokens of padded_out"));
            eprintln!("{}: max abs {d:e}", what("true tokens of padded_out"));
        }
    }
}

/// F16 (residual stream and `wo` in f32, as transformers keeps them) and BF16 stay close to
/// transformers' f32 output, the padded run included.
#[test]
fn text_encoder_in_half_precision_stays_close() {
    for name in FIXTURES {
        let folder = fixture(name);
        let config = UMT5Config::read(&folder.join("text_encoder/config.json")).unwrap_or_else(|e| panic!("{e}"));
        for (label, device) in devices() {
            let expected = Expected::open(&folder, &device);
            let input = ids(&expected, "text_encoder.input_ids");
            let padded = ids(&expected, "text_encoder.padded_ids");
            let mask: Vec<bool> = ids(&expected, "text_encoder.padded_mask").into_iter().map(|m| m != 0).collect();
            for (dtype, tol) in [(DType::F16, F16_TOL), (DType::BF16, BF16_TOL)] {
                let what = |part: &str| format!("{name} on {label}, {dtype:?}: {part}");
                let weights =
                    Weights::open(&[text_encoder_file(&folder)], &device, dtype).unwrap_or_else(|e| panic!("{e}"));
                let model = UMT5EncoderModel::load(&weights.root(), &config).unwrap_or_else(|e| panic!("{e}"));
                let out = model.forward(&input);
                assert_eq!(out.dtype(), dtype, "{}", what("output dtype"));
                let d = assert_close(out, &expected.values("text_encoder.out"), tol, &what("out"));
                eprintln!("{}: max abs {d:e}", what("out"));
                let got = model.forward_masked(&padded, &mask);
                let d = assert_close(got, &expected.values("text_encoder.padded_out"), tol, &what("padded_out"));
                eprintln!("{}: max abs {d:e}", what("padded_out"));
            }
        }
    }
}

/// umt5-xxl (Wan 2.1's text encoder; its published config, names and shapes from transformers
/// built without weights) loads unchanged, with the embedding table stored once or tied.
#[test]
fn umt5_xxl_names_and_shapes_load_unchanged() {
    let root = fixture("wan2.1-t2v-1.3b-shapes");
    let all: BTreeMap<String, BTreeMap<String, Vec<usize>>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("shapes.json")).unwrap()).unwrap();
    let shapes = &all["text_encoder"];
    let config = UMT5Config::read(&root.join("text_encoder/config.json")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((config.num_layers, config.d_model, config.vocab_size), (24, 4096, 256_384));
    let count: usize = shapes
        .iter()
        .filter(|(k, _)| *k != "encoder.embed_tokens.weight")
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(count, 5_680_910_336);
    let device = cpu();
    for drop in [None, Some("encoder.embed_tokens.weight"), Some("shared.weight")] {
        let mut shapes = shapes.clone();
        if let Some(key) = drop {
            shapes.remove(key);
        }
        let weights = Weights::shapes_only(&root.join("text_encoder"), shapes, &device);
        UMT5EncoderModel::load(&weights.root(), &config).unwrap_or_else(|e| panic!("without {drop:?}: {e}"));
        weights.finish().unwrap_or_else(|e| panic!("without {drop:?}: {e}"));
    }
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = scratch("errors");

    // Tokenizer: a missing file, a file that is not a tokenizer.
    let missing = dir.join("absent/tokenizer.json");
    let err = T5Tokenizer::from_file(&missing).unwrap_err().to_string();
    assert!(err.contains("absent/tokenizer.json"), "{err}");
    let invalid = dir.join("tokenizer.json");
    std::fs::write(&invalid, r#"{"version": "1.0", "model": {"type": "Nonsense"}}"#).unwrap();
    let err = T5Tokenizer::from_file(&invalid).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("not a tokenizer.json"), "{err}");
    let tokenizer = T5Tokenizer::from_file(&fixture("wan1").join("tokenizer/tokenizer.json")).unwrap();
    let err = tokenizer.encode("a cat", 0).unwrap_err().to_string();
    assert!(err.contains("no room"), "{err}");

    // Config: unsupported settings name their key.
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("wan1").join("text_encoder/config.json")).unwrap())
            .unwrap();
    let cases: [(&str, serde_json::Value, &str); 8] = [
        ("feed_forward_proj", serde_json::json!("relu"), "feed_forward_proj"),
        ("feed_forward_proj", serde_json::json!("gated-gelu-x"), "feed_forward_proj"),
        ("is_gated_act", serde_json::json!(false), "is_gated_act"),
        ("dense_act_fn", serde_json::json!("relu"), "dense_act_fn"),
        ("is_decoder", serde_json::json!(true), "is_decoder"),
        ("relative_attention_num_buckets", serde_json::json!(2), "relative_attention_num_buckets"),
        ("relative_attention_max_distance", serde_json::json!(2), "relative_attention_max_distance"),
        ("num_heads", serde_json::json!(0), "num_heads"),
    ];
    let path = dir.join("config.json");
    for (key, value, named) in cases {
        let mut config = base.clone();
        if key == "feed_forward_proj" {
            // Otherwise these two, as in transformers, decide.
            let object = config.as_object_mut().unwrap();
            object.remove("dense_act_fn");
            object.remove("is_gated_act");
        }
        config[key] = value.clone();
        std::fs::write(&path, config.to_string()).unwrap();
        let err = UMT5Config::read(&path).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains(named), "{key} = {value}: {err}");
    }
    let mut config = base.clone();
    config.as_object_mut().unwrap().remove("d_model");
    std::fs::write(&path, config.to_string()).unwrap();
    let err = UMT5Config::read(&path).unwrap_err().to_string();
    assert!(err.contains("d_model"), "{err}");
    // The settings transformers derives from `feed_forward_proj` alone.
    let mut config = base.clone();
    let object = config.as_object_mut().unwrap();
    object.remove("dense_act_fn");
    object.remove("is_gated_act");
    std::fs::write(&path, config.to_string()).unwrap();
    let read = UMT5Config::read(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, UMT5Config::read(&fixture("wan1").join("text_encoder/config.json")).unwrap());

    // Weights that do not fit the config: an error naming the tensor.
    let config = UMT5Config::read(&fixture("wan2").join("text_encoder/config.json")).unwrap();
    let weights = Weights::open(&[text_encoder_file(&fixture("wan1"))], &cpu(), DType::F32).unwrap();
    let err = UMT5EncoderModel::load(&weights.root(), &config).unwrap_err().to_string();
    assert!(err.contains("shared.weight") && err.contains("shape"), "{err}");

    std::fs::remove_dir_all(&dir).unwrap();
}
