//! The flow-matching schedulers against diffusers: `UniPCMultistepScheduler` with Wan 2.1's
//! published config and `FlowMatchEulerDiscreteScheduler` with shift 7 and 3, for 1, 2, 3, 5, 10
//! and 50 steps. Sigmas must agree within 1e-5 and timesteps (0..1000) within 1e-6 of 1000
//! (1e-3); every step's sample, from diffusers' initial sample and fixed model outputs, within
//! 1e-4 max abs (and finite). Unsupported options, settings whose steps diffusers computes as
//! NaN or infinite, and 0 steps must be refused with an error.

use crate::common::{Expected, devices, fixtures_root, max_diff, meta, values};
use burn::prelude::*;
use model::diffusers::common::flow_scheduler::FlowScheduler;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const SIGMA_TOL: f32 = 1e-5;
/// 1e-6 relative to the timestep range, 1000.
const TIMESTEP_TOL: f32 = 1e-3;
const SAMPLE_TOL: f32 = 1e-4;
/// The shape of the fixtures' samples and model outputs.
const SHAPE: [usize; 5] = [1, 4, 2, 3, 3];

fn folder() -> PathBuf {
    fixtures_root().join("wan").join("wan1")
}

/// `expected.json`'s scheduler entries: (config with its `_class_name`, steps).
fn entries() -> Vec<(Value, usize)> {
    let m = meta(&folder());
    m["schedulers"]
        .as_array()
        .expect("schedulers")
        .iter()
        .map(|e| {
            let mut config = e["config"].clone();
            config["_class_name"] = e["class"].clone();
            (config, e["steps"].as_u64().expect("steps") as usize)
        })
        .collect()
}

