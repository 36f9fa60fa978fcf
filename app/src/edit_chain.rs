//! Editing an image step by step, like Emu Edit: the edit form (an instruction, applied to this
//! image or a frame of this clip), the strip of versions an edited image was made from (each
//! one a link: go back to it, and the next edit branches from there), and a before/after
//! slider against the version it was made from.

use crate::calls::{list_models, video_chain};
use crate::job_card::JobCard;
use crate::media_files::{MediaFile, url};
use crate::types::{Job, Mode, Video};
use leptos::prelude::*;
use leptos_router::components::A;

/// The strip of versions, the original first, and the before/after slider.
#[component]
pub fn EditChain(video: Video) -> impl IntoView {
    let id = video.id.clone();
    let chain = Resource::new(move || id.clone(), video_chain);
    let current = video.id.clone();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let current = current.clone();
                Suspend::new(async move {
                    let chain = chain.await.unwrap_or_default();
                    let Some(last) = chain.last().cloned() else { return ().into_any() };
                    let first = chain.first().cloned().unwrap_or_else(|| last.clone());
                    // The picture the first edit started from (an upload, or another result).
                    let original = (first.mode == Mode::Edit).then(|| first.source_url()).flatten();
                    let parent = if chain.len() >= 2 {
                        Some(chain[chain.len() - 2].image_url())
                    } else {
                        (last.mode == Mode::Edit).then(|| last.source_url()).flatten()
                    };
                    let versions = chain.into_iter().enumerate().map(|(i, v)| {
                        let here = v.id == current;
                        let label = format!("{}. {}", i + 1, v.params.prompt);
                        view! {
                            <li class="version" aria-current=here.then_some("true")>
                                <A href=format!("/v/{}", v.id)>
                                    <img src=v.image_url() alt=format!("Version {}", i + 1) width="96"/>
                                    <span>{label}</span>
                                </A>
                            </li>
                        }
                    }).collect_view();
                    view! {
                        <section class="edit-chain" aria-label="Versions">
                            <h2>"Versions"</h2>
                            <p class="note">"Each edit changes the one before it. Open any version to go back to it: the next edit made there branches from it."</p>
                            <ol class="versions">
                                {original.map(|src| view! {
                                    <li class="version original">
                                        <a href=src.clone()><img src=src.clone() alt="The original" width="96"/><span>"Original"</span></a>
                                    </li>
                                })}
                                {versions}
                            </ol>
                            {parent.map(|before| view! { <Compare before after=last.image_url()/> })}
                        </section>
                    }
                    .into_any()
                })
            }}
        </Suspense>
    }
}

/// Before and after, one over the other, split where the slider is.
#[component]
fn Compare(before: String, after: String) -> impl IntoView {
    let split = RwSignal::new(50.0f64);
    view! {
        <figure class="compare">
            <div class="compare-frame">
                <img class="before" src=before alt="Before this edit"/>
                <img class="after" src=after alt="After this edit" style=move || format!("clip-path: inset(0 0 0 {:.1}%)", split.get())/>
            </div>
            <label>"Before ◀ ▶ after"
                <input type="range" class="compare-slider" min="0" max="100" step="1" value="50"
                    on:input:target=move |ev| split.set(ev.target().value().parse().unwrap_or(50.0))/>
            </label>
            <figcaption>"Left of the line: before this edit; right: after."</figcaption>
        </figure>
    }
}

/// An edit of this result: its image, or (for a clip) one of its frames.
#[component]
pub fn EditForm(video: Video) -> impl IntoView {
    let models = Resource::new(|| (), |_| list_models());
    let clip = !video.is_image();
    let frames = video.metadata.frames.max(1);
    let id = video.id.clone();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let id = id.clone();
                Suspend::new(async move {
                    let editors: Vec<_> = models.await.unwrap_or_default().into_iter().filter(|m| m.tasks.contains(&Mode::Edit)).collect();
                    if editors.is_empty() {
                        return view! {
                            <p class="note edit-none">"No image editor is installed: put an InstructPix2Pix-family model (a diffusers folder) in the models folder to edit images here."</p>
                        }.into_any();
                    }
                    view! { <EditFormFor id editors=editors clip frames/> }.into_any()
                })
            }}
        </Suspense>
    }
}

#[component]
fn EditFormFor(id: String, editors: Vec<crate::models::ModelInfo>, clip: bool, frames: u32) -> impl IntoView {
    let jobs = RwSignal::new(Vec::<RwSignal<Job>>::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    crate::job_card::follow_jobs(jobs, false);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            ev.prevent_default();
            let Some(form) = form_ref.get() else { return };
            busy.set(true);
            leptos::task::spawn_local(async move {
                crate::job_card::submit_to_cards(&form, jobs, error).await;
                busy.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (ev, form_ref);
    };
    let first = editors[0].clone();
    let default = |name: &str| first.param(name).map(|p| p.default.clone()).unwrap_or_default();
    let source = if clip { id.clone() } else { url(&id, MediaFile::Image) };
    view! {
        <section class="edit" aria-labelledby="edit-title">
            <h2 id="edit-title">{if clip { "Edit a frame" } else { "Edit this image" }}</h2>
            <form node_ref=form_ref class="edit-form" action="/api/jobs" method="post" enctype="multipart/form-data" on:submit=on_submit>
                <input type="hidden" name="task" value="edit"/>
                <input type="hidden" name="source" value=source/>
                <label>"Instruction"
                    <input type="text" name="prompt" required maxlength=crate::limits::MAX_PROMPT_CHARS placeholder="add snow"/>
                </label>
                {clip.then(|| view! {
                    <label>"Frame"
                        <input type="number" name="source_frame" min="0" max=(frames - 1).to_string() value="0"/>
                    </label>
                })}
                <label>"Editor"
                    <select name="model">
                        {editors.iter().map(|m| view! { <option value=m.id.clone()>{m.id.clone()}</option> }).collect_view()}
                    </select>
                </label>
                <details class="edit-settings">
                    <summary>"Settings"</summary>
                    <label>"Steps" <input type="number" name="steps" min="1" max="150" value=default("steps")/></label>
                    <label>"Guidance" <input type="number" name="guidance" min="1" max="20" step="0.5" value=default("guidance")/></label>
                    <label>"Image guidance" <input type="number" name="image_guidance" min="1" max="5" step="0.1" value=default("image_guidance")/></label>
                    <label>"Seed" <input type="number" name="seed" min="0" placeholder="random"/></label>
                </details>
                <Show when=move || error.get().is_some()>
                    <p class="error" role="alert">{move || error.get().unwrap_or_default()}</p>
                </Show>
                <button type="submit" class="primary" disabled=move || busy.get()>
                    {move || if busy.get() { "Queuing…" } else { "Edit" }}
                </button>
            </form>
            <div class="jobs">
                <For each=move || jobs.get() key=|j| j.with_untracked(|j| j.id.clone()) let:job>
                    <JobCard job show_video=true/>
                </For>
            </div>
        </section>
    }
}
