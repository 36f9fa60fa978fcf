//! One shape for every model: the registry finds the installed models and describes each one
//! (tasks, parameters with their bounds); `GET /api/models`, the Create page's form and the
//! server's validation all follow that one description. Results carry typed, versioned
//! metadata (old results still display), their settings travel inside the files, and running
//! jobs send live previews.

use crate::common;

use app::models::{ModelInfo, ParamKind};
use app::types::{JobParams, Mode};
use axum::http::StatusCode;
use common::*;
use serde_json::json;
use server::engines::Registry;
use server::engines::builtin::BuiltinEngine;
use server::queue::events::JobEvent;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures")
}

/// A models folder holding links to the named fixture models.
fn models_dir(name: &str, links: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidplay-models-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for link in links {
        let (family, model) = link.split_once('/').unwrap();
        std::os::unix::fs::symlink(fixtures().join(family).join(model), dir.join(model)).unwrap();
    }
    dir
}

fn builtin() -> BuiltinEngine {
    BuiltinEngine::new(model::builtin::pipeline::BuiltinModel::config_of(None).unwrap())
}

#[test]
fn the_registry_finds_and_describes_every_installed_model() {
    // Alone, an image-to-video model only animates images.
    let only_svd = Registry::discover(builtin(), Some(&models_dir("svd-only", &["svd/svd1"])));
    assert_eq!(only_svd.ids(), ["vidplay-toy-1", "svd1", "vidplay-edit-1"]);
    let svd = only_svd.get("svd1").unwrap();
    assert_eq!(svd.info().tasks, [Mode::ImageToVideo]);
    let mut p = JobParams { prompt: "a boat".into(), model: "svd1".into(), ..JobParams::default() };
    assert!(svd.validate(&mut p, false).unwrap_err().contains("animates images"));
    assert_eq!(svd.validate(&mut p, true), Ok(Mode::ImageToVideo));

    // With a text-to-image model, the same id also does text to video through a keyframe.
    let registry = Registry::discover(builtin(), Some(&models_dir("both", &["sd/sd1", "svd/svd1"])));
    assert_eq!(registry.ids(), ["vidplay-toy-1", "sd1", "svd1", "vidplay-edit-1"]);
    assert_eq!(registry.default_id(false), "vidplay-toy-1");
    assert_eq!(registry.default_id(true), "vidplay-toy-1");
    let infos = registry.infos();
    let by_id = |id: &str| infos.iter().find(|m| m.id == id).unwrap().clone();
    let (toy, sd, chain) = (by_id("vidplay-toy-1"), by_id("sd1"), by_id("svd1"));
    assert_eq!(
        (toy.family.as_str(), sd.family.as_str(), chain.family.as_str()),
        ("builtin", "stable-diffusion", "stable-video-diffusion")
    );
    assert_eq!(toy.tasks, [Mode::TextToVideo, Mode::ImageToVideo]);
    assert_eq!(sd.tasks, [Mode::TextToImage]);
    assert_eq!(chain.tasks, [Mode::TextToVideo, Mode::ImageToVideo]);
    assert!(!toy.chips.is_empty() && toy.reads_prompt && sd.chips.is_empty());
    assert!(sd.memory_mib >= 1 && chain.memory_mib > sd.memory_mib, "the chain needs both models");
    assert_eq!(toy.param("frames").unwrap().max, toy.native_frames as f64);
    assert_eq!(chain.param("keyframe_model").unwrap().kind, ParamKind::Choice(vec!["sd1".into()]));
    assert!(chain.param("keyframe_steps").unwrap().applies_to(Mode::TextToVideo));
    assert!(!chain.param("keyframe_steps").unwrap().applies_to(Mode::ImageToVideo));
    assert_eq!(chain.param("width").unwrap().step, 64.0);
    assert_eq!(sd.param("width").unwrap().step, 8.0);
    // SD makes images up to 2048 (tiled VAE decoding above 1024x1024) but takes no upload, so
    // uploads keep what the models that take them use.
    assert_eq!(sd.param("width").unwrap().max, 2048.0);
    assert_eq!(registry.max_input_side(), 1024);

    // The chain fills in the keyframe model and counts both phases.
    let engine = registry.get("svd1").unwrap();
    let mut p = JobParams {
        prompt: "a boat".into(),
        model: "svd1".into(),
        keyframe_steps: 5,
        steps: 7,
        ..JobParams::default()
    };
    assert_eq!(engine.validate(&mut p, false), Ok(Mode::TextToVideo));
    assert_eq!((p.keyframe_model.as_str(), engine.total_steps(&p, Mode::TextToVideo)), ("sd1", 12));
    assert_eq!(engine.total_steps(&p, Mode::ImageToVideo), 7);
    let mut wrong = JobParams { keyframe_model: "sd9".into(), ..p.clone() };
    assert!(engine.validate(&mut wrong, false).unwrap_err().contains("keyframe model"));
    // A model that does not exist is not found; the text-to-image model takes no image.
    assert!(registry.get("sd9").is_none());
    let mut p = JobParams { prompt: "a cat".into(), model: "sd1".into(), ..JobParams::default() };
    assert!(registry.get("sd1").unwrap().validate(&mut p, true).unwrap_err().contains("does not take an input image"));
}

