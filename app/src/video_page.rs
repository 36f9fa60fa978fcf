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
        (
            "Frames",
            if spans_of(&video).is_empty() {
                p.frames.to_string()
            } else {
                format!("{} ({} per segment)", m.frames, p.frames)
            },
        ),
        ("Frames per second", p.fps.to_string()),
        ("Steps", p.steps.to_string()),
        ("Guidance", p.guidance.to_string()),
        ("Image guidance", p.image_guidance.to_string()),
        ("Motion strength", p.motion.to_string()),
        (
            "Resolution",
            if m.resolution.upscale_filter == "motion-warp" {
                format!("{display}×{display_h}, the picture's own (motion fields at {native}×{native_h})")
            } else {
                format!("{native}×{native_h} generated, shown at {display}×{display_h}")
            },
        ),
        ("Device", m.device.clone()),
        ("Sampling time", seconds(m.timings.sampling_s)),
        ("Encoding time", seconds(m.timings.encode_s)),
        ("Created", format::utc(video.created_ms)),
    ];
    let mut rows = rows;
    if p.guidance_2 > 0.0 {
        rows.insert(7, ("Guidance (low-noise expert)", p.guidance_2.to_string()));
    }
    if p.last_image {
        rows.insert(1, ("Last frame", "given (the clip ends on an uploaded picture)".to_string()));
    }
    let id = video.id.clone();
    let title = if p.prompt.is_empty() { "Untitled video".to_string() } else { p.prompt.clone() };
    let parent = (video.mode == crate::types::Mode::Extend && !p.source.is_empty()).then(|| p.source.clone());
    let spans = spans_of(&video);
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
                    <img src=src alt="The image this video animates" width="128"/>
                    <figcaption>"Source image"</figcaption>
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
            {(!p.group.is_empty()).then(|| {
                let group = p.group.clone();
                view! {
                    <p class="group">"One of a group of variants: "
                        <a class="button" href=format!("/compare?group={group}&blind=1")>"Compare the variants"</a>" "
                        <A href=format!("/gallery?group={group}")>"See them all"</A>
                    </p>
                }
            })}
            {parent.map(|parent| view! {
                <p class="parent">"Continues " <A href=format!("/v/{parent}")>"the video it extends"</A></p>
            })}
            {(!spans.is_empty()).then(|| view! { <Timeline video=video.clone() spans=spans.clone()/> })}
            <ExtendForm video=video.clone()/>
            <details class="edit-frame">
                <summary>"Edit a frame…"</summary>
                <crate::edit_chain::EditForm video=video.clone()/>
            </details>
            <crate::score_view::ScoresPanel scores=video.scores.clone()/>
            <ParamsTable rows owner=video.owner.clone()/>
            <DeleteForm id owner=video.owner.clone()/>
        </article>
    }
    .into_any()
}

/// A segment of a shot list or extension, as the result's details record it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Span {
    pub prompt: String,
    pub seed: u64,
    pub start: u32,
    pub frames: u32,
}

/// The segments a result was made of (empty for a single clip).
pub fn spans_of(video: &Video) -> Vec<Span> {
    video.metadata.details.get("segments").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
}

/// The hidden fields that make a job like `video`'s (model and settings), for the forms below.
fn kept_fields(video: &Video) -> impl IntoView + use<> {
    let p = &video.params;
    let fields = [
        ("model", p.model.clone()),
        ("frames", p.frames.to_string()),
        ("fps", p.fps.to_string()),
        ("steps", p.steps.to_string()),
        ("guidance", p.guidance.to_string()),
        ("guidance_2", p.guidance_2.to_string()),
        ("image_guidance", p.image_guidance.to_string()),
        ("width", p.width.to_string()),
        ("height", p.height.to_string()),
        ("negative", p.negative.clone()),
        ("keyframe_model", p.keyframe_model.clone()),
        ("memory", p.memory.clone()),
        ("keyframe_steps", p.keyframe_steps.to_string()),
        ("keyframe_guidance", p.keyframe_guidance.to_string()),
    ];
    fields.into_iter().map(|(name, value)| view! { <input type="hidden" name=name value=value/> }).collect_view()
}