fn build(config: &Value, steps: usize) -> FlowScheduler {
    FlowScheduler::from_json(Path::new("expected.json"), config, steps).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn schedulers_match_diffusers() {
    let entries = entries();
    assert_eq!(entries.len(), 18, "scheduler entries in expected.json");
    let (mut sigma_max, mut timestep_max) = (0f32, 0f32);
    let mut sample_max = vec![0f32; 3];
    for (label, device) in devices() {
        let exp = Expected::open(&folder(), &device);
        for (i, (config, steps)) in entries.iter().enumerate() {
            let class = config["_class_name"].as_str().unwrap();
            let what = format!("scheduler.{i} ({class}, {steps} steps)");
            let mut scheduler = build(config, *steps);
            assert_eq!(scheduler.num_steps(), *steps, "{what}: steps");
            let d = max_diff(scheduler.sigmas(), &exp.values(&format!("scheduler.{i}.sigmas")), &what);
            assert!(d <= SIGMA_TOL, "{what}: sigmas differ by {d:e}");
            sigma_max = sigma_max.max(d);
            let d = max_diff(scheduler.timesteps(), &exp.values(&format!("scheduler.{i}.timesteps")), &what);
            assert!(d <= TIMESTEP_TOL, "{what}: timesteps differ by {d:e}");
            timestep_max = timestep_max.max(d);

            let outputs = exp.values(&format!("scheduler.{i}.model_outputs"));
            let samples = exp.values(&format!("scheduler.{i}.samples"));
            let n = SHAPE.iter().product::<usize>();
            // Twice over: step 0 must start afresh.
            for _ in 0..2 {
                let mut sample: Tensor<5> = exp.t(&format!("scheduler.{i}.sample"));
                for step in 0..*steps {
                    let output = Tensor::from_data(TensorData::new(outputs[step * n..][..n].to_vec(), SHAPE), &device);
                    sample = scheduler.step(output, step, sample);
                    let (got, want) = (values(sample.clone()), &samples[step * n..][..n]);
                    let what = format!("{what} step {step} on {label}");
                    // max_diff passes over NaNs.
                    assert!(got.iter().all(|v| v.is_finite()), "{what}: not finite");
                    let d = max_diff(&got, want, &what);
                    assert!(d <= SAMPLE_TOL, "{what}: max abs difference {d:e}");
                    sample_max[i / 6] = sample_max[i / 6].max(d);
                }
            }
        }
    }
    eprintln!("max abs differences: sigmas {sigma_max:e}, timesteps {timestep_max:e}");
    for (name, d) in ["UniPC (Wan 2.1)", "FlowMatchEuler shift 7", "FlowMatchEuler shift 3"].iter().zip(sample_max) {
        eprintln!("max abs differences of the samples: {name}: {d:e}");
    }
}

/// The fixture folders' own `scheduler_config.json` files: wan1 ships Wan 2.1's UniPC, wan2
/// FlowMatchEuler with shift 7 (the same tables as entries 2 and 8, 3 steps each).
#[test]
fn schedulers_from_folder_configs() {
    let entries = entries();
    for (name, entry) in [("wan1", 2), ("wan2", 8)] {
        let path = fixtures_root().join("wan").join(name).join("scheduler/scheduler_config.json");
        let from_file = FlowScheduler::from_folder_config(&path, 3).unwrap_or_else(|e| panic!("{e}"));
        let (config, steps) = &entries[entry];
        let expected = build(config, *steps);
        let kind = |s: &FlowScheduler| matches!(s, FlowScheduler::UniPC(_));
        assert_eq!(kind(&from_file), name == "wan1", "{name}: class");
        assert_eq!(from_file.timesteps(), expected.timesteps(), "{name}: timesteps");
        assert_eq!(from_file.sigmas(), expected.sigmas(), "{name}: sigmas");
    }
}

/// Each unsupported option is refused with an error naming the key.
#[test]
fn schedulers_refuse_unsupported_options() {
    let entries = entries();
    let (unipc, euler) = (&entries[0].0, &entries[6].0);
    let cases: &[(&Value, &str, Value)] = &[
        (unipc, "use_karras_sigmas", json!(true)),
        (unipc, "use_exponential_sigmas", json!(true)),
        (unipc, "use_beta_sigmas", json!(true)),
        (unipc, "thresholding", json!(true)),
        (unipc, "predict_x0", json!(false)),
        (unipc, "solver_type", json!("midpoint")),
        // Into sigma 0 diffusers' bh1 step is NaN.
        (unipc, "solver_type", json!("bh1")),
        (unipc, "prediction_type", json!("epsilon")),
        (unipc, "prediction_type", json!("v_prediction")),
        (unipc, "use_flow_sigmas", json!(false)),
        (unipc, "final_sigmas_type", json!("denoise_to_zero")),
        (unipc, "use_dynamic_shifting", json!(true)),
        (unipc, "time_shift_type", json!("linear")),
        (unipc, "solver_p", json!({"_class_name": "DPMSolverMultistepScheduler"})),
        (unipc, "solver_order", json!(0)),
        (unipc, "lower_order_final", json!(false)),
        (unipc, "flow_shift", json!(-1.0)),
        (unipc, "timestep_spacing", json!("uniform")),
        (unipc, "_class_name", json!("DPMSolverMultistepScheduler")),
        (euler, "use_dynamic_shifting", json!(true)),
        (euler, "time_shift_type", json!("linear")),
        (euler, "invert_sigmas", json!(true)),
        (euler, "stochastic_sampling", json!(true)),
        (euler, "use_karras_sigmas", json!(true)),
        (euler, "use_exponential_sigmas", json!(true)),
        (euler, "use_beta_sigmas", json!(true)),
        (euler, "shift", json!(0.0)),
        (euler, "shift_terminal", json!(1.0)),
        (euler, "num_train_timesteps", json!(0)),
    ];
    for (base, key, value) in cases {
        let mut config = (*base).clone();
        config[*key] = value.clone();
        let err = FlowScheduler::from_json(Path::new("scheduler_config.json"), &config, 10)
            .err()
            .unwrap_or_else(|| panic!("{key} = {value} was accepted"))
            .to_string();
        assert!(err.contains(key) && err.contains("scheduler_config.json"), "{key} = {value}: unclear error {err:?}");
    }
    // Full order 3 on the last step to sigma_min: diffusers' step is NaN.
    let mut config = unipc.clone();
    config["final_sigmas_type"] = json!("sigma_min");
    config["solver_order"] = json!(3);
    config["lower_order_final"] = json!(false);
    let err = FlowScheduler::from_json(Path::new("scheduler_config.json"), &config, 10).expect_err("NaN last step");
    assert!(err.to_string().contains("lower_order_final"), "{err}");
    // diffusers' UniPC defaults are not the flow setting: a config that omits it is refused too.
    let mut config = unipc.clone();
    config.as_object_mut().unwrap().remove("prediction_type");
    let err = FlowScheduler::from_json(Path::new("scheduler_config.json"), &config, 10).expect_err("default epsilon");
    assert!(err.to_string().contains("prediction_type"), "{err}");
}

/// A one-step schedule ends at sigma 1, which `shift_terminal` cannot stretch (NaN in diffusers).
#[test]
fn schedulers_refuse_stretching_one_step() {
    for entry in [0, 6] {
        let mut config = entries()[entry].0.clone();
        config["shift_terminal"] = json!(0.1);
        let path = Path::new("scheduler_config.json");
        assert!(FlowScheduler::from_json(path, &config, 2).is_ok());
        let err = FlowScheduler::from_json(path, &config, 1).expect_err("1 step stretched");
        assert!(err.to_string().contains("shift_terminal"), "{err}");
    }
}

#[test]
fn schedulers_refuse_zero_steps() {
    let entries = entries();
    for entry in [0, 6] {
        let err = FlowScheduler::from_json(Path::new("scheduler_config.json"), &entries[entry].0, 0)
            .expect_err("0 steps accepted");
        assert!(err.to_string().contains("0 inference steps"), "{err}");
    }
}