/// A family is one entry of the family table: the registry builds an engine for every folder
/// whose pipeline class a family names (the family the engine itself names) and skips the rest;
/// it orders engines by their first task and chains every model that only animates images with
/// the text-to-image models, whatever their family; whether a model's prompt is read word by
/// word comes from its description, not its id.
#[test]
fn the_family_table_builds_engines_and_chains_compose_them_by_task() {
    use server::engines::registry::{FAMILIES, family_of};
    let dir = models_dir("table", &["wan/wan1", "svd/svd1", "sd/sd1", "ip2p/ip2p1"]);
    // A second image-to-video model, and a folder of a pipeline no family runs.
    std::os::unix::fs::symlink(fixtures().join("svd/svd2"), dir.join("svd-b")).unwrap();
    let unknown = dir.join("ltx");
    std::fs::create_dir_all(&unknown).unwrap();
    std::fs::write(unknown.join("model_index.json"), r#"{"_class_name": "LTXPipeline"}"#).unwrap();
    assert!(family_of("LTXPipeline").is_none());
    let classes: Vec<&str> = FAMILIES.iter().flat_map(|f| f.pipelines.iter().copied()).collect();
    let distinct: std::collections::HashSet<&str> = classes.iter().copied().collect();
    assert_eq!(classes.len(), distinct.len(), "a pipeline class belongs to one family");

    let registry = Registry::discover(builtin(), Some(&dir));
    assert_eq!(registry.ids(), ["wan1", "vidplay-toy-1", "sd1", "svd-b", "svd1", "ip2p1", "vidplay-edit-1"]);
    for id in ["wan1", "sd1", "svd-b", "svd1", "ip2p1"] {
        let class = model::diffusers::common::folder::ModelFolder::open(&dir.join(id)).unwrap().class_name;
        let info = registry.get(id).unwrap().info();
        assert_eq!(family_of(&class).unwrap().name, info.family, "{id} ({class})");
    }
    // Both image-to-video models make video from text through a keyframe of sd1.
    for id in ["svd1", "svd-b"] {
        let info = registry.get(id).unwrap().info();
        assert_eq!(info.tasks, [Mode::TextToVideo, Mode::ImageToVideo], "{id}");
        assert_eq!(info.param("keyframe_model").unwrap().kind, ParamKind::Choice(vec!["sd1".into()]));
    }
    assert!(registry.reads_prompt("vidplay-toy-1"));
    for id in ["wan1", "sd1", "svd1", "ip2p1", "vidplay-edit-1", "gone"] {
        assert!(!registry.reads_prompt(id), "{id}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every bound of every model's description is the server's bound: the value at the bound is
/// accepted, one step past it is refused with a message naming the parameter.
#[test]
fn validation_follows_the_description_at_every_bound() {
    let registry = Registry::discover(builtin(), Some(&models_dir("bounds", &["sd/sd1", "svd/svd1", "ip2p/ip2p1"])));
    for info in registry.infos() {
        let engine = registry.get(&info.id).unwrap();
        for &task in &info.tasks {
            let has_image = matches!(task, Mode::ImageToVideo | Mode::Edit);
            let (prompt, job_task) = if task == Mode::Edit { ("make it red", "edit") } else { ("a red ball", "") };
            let start = JobParams {
                prompt: prompt.into(),
                model: info.id.clone(),
                task: job_task.into(),
                ..JobParams::default()
            };
            let base = info.defaults(task, start);
            let mut ok = base.clone();
            assert_eq!(engine.validate(&mut ok, has_image), Ok(task), "{} {task:?} defaults", info.id);
            for spec in info.params_for(task).filter(|s| matches!(s.kind, ParamKind::Integer | ParamKind::Number)) {
                for (value, accepted) in
                    [(spec.min, true), (spec.max, true), (spec.max + spec.step, false), (spec.min - spec.step, false)]
                {
                    if value < 0.0 {
                        continue; // not representable in the field
                    }
                    let mut p = base.clone();
                    assert!(app::models::set_value(&mut p, &spec.name, &value.to_string()), "{}", spec.name);
                    let got = engine.validate(&mut p, has_image);
                    if accepted {
                        // Other rules may still apply (the built-in model's frames); the bound itself passes.
                        if let Err(e) = &got {
                            assert!(!e.contains(&spec.label.to_lowercase()), "{} {}={value}: {e}", info.id, spec.name);
                        }
                    } else {
                        let e = got.expect_err(&format!("{} {}={value} accepted", info.id, spec.name));
                        assert!(e.contains(&spec.label.to_lowercase()), "{} {}={value}: {e}", info.id, spec.name);
                    }
                }
            }
        }
    }
}

/// `GET /api/models` is the registry's description, and the Create page draws each control
/// with exactly the described bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_page_follow_the_description() {
    let data = data_dir("models-api");
    let (app, jobs) = start_with(&data, models_dir("api", &["sd/sd1"])).await;
    let (status, models) = send_json(&app, get("/api/models")).await;
    assert_eq!(status, StatusCode::OK);
    let models: Vec<ModelInfo> = serde_json::from_value(models).unwrap();
    assert_eq!(models, jobs.registry().infos());
    let toy = &models[0];

    let (status, html) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8_lossy(&html);
    for spec in toy.params_for(Mode::TextToVideo) {
        let control = format!(r#"name="{}" min="{}" max="{}" step="{}""#, spec.name, spec.min, spec.max, spec.step);
        assert!(html.contains(&control), "the form lacks {control}");
    }
    // Parameters of other tasks and models are not drawn.
    assert!(!html.contains(r#"name="image_guidance""#) && !html.contains(r#"name="negative""#));

    // The API refuses what the description refuses, with the description's words.
    let frames = toy.param("frames").unwrap();
    let over = json!({"prompt": "a red ball", "frames": frames.max as u32 + 1});
    assert_rejected(&app, post_json(over), StatusCode::BAD_REQUEST, "frames").await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Results store typed metadata with the settings inside the files; dropping a file restores
/// them; results written before versioned metadata still display; running jobs send previews.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_results_settings_in_files_old_metadata_and_previews() {
    let data = data_dir("results");
    let (app, jobs) = start_with(&data, models_dir("results", &[])).await;
    let mut events = jobs.subscribe();
    let (status, job) = send_json(
        &app,
        post_json(json!({"prompt": "a red ball moving right", "steps": 4, "seed": 5, "frames": 6, "motion": 1.5})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    wait_for(&app, &id, |j| j["state"] == "done").await;

    // A preview came with the first step: a small PNG as a data URL.
    let mut preview = None;
    while let Ok(event) = events.try_recv() {
        if let JobEvent::Step(step) = event
            && step.id == id
            && step.preview.is_some()
        {
            preview = step.preview;
        }
    }
    let preview = preview.expect("a preview while the job ran");
    assert!(preview.starts_with("data:image/png;base64,") && preview.len() < 60_000, "{}", &preview[..40]);

    // Typed metadata, the same in the API and inside the MP4.
    let (_, video) = send_json(&app, get(&format!("/api/videos/{id}"))).await;
    let meta = &video["metadata"];
    assert_eq!(
        (meta["version"].as_u64(), meta["family"].as_str()),
        (Some(app::results::RESULT_VERSION as u64), Some("builtin"))
    );
    assert_eq!((meta["params"]["seed"].as_u64(), meta["params"]["frames"].as_u64()), (Some(5), Some(6)));
    let (status, mp4) = send(&app, get(&format!("/media/{id}/video.mp4"))).await;
    assert_eq!(status, StatusCode::OK);

    // Dropping the MP4 (or the GIF) on the Create page restores every setting.
    for file in ["video.mp4", "video.gif"] {
        let (_, bytes) = send(&app, get(&format!("/media/{id}/{file}"))).await;
        let req = axum::http::Request::post("/api/settings").body(axum::body::Body::from(bytes)).unwrap();
        let (status, settings) = send_json(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{file}: {settings}");
        let settings: app::types::FileSettings = serde_json::from_value(settings).unwrap();
        assert_eq!(settings.mode, Mode::TextToVideo);
        assert_eq!(
            (settings.params.seed, settings.params.frames, settings.params.motion, settings.params.steps),
            (Some(5), 6, 1.5, 4)
        );
        assert_eq!(settings.params.prompt, "a red ball moving right");
    }
    let req = axum::http::Request::post("/api/settings").body(axum::body::Body::from(png(8, 8))).unwrap();
    assert_rejected(&app, req, StatusCode::BAD_REQUEST, "carries no vidplay settings").await;
    assert!(mp4.len() > 1000);

    // A result written before metadata was versioned still displays.
    let old_id = "0123456789abcdef";
    insert_old_result(&data.join("vidplay.db"), old_id).await;
    let (status, html) = send(&app, get(&format!("/v/{old_id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8_lossy(&html);
    assert!(
        html.contains("32×32 generated, shown at 256×256") && html.contains("an old device"),
        "the old result's details"
    );
    let (_, old) = send_json(&app, get(&format!("/api/videos/{old_id}"))).await;
    assert_eq!((old["metadata"]["version"].as_u64(), old["metadata"]["params"]["steps"].as_u64()), (Some(1), Some(20)));
    let _ = std::fs::remove_dir_all(&data);
}

/// A gallery row as the previous version wrote it: the built-in model's unversioned metadata.
async fn insert_old_result(db: &Path, id: &str) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(db).connect().await.unwrap();
    let metadata = json!({
        "model": "vidplay-toy-1", "mode": "text-to-video", "prompt": "an old clip",
        "understood": {"subject": "ball"},
        "parameters": {"prompt": "an old clip", "frames": 8, "fps": 8, "steps": 20, "guidance": 3.0, "image_guidance": 1.5, "seed": 9, "motion": 1.0, "display_size": 256},
        "seed": 9, "frames": 8, "fps": 8, "duration_s": 1.0,
        "resolution": {"native": [32, 32], "display": [256, 256], "upscale_filter": "catmull-rom"},
        "input_image": null, "device": "an old device",
        "timings": {"load_s": 0.0, "sampling_s": 1.0, "encode_s": 0.1, "total_s": 1.2},
        "created_unix": 1, "vidplay_version": "0.1.0"
    });
    let params = json!({"prompt": "an old clip", "seed": 9, "frames": 8, "steps": 20});
    sqlx::query("INSERT INTO videos (id, mode, model, prompt, params, metadata, created_ms) VALUES (?, 'text-to-video', 'vidplay-toy-1', 'an old clip', ?, ?, 1)")
        .bind(id)
        .bind(params.to_string())
        .bind(metadata.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
}

/// An installed Wan model comes first (the default for text to video), describes its own
/// controls, and checks the shapes it can make; requests from a picture still default to a
/// model that animates one.
#[test]
fn an_installed_wan_model_is_the_default_text_to_video_engine() {
    let registry = Registry::discover(builtin(), Some(&models_dir("wan", &["wan/wan1", "sd/sd1"])));
    assert_eq!(registry.ids(), ["wan1", "vidplay-toy-1", "sd1", "vidplay-edit-1"]);
    assert_eq!(registry.default_id(false), "wan1");
    assert_eq!(registry.default_id(true), "vidplay-toy-1");
    let wan = registry.get("wan1").unwrap();
    let info = wan.info();
    assert_eq!((info.family.as_str(), info.tasks.as_slice()), ("wan", [Mode::TextToVideo].as_slice()));
    assert_eq!((info.native_width, info.native_height, info.native_frames), (832, 480, 81));
    assert_eq!(info.param("frames").unwrap().step, 4.0);
    assert!(info.param("negative").is_some() && info.param("keyframe_model").is_none());
    // Prompt parts to click, but no word-by-word reading (that is the built-in model's parser).
    assert!(info.chips.iter().any(|g| g.phrases.iter().any(|p| p == "camera pans left")) && !info.reads_prompt);
    let ok = JobParams {
        prompt: "a boat".into(),
        model: "wan1".into(),
        frames: 17,
        width: 64,
        height: 48,
        steps: 4,
        guidance: 5.0,
        fps: 16,
        ..JobParams::default()
    };
    assert_eq!(wan.validate(&mut ok.clone(), false), Ok(Mode::TextToVideo));
    // Rounded as diffusers rounds: frames to 4k + 1, the size down to multiples of 16.
    let mut rounded = JobParams { frames: 16, width: 72, height: 50, ..ok.clone() };
    assert_eq!(wan.validate(&mut rounded, false), Ok(Mode::TextToVideo));
    assert_eq!((rounded.frames, rounded.width, rounded.height), (17, 64, 48));
    for (bad, needle) in [
        (JobParams { frames: 200, ..ok.clone() }, "frames must be"),
        (JobParams { width: 2048, ..ok.clone() }, "width must be"),
        (JobParams { prompt: " ".into(), ..ok.clone() }, "prompt is empty"),
    ] {
        let err = wan.validate(&mut bad.clone(), false).unwrap_err();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(wan.validate(&mut ok.clone(), true).unwrap_err().contains("does not take an input image"));
}

/// A job's missing parameters take its own model's defaults (not the built-in model's), for
/// every engine and task, through the JSON API and the form; what the request gives stands.
/// No worker runs here: the jobs stay queued as they were accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_parameters_take_the_models_defaults() {
    let data = data_dir("defaults");
    let dir = models_dir("defaults", &["sd/sd1", "svd/svd1", "ip2p/ip2p1", "wan/wan1"]);
    let (app, jobs) = start_options(server::web::ServeOptions {
        database_url: None,
        media: None,
        media_endpoint: None,
        worker: None,
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.clone(),
        site_root: site_root(),
        seed_examples: false,
        models_dir: Some(dir),
        access: server::web::security::Access::local(),
        model_memory_mib: 4096,
        faults: server::faults::Faults::default(),
        visual_min_similarity: server::visual::MIN_SIMILARITY,
    })
    .await;
    let mut checked = 0;
    for info in jobs.registry().infos() {
        for &task in &info.tasks {
            let prompt = if task == Mode::Edit { "make it red" } else { "a red ball" };
            let edit = if task == Mode::Edit { "edit" } else { "" };
            // Steps given (where the model has them) stand; everything else is the model's.
            let steps = info.param("steps").map(|s| (s.min as u32 + 1).to_string());
            let mut fields = vec![("prompt", prompt), ("model", info.id.as_str()), ("task", edit)];
            if let Some(steps) = &steps {
                fields.push(("steps", steps.as_str()));
            }
            let request = if matches!(task, Mode::ImageToVideo | Mode::Edit) {
                post_multipart(multipart(&fields, Some(("photo.png", &png(96, 64)))))
            } else {
                let body: serde_json::Map<String, serde_json::Value> =
                    fields.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                let mut body = serde_json::Value::Object(body);
                if let Some(steps) = &steps {
                    body["steps"] = json!(steps.parse::<u32>().unwrap());
                }
                post_json(body)
            };
            let (status, job) = send_json(&app, request).await;
            let what = format!("{} {task:?}", info.id);
            assert_eq!(status, StatusCode::CREATED, "{what}: {job}");
            assert_eq!(job["mode"], serde_json::to_value(task).unwrap(), "{what}");
            let params: JobParams = serde_json::from_value(job["params"].clone()).unwrap();
            for spec in info.params_for(task) {
                let mut want = JobParams::default();
                app::models::set_value(&mut want, &spec.name, &spec.default);
                if spec.name == "steps" {
                    app::models::set_value(&mut want, "steps", steps.as_deref().unwrap());
                }
                if spec.default.is_empty() {
                    continue; // filled in by the engine (the keyframe model), or nothing
                }
                assert_eq!(params.value(&spec.name), want.value(&spec.name), "{what}: {}", spec.name);
            }
            checked += 1;
        }
    }
    // The built-in model and editor, sd1, svd1 (a keyframe chain: text and image to video),
    // ip2p1 and wan1.
    assert_eq!(checked, 8);
    // Wan's own defaults, not the built-in model's (17 frames at 8 fps, 512x512, guidance 3).
    let (_, job) = send_json(&app, post_json(json!({"prompt": "a boat", "model": "wan1"}))).await;
    let p = &job["params"];
    assert_eq!(
        (&p["frames"], &p["width"], &p["height"], &p["steps"]),
        (&json!(81), &json!(832), &json!(480), &json!(50))
    );
    assert_eq!((&p["guidance"], &p["fps"]), (&json!(5.0), &json!(16)));
    let _ = std::fs::remove_dir_all(&data);
}

/// LoRAs from the models folder's `loras/`: listed, offered for the models that take them, merged
/// into a job's model (the picture changes; the metadata records each LoRA), read from a form's
/// rows, and refused with a reason for anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loras_from_the_folder_merge_into_jobs() {
    let data = data_dir("models-loras");
    let models = models_dir("loras", &["sd/sd1", "wan/wan1"]);
    std::fs::create_dir_all(models.join("loras")).unwrap();
    for file in ["peft.safetensors", "kohya.safetensors"] {
        std::fs::copy(fixtures().join("sd/sd1-lora").join(file), models.join("loras").join(file)).unwrap();
    }
    std::fs::copy(fixtures().join("wan/wan1-lora/comfyui.safetensors"), models.join("loras/wan-comfyui.safetensors"))
        .unwrap();
    let (app, _jobs) = start_with(&data, models).await;
    let (status, listed) = send_json(&app, get("/api/loras")).await;
    let all = json!({"loras": ["kohya.safetensors", "peft.safetensors", "wan-comfyui.safetensors"]});
    assert_eq!((status, listed), (StatusCode::OK, all));
    let (_, infos) = send_json(&app, get("/api/models")).await;
    let takes = |id: &str| infos.as_array().unwrap().iter().find(|m| m["id"] == id).unwrap()["takes_loras"].clone();
    assert_eq!((takes("sd1"), takes("wan1"), takes("vidplay-toy-1")), (json!(true), json!(true), json!(false)));
    // A Wan LoRA in ComfyUI's naming, on the Wan fixture.
    let wan = json!({"model": "wan1", "prompt": "a red ball", "width": 48, "height": 32, "frames": 5, "steps": 2,
        "loras": [{"file": "wan-comfyui.safetensors", "scale": 0.9}]});
    let (status, queued) = send_json(&app, post_json(wan)).await;
    assert_eq!(status, StatusCode::CREATED, "{queued}");
    let id = queued["id"].as_str().unwrap().to_string();
    let done = wait_for(&app, &id, |j| j["state"] != "queued" && j["state"] != "running").await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, video) = send_json(&app, get(&format!("/api/videos/{id}"))).await;
    assert_eq!(video["metadata"]["loras"][0]["file"], "wan-comfyui.safetensors", "{video}");
    // An SD LoRA names nothing of Wan: the job fails saying so.
    let wrong = json!({"model": "wan1", "prompt": "a red ball", "width": 48, "height": 32, "frames": 5, "steps": 1,
        "loras": [{"file": "peft.safetensors"}]});
    let (_, queued) = send_json(&app, post_json(wrong)).await;
    let failed =
        wait_for(&app, queued["id"].as_str().unwrap(), |j| j["state"] != "queued" && j["state"] != "running").await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["message"].as_str().unwrap().contains("updates the transformer"), "{failed}");

    let job = |loras: serde_json::Value| json!({"model": "sd1", "prompt": "a red cat in space", "width": 64, "height": 64, "steps": 3, "seed": 4, "loras": loras});
    let mut images = Vec::new();
    for loras in [json!([{"file": "peft.safetensors", "scale": 0.8}]), json!([])] {
        let (status, queued) = send_json(&app, post_json(job(loras))).await;
        assert_eq!(status, StatusCode::CREATED, "{queued}");
        let id = queued["id"].as_str().unwrap().to_string();
        let done = wait_for(&app, &id, |j| j["state"] != "queued" && j["state"] != "running").await;
        assert_eq!(done["state"], "done", "{done}");
        let (_, video) = send_json(&app, get(&format!("/api/videos/{id}"))).await;
        images.push((video, send(&app, get(&format!("/media/{id}/image.png"))).await.1));
    }
    let recorded = &images[0].0["metadata"]["loras"][0];
    assert_eq!((&recorded["file"], &recorded["scale"]), (&json!("peft.safetensors"), &json!(0.8)), "{recorded}");
    assert_eq!(recorded["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(images[0].0["params"]["loras"], json!([{"file": "peft.safetensors", "scale": 0.8}]));
    assert!(images[1].0["metadata"].get("loras").is_none());
    assert_ne!(images[0].1, images[1].1, "the LoRA changes the picture");
    // Remixing it opens the form on that model, with its LoRA rows.
    let (_, html) = send(&app, get(&format!("/?remix={}", images[0].0["id"].as_str().unwrap()))).await;
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains(r#"name="lora""#) && html.contains(r#"name="lora_scale""#), "LoRA rows");
    assert!(html.contains(r#"<option value="peft.safetensors" selected"#), "the remixed LoRA is chosen");

    // A form's rows: a LoRA with its scale, then a row left at none.
    let form = multipart(
        &[
            ("model", "sd1"),
            ("prompt", "a dog"),
            ("width", "64"),
            ("height", "64"),
            ("steps", "1"),
            ("lora", "kohya.safetensors"),
            ("lora_scale", "0.5"),
            ("lora", ""),
            ("lora_scale", "1"),
        ],
        None,
    );
    let (status, queued) = send_json(&app, post_multipart(form)).await;
    assert_eq!(status, StatusCode::CREATED, "{queued}");
    assert_eq!(queued["params"]["loras"], json!([{"file": "kohya.safetensors", "scale": 0.5}]));

    for (body, needle) in [
        (
            json!({"model": "vidplay-toy-1", "prompt": "a red ball", "loras": [{"file": "peft.safetensors"}]}),
            "takes no LoRAs",
        ),
        (job(json!([{"file": "other.safetensors"}])), "no LoRA \"other.safetensors\""),
        (job(json!([{"file": "../peft.safetensors"}])), "no LoRA"),
        (job(json!([{"file": "peft.safetensors", "scale": 9}])), "between -4 and 4"),
        (job(serde_json::Value::Array(vec![json!({"file": "peft.safetensors"}); 5])), "at most 4"),
    ] {
        assert_rejected(&app, post_json(body), StatusCode::BAD_REQUEST, needle).await;
    }
    let _ = std::fs::remove_dir_all(&data);
}
