//! A video's page: player, prompt, every parameter, seed, timings, source image, downloads,
//! remix and delete (with confirmation).

use crate::calls::{DeleteVideo, video_by_id};
use crate::format;
use crate::types::Video;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

#[component]
pub fn VideoPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let video = Resource::new(id, video_by_id);
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match video.await {
                    Ok(Some(v)) => view! { <VideoDetails video=v/> }.into_any(),
                    Ok(None) => {
                        crate::respond_not_found();
                        view! {
                            <Title text="Video not found"/>
                            <section class="empty">
                                <h1>"No such video"</h1>
                                <p>"It may have been deleted. " <A href="/gallery">"Back to the gallery"</A></p>
                            </section>
                        }.into_any()
                    }
                    Err(e) => view! { <p class="error" role="alert">{format!("The video cannot be read: {e}")}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn meta_str(v: &Video, path: &[&str]) -> Option<String> {
    let mut value = &v.metadata;
    for key in path {
        value = match key.parse::<usize>() {
            Ok(i) => value.get(i)?,
            Err(_) => value.get(key)?,
        };
    }
    Some(match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.as_f64().map_or(n.to_string(), |f| if f.fract() == 0.0 { format!("{f}") } else { format!("{f:.2}") }),
        other => other.to_string(),
    })
}

#[component]
fn VideoDetails(video: Video) -> impl IntoView {
    let p = &video.params;
    let native = meta_str(&video, &["resolution", "native", "0"]).unwrap_or_default();
    let display = meta_str(&video, &["resolution", "display", "0"]).unwrap_or_default();
    let native_h = meta_str(&video, &["resolution", "native", "1"]).unwrap_or_default();
    let display_h = meta_str(&video, &["resolution", "display", "1"]).unwrap_or_default();
    let timing = |k: &str| meta_str(&video, &["timings", k]).and_then(|s| s.parse::<f64>().ok()).map(format::seconds).unwrap_or_default();
    if video.is_image() {
        return view! { <ImageDetails video/> }.into_any();
    }
    let rows: Vec<(&'static str, String)> = vec![
        ("Mode", video.mode.label().to_string()),
        ("Model", p.model.clone()),
        ("Seed", p.seed.map(|s| s.to_string()).unwrap_or_default()),
        ("Frames", p.frames.to_string()),
        ("Frames per second", p.fps.to_string()),
        ("Steps", p.steps.to_string()),
        ("Guidance", p.guidance.to_string()),
        ("Image guidance", p.image_guidance.to_string()),
        ("Motion strength", p.motion.to_string()),
        ("Resolution", format!("{native}×{native_h} generated, shown at {display}×{display_h}")),
        ("Device", meta_str(&video, &["device"]).unwrap_or_default()),
        ("Sampling time", timing("sampling_s")),
        ("Encoding time", timing("encode_s")),
        ("Created", format::utc(video.created_ms)),
    ];
    let id = video.id.clone();
    let title = if p.prompt.is_empty() { "Untitled video".to_string() } else { p.prompt.clone() };
    view! {
        <Title text=title.clone()/>
        <article class="video-page">
            <h1>{title}</h1>
            <video class="player" src=video.video_url() poster=video.poster_url() controls autoplay loop muted playsinline></video>
            <div class="actions">
                <a class="button primary" href=format!("/?remix={id}")>"Remix"</a>
                <a class="button" href=format!("{}?download", video.video_url()) download=format!("vidplay-{id}.mp4")>"Download video (MP4)"</a>
                <a class="button" href=format!("{}?download", video.gif_url()) download=format!("vidplay-{id}.gif")>"Download GIF"</a>
                <a class="button" href=format!("{}?download", video.frames_url()) download=format!("vidplay-{id}-frames.zip")>"Download frames (PNG, zip)"</a>
            </div>
            {video.source_url().map(|src| view! {
                <figure class="source">
                    <img src=src alt="The image this video animates" width="128" height="128"/>
                    <figcaption>"Source image (as the model saw it)"</figcaption>
                </figure>
            })}
            {video.keyframe_url().map(|src| {
                let by = meta_str(&video, &["keyframe", "model"]).unwrap_or_default();
                let link = src.clone();
                view! {
                    <figure class="source">
                        <a href=link><img src=src alt="The keyframe this video animates" width="128"/></a>
                        <figcaption>{format!("Keyframe, made from the prompt by {by}, then animated")}</figcaption>
                    </figure>
                }
            })}
            <ParamsTable rows/>
            <DeleteForm id/>
        </article>
    }
    .into_any()
}

#[component]
fn ParamsTable(rows: Vec<(&'static str, String)>) -> impl IntoView {
    view! {
        <table class="params">
            <caption>"Parameters"</caption>
            <tbody>
                {rows.into_iter().map(|(k, v)| view! { <tr><th scope="row">{k}</th><td>{v}</td></tr> }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn DeleteForm(id: String) -> impl IntoView {
    let delete = ServerAction::<DeleteVideo>::new();
    view! {
        <details class="danger">
            <summary>"Delete…"</summary>
            <ActionForm action=delete>
                <input type="hidden" name="id" value=id/>
                <p>"Delete this result and its files? This cannot be undone."</p>
                <button type="submit" class="danger">"Delete for good"</button>
            </ActionForm>
        </details>
    }
}

/// A keyframe's page: the image, its parameters, and the way on to a video.
#[component]
fn ImageDetails(video: Video) -> impl IntoView {
    let p = &video.params;
    let timing = |k: &str| meta_str(&video, &["timings", k]).and_then(|s| s.parse::<f64>().ok()).map(format::seconds).unwrap_or_default();
    let rows: Vec<(&'static str, String)> = vec![
        ("Mode", video.mode.label().to_string()),
        ("Model", p.model.clone()),
        ("Negative prompt", p.negative.clone()),
        ("Seed", p.seed.map(|s| s.to_string()).unwrap_or_default()),
        ("Steps", p.steps.to_string()),
        ("Guidance", p.guidance.to_string()),
        ("Size", format!("{}×{}", p.width, p.height)),
        ("Scheduler", meta_str(&video, &["scheduler"]).unwrap_or_default()),
        ("Precision", meta_str(&video, &["precision"]).unwrap_or_default()),
        ("Device", meta_str(&video, &["device"]).unwrap_or_default()),
        ("Model load time", timing("load_s")),
        ("Sampling time", timing("sampling_s")),
        ("Decoding time", timing("decode_s")),
        ("Created", format::utc(video.created_ms)),
    ];
    let id = video.id.clone();
    let title = if p.prompt.is_empty() { "Untitled keyframe".to_string() } else { p.prompt.clone() };
    view! {
        <Title text=title.clone()/>
        <article class="video-page">
            <h1>{title.clone()}</h1>
            <img class="player" src=video.image_url() alt=format!("Keyframe: {title}")/>
            <div class="actions">
                <a class="button primary" href=format!("/?animate={id}")>"Animate this keyframe"</a>
                <a class="button" href=format!("/?remix={id}")>"Remix"</a>
                <a class="button" href=format!("{}?download", video.image_url()) download=format!("vidplay-{id}.png")>"Download image (PNG)"</a>
            </div>
            <ParamsTable rows/>
            <DeleteForm id/>
        </article>
    }
}
