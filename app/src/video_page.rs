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

/// A duration for the table; blank when the phase did not happen.
fn seconds(s: f64) -> String {
    if s > 0.0 { format::seconds(s) } else { String::new() }
}

#[component]
fn VideoDetails(video: Video) -> impl IntoView {
    let p = &video.params;
    let m = &video.metadata;
    let [native, native_h] = m.resolution.native;
    let [display, display_h] = m.resolution.display;
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
        ("Device", m.device.clone()),
        ("Sampling time", seconds(m.timings.sampling_s)),
        ("Encoding time", seconds(m.timings.encode_s)),
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
                let by = video.metadata.keyframe.as_ref().map(|k| k.model.clone()).unwrap_or_default();
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
    let m = &video.metadata;
    let detail = |k: &str| m.details.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let rows: Vec<(&'static str, String)> = vec![
        ("Mode", video.mode.label().to_string()),
        ("Model", p.model.clone()),
        ("Negative prompt", p.negative.clone()),
        ("Seed", p.seed.map(|s| s.to_string()).unwrap_or_default()),
        ("Steps", p.steps.to_string()),
        ("Guidance", p.guidance.to_string()),
        ("Size", format!("{}×{}", p.width, p.height)),
        ("Scheduler", detail("scheduler")),
        ("Precision", m.precision.clone()),
        ("Device", m.device.clone()),
        ("Model load time", seconds(m.timings.load_s)),
        ("Sampling time", seconds(m.timings.sampling_s)),
        ("Decoding time", seconds(m.timings.decode_s)),
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