/// The clip's segments on a timeline (the extended video's own frames first), each with a
/// button that makes the whole shot list again with a new seed for that segment alone (the
/// segments before it come out the same; the ones after it continue from the new one).
#[component]
fn Timeline(video: Video, spans: Vec<Span>) -> impl IntoView {
    let total = video.metadata.frames.max(1) as f32;
    let fps = video.metadata.fps.max(1) as f32;
    let p = video.params.clone();
    let source_frames = spans.first().map_or(0, |s| s.start);
    let rerolls = (0..spans.len()).map(|k| {
        let span = spans[k].clone();
        let width = format!("width: {:.2}%", 100.0 * span.frames as f32 / total);
        let when = format!("{:.1}–{:.1} s", span.start as f32 / fps, (span.start + span.frames) as f32 / fps);
        let segments = spans.iter().enumerate().map(|(j, s)| {
            let seed = if j == k { "new".to_string() } else { s.seed.to_string() };
            view! {
                <input type="hidden" name="segment" value=s.prompt.clone()/>
                <input type="hidden" name="segment_seed" value=seed/>
            }
        }).collect_view();
        let task = (!p.task.is_empty()).then(|| view! {
            <input type="hidden" name="task" value=p.task.clone()/>
            <input type="hidden" name="source" value=p.source.clone()/>
        });
        let image = (p.task.is_empty()).then(|| video.source_url()).flatten().map(|src| view! { <input type="hidden" name="source" value=src/> });
        view! {
            <li class="segment" style=width>
                <span class="segment-prompt">{span.prompt.clone()}</span>
                <span class="segment-time">{when}</span>
                <form action="/api/jobs" method="post" enctype="multipart/form-data">
                    {kept_fields(&video)}
                    <input type="hidden" name="motion" value=p.motion.to_string()/>
                    <input type="hidden" name="seed" value=p.seed.map(|s| s.to_string()).unwrap_or_default()/>
                    {task}
                    {image}
                    {segments}
                    <button type="submit" class="small" title="Make this segment again with a new seed">"Re-roll"</button>
                </form>
            </li>
        }
    }).collect_view();
    view! {
        <section class="timeline" aria-label="Segments">
            <h2>"Segments"</h2>
            <ol class="segments">
                {(source_frames > 0).then(|| view! {
                    <li class="segment source-part" style=format!("width: {:.2}%", 100.0 * source_frames as f32 / total)>
                        <span class="segment-prompt">"the video it continues"</span>
                        <span class="segment-time">{format!("0–{:.1} s", source_frames as f32 / fps)}</span>
                    </li>
                })}
                {rerolls}
            </ol>
        </section>
    }
}

/// Extend: a new job that continues this video from its last frame, with the prompt editable
/// and every other setting kept unless changed.
#[component]
fn ExtendForm(video: Video) -> impl IntoView {
    let p = video.params.clone();
    let prompt = spans_of(&video).last().map(|s| s.prompt.clone()).unwrap_or_else(|| p.prompt.clone());
    view! {
        <details class="extend">
            <summary>"Extend…"</summary>
            <form class="extend-form" action="/api/jobs" method="post" enctype="multipart/form-data">
                <input type="hidden" name="task" value="extend"/>
                <input type="hidden" name="source" value=video.id.clone()/>
                {kept_fields(&video)}
                <label>"What happens next"
                    <textarea name="prompt" rows="2" maxlength="1000">{prompt}</textarea>
                </label>
                <label>"Then (optional, one prompt per line: more segments)"
                    <textarea name="shots" rows="2" maxlength="4000"></textarea>
                </label>
                <label>"Motion strength"
                    <input type="number" name="motion" min="0" max="2" step="0.1" value=p.motion.to_string()/>
                </label>
                <button type="submit" class="primary">"Extend"</button>
            </form>
        </details>
    }
}

#[component]
fn ParamsTable(
    rows: Vec<(&'static str, String)>,
    /// Who made it (a named token's name), on a server with named tokens.
    owner: String,
) -> impl IntoView {
    let mut rows = rows;
    if !owner.is_empty() {
        rows.insert(0, ("Made by", owner));
    }
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
fn DeleteForm(id: String, owner: String) -> impl IntoView {
    // Only its owner or the administrator may delete it: others are not offered to.
    let viewer = use_context::<crate::people::Viewer>().unwrap_or_default();
    if !viewer.may_change(&owner) {
        return None;
    }
    let delete = ServerAction::<DeleteVideo>::new();
    Some(view! {
        <details class="danger">
            <summary>"Delete…"</summary>
            <ActionForm action=delete>
                <input type="hidden" name="id" value=id/>
                <p>"Delete this result and its files? This cannot be undone."</p>
                <button type="submit" class="danger">"Delete for good"</button>
            </ActionForm>
        </details>
    })
}

/// A keyframe's or an edited image's page: the image, its parameters, its versions (an edit),
/// the edit form, and the way on to a video.
#[component]
fn ImageDetails(video: Video) -> impl IntoView {
    let p = &video.params;
    let m = &video.metadata;
    let edited = video.mode == crate::types::Mode::Edit;
    let detail = |k: &str| m.details.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let mut rows: Vec<(&'static str, String)> = vec![
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
    if edited {
        rows.insert(6, ("Image guidance", p.image_guidance.to_string()));
        // An edit's size is the picture's, not a setting.
        let [w, h] = m.resolution.display;
        rows[7] = ("Size", format!("{w}×{h}"));
    }
    let id = video.id.clone();
    let title = match (p.prompt.is_empty(), edited) {
        (false, _) => p.prompt.clone(),
        (true, true) => "Untitled edit".to_string(),
        (true, false) => "Untitled keyframe".to_string(),
    };
    let what = if edited { "Edited image" } else { "Keyframe" };
    view! {
        <Title text=title.clone()/>
        <article class="video-page">
            <h1>{title.clone()}</h1>
            <img class="player" src=video.image_url() alt=format!("{what}: {title}")/>
            <div class="actions">
                <a class="button primary" href=format!("/?animate={id}")>{if edited { "Animate this" } else { "Animate this keyframe" }}</a>
                <a class="button" href=format!("/?remix={id}")>"Remix"</a>
                <a class="button" href=format!("{}?download", video.image_url()) download=format!("vidplay-{id}.png")>"Download image (PNG)"</a>
            </div>
            {edited.then(|| view! { <crate::edit_chain::EditChain video=video.clone()/> })}
            <crate::edit_chain::EditForm video=video.clone()/>
            <ParamsTable rows owner=video.owner.clone()/>
            <DeleteForm id owner=video.owner.clone()/>
        </article>
    }
}
