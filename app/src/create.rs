//! The Create page: build a prompt from chips or free text, optionally upload an image to
//! animate, set the parameters, and generate. Without JavaScript the form still posts to
//! `/api/jobs` and lands on the queue.

use crate::calls::{describe_model, example_images, list_models, read_prompt, recent_prompts, surprise_prompt, video_by_id};
use crate::job_card::JobCard;
use crate::prompt_builder::{apply_chip, contains_phrase};
use crate::types::{Job, JobParams, Mode, ModelInfo};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// A parameter's bounds, from the table the API checks against.
fn lim(name: &str) -> crate::limits::NumberLimit {
    crate::limits::number(name)
}

#[component]
pub fn CreatePage() -> impl IntoView {
    let query = use_query_map();
    let info = Resource::new(|| (), |_| describe_model());
    let models = Resource::new(|| (), |_| list_models());
    let examples = Resource::new(|| (), |_| example_images());
    let recent = Resource::new(|| (), |_| recent_prompts());
    // Remix: start from a video's parameters.
    let remix_id = move || query.with(|q| q.get("remix"));
    let remix = Resource::new(remix_id, |id| async move {
        match id {
            Some(id) => video_by_id(id).await.ok().flatten(),
            None => None,
        }
    });

    view! {
        <Title text="Create"/>
        <h1>"Create a video"</h1>
        <Suspense fallback=|| view! { <p>"Loading the model…"</p> }>
            {move || Suspend::new(async move {
                let info = info.await;
                let models = models.await.unwrap_or_default();
                let remix = remix.await;
                let examples = examples.await.unwrap_or_default();
                let recent: Vec<String> = recent.await.unwrap_or_default();
                match info {
                    Ok(info) => {
                        let (start, start_mode, source) = match remix {
                            Some(v) => {
                                let source = v.source_url();
                                (v.params, v.mode, source)
                            }
                            None => {
                                // "Animate this keyframe": a text-to-image result as the image to animate.
                                let animate = query.with_untracked(|q| q.get("animate")).filter(|id| crate::types::is_valid_id(id));
                                let start = JobParams { prompt: query.with_untracked(|q| q.get("prompt").unwrap_or_default()), ..JobParams::default() };
                                match animate {
                                    Some(id) => (start, Mode::ImageToVideo, Some(format!("/media/{id}/image.png"))),
                                    None => (start, Mode::TextToVideo, None),
                                }
                            }
                        };
                        view! { <CreateForm info models start start_mode source examples recent/> }.into_any()
                    }
                    Err(e) => view! { <p class="error" role="alert">{format!("The server cannot describe its model: {e}")}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn CreateForm(
    info: ModelInfo,
    /// Every model, the built-in one first.
    models: Vec<ModelInfo>,
    start: JobParams,
    start_mode: Mode,
    /// The source image of a remixed image-to-video clip.
    source: Option<String>,
    examples: Vec<String>,
    recent: Vec<String>,
) -> impl IntoView {
    let prompt = RwSignal::new(start.prompt.clone());
    let mode = RwSignal::new(start_mode);
    let image_models: Vec<String> =
        models.iter().filter(|m| m.modes.contains(&Mode::TextToImage)).map(|m| m.id.clone()).collect();
    let model_id = RwSignal::new(if start.model.is_empty() { info.id.clone() } else { start.model.clone() });
    // Installed image-to-video models (Stable Video Diffusion): they take a size too.
    let video_models: Vec<String> =
        models.iter().filter(|m| m.id != info.id && m.modes.contains(&Mode::ImageToVideo)).map(|m| m.id.clone()).collect();
    let is_svd = {
        let video_models = video_models.clone();
        Memo::new(move |_| video_models.contains(&model_id.get()))
    };
    let info_frames = info.frames;
    let steps = RwSignal::new(start.steps.to_string());
    let guidance = RwSignal::new(start.guidance.to_string());
    let is_image = move || mode.get() == Mode::TextToImage;
    let info_max_steps = info.max_steps;
    let image_max_steps = models.iter().filter(|m| m.modes.contains(&Mode::TextToImage)).map(|m| m.max_steps).max().unwrap_or(150);
    // Switching between video and keyframe models: the model and sensible defaults follow.
    let choose = {
        let image_models = image_models.clone();
        let builtin = info.id.clone();
        move |m: Mode, model: Option<String>| {
            let was_image = mode.get_untracked() == Mode::TextToImage;
            mode.set(m);
            if m == Mode::TextToImage {
                let pick = model.or_else(|| image_models.first().cloned()).unwrap_or_default();
                model_id.set(pick);
                if !was_image {
                    steps.set("25".into());
                    guidance.set("7.5".into());
                }
            } else if was_image {
                model_id.set(builtin.clone());
                steps.set(JobParams::default().steps.to_string());
                guidance.set(JobParams::default().guidance.to_string());
            }
        }
    };
    let keep_seed = RwSignal::new(start.seed.is_some());
    let seed = RwSignal::new(start.seed.map(|s| s.to_string()).unwrap_or_default());
    let error = RwSignal::new(None::<String>);
    let jobs = RwSignal::new(Vec::<RwSignal<Job>>::new());
    let preview = RwSignal::new(source.clone());
    let example = RwSignal::new(source.as_ref().map(|_| "remix".to_string()));
    let busy = RwSignal::new(false);
    crate::job_card::follow_jobs(jobs, false);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let file_ref = NodeRef::<leptos::html::Input>::new();

    // How the model reads the prompt, as it is typed.
    let reading = Resource::new(move || prompt.get(), |p| async move {
        if p.trim().is_empty() { None } else { read_prompt(p).await.ok() }
    });
    let surprise = Action::new(move |_: &()| async move {
        surprise_prompt((prompt.get_untracked().len() as u64) ^ 0x9E37_79B9).await
    });
    Effect::new(move |_| {
        if let Some(Ok(p)) = surprise.value().get() {
            prompt.set(p);
        }
    });

    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            ev.prevent_default();
            let Some(form) = form_ref.get() else { return };
            busy.set(true);
            error.set(None);
            leptos::task::spawn_local(async move {
                match crate::browser::submit_job(&form).await {
                    Ok(job) => {
                        if keep_seed.get_untracked() {
                            seed.set(job.params.seed.unwrap_or_default().to_string());
                        }
                        let id = job.id.clone();
                        let card = RwSignal::new(job);
                        jobs.update(|j| j.insert(0, card));
                        // Updates sent before the card existed are missed; read the state once.
                        if let Ok(Some(now)) = crate::calls::job_by_id(id).await
                            && (now.state.is_finished() || now.step > card.get_untracked().step)
                        {
                            card.set(now);
                        }
                    }
                    Err(e) => error.set(Some(e)),
                }
                busy.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (ev, form_ref);
    };

    let on_file = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(input) = file_ref.get()
            && let Some(file) = crate::browser::chosen_file(&input)
        {
            preview.set(crate::browser::object_url(&file));
            example.set(None);
            mode.set(Mode::ImageToVideo);
        }
    };
    // Re-roll a keyframe: the same settings with a new random seed.
    let reroll = Callback::new(move |()| {
        keep_seed.set(false);
        seed.set(String::new());
        #[cfg(feature = "hydrate")]
        if let Some(form) = form_ref.get_untracked() {
            use wasm_bindgen::JsCast;
            // The field itself too: the signal reaches the DOM only after this submit is read.
            if let Ok(Some(input)) = form.query_selector("input[name=seed]")
                && let Ok(input) = input.dyn_into::<web_sys::HtmlInputElement>()
            {
                input.set_value("");
            }
            let _ = form.request_submit();
        }
    });
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        if let Some(input) = file_ref.get() {
            match crate::browser::take_image(&input, ev.data_transfer()) {
                Some(file) => {
                    preview.set(crate::browser::object_url(&file));
                    example.set(None);
                    mode.set(Mode::ImageToVideo);
                    error.set(None);
                }
                None => error.set(Some("Drop an image file (PNG, JPEG, GIF, WebP or BMP).".into())),
            }
        }
    };
    let on_paste = move |ev: leptos::ev::ClipboardEvent| {
        #[cfg(feature = "hydrate")]
        if let Some(input) = file_ref.get()
            && let Some(file) = crate::browser::take_image(&input, ev.clipboard_data())
        {
            ev.prevent_default();
            preview.set(crate::browser::object_url(&file));
            example.set(None);
            mode.set(Mode::ImageToVideo);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };

    let chip_groups = info.chips.clone();
    let size = info.size;
    let image_mode = move || mode.get() == Mode::ImageToVideo;

    view! {
        <form node_ref=form_ref class="create" action="/api/jobs" method="post" enctype="multipart/form-data"
            on:submit=on_submit on:paste=on_paste>
            <fieldset class="modes">
                <legend>"Mode"</legend>
                <label><input type="radio" name="mode" value="text-to-video"
                    prop:checked=move || !image_mode() checked={start_mode == Mode::TextToVideo}
                    on:change={let choose = choose.clone(); move |_| choose(Mode::TextToVideo, None)}/>" Text to video"</label>
                <label><input type="radio" name="mode" value="image-to-video"
                    prop:checked=image_mode checked={start_mode == Mode::ImageToVideo}
                    on:change={let choose = choose.clone(); move |_| choose(Mode::ImageToVideo, None)}/>" Image to video"</label>
                {(!image_models.is_empty()).then(|| {
                    let choose = choose.clone();
                    view! {
                        <label><input type="radio" name="mode" value="text-to-image"
                            prop:checked=is_image checked={start_mode == Mode::TextToImage}
                            on:change=move |_| choose(Mode::TextToImage, None)/>" Keyframe (text to image)"</label>
                    }
                })}
            </fieldset>

            <section class="builder" aria-labelledby="builder-title">
                <h2 id="builder-title">"Prompt"</h2>
                <div class="chips" class:hidden=is_image>
                {chip_groups.into_iter().map(|group| {
                    let phrases = group.phrases.clone();
                    view! {
                        <div class="chip-group" role="group" aria-label=group.name.clone()>
                            <span class="chip-label">{group.name.clone()}</span>
                            {group.phrases.iter().cloned().map(|phrase| {
                                let phrases = phrases.clone();
                                let p2 = phrase.clone();
                                let p3 = phrase.clone();
                                view! {
                                    <button type="button" class="chip"
                                        aria-pressed=move || contains_phrase(&prompt.get(), &p2).to_string()
                                        on:click=move |_| prompt.update(|t| *t = apply_chip(t, &phrases, &p3))>
                                        {phrase}
                                    </button>
                                }
                            }).collect_view()}
                        </div>
                    }
                }).collect_view()}
                </div>
                <label for="prompt">{move || if is_image() { "Prompt" } else { "Assembled prompt (editable)" }}</label>
                <textarea id="prompt" name="prompt" rows="2" maxlength=crate::limits::MAX_PROMPT_CHARS
                    placeholder="a red ball bouncing on a grass field, camera pans left"
                    prop:value=move || prompt.get()
                    on:input:target=move |ev| prompt.set(ev.target().value())>
                    {start.prompt.clone()}
                </textarea>
                <div class="reading" aria-live="polite" class:hidden=is_image>
                    <Transition fallback=|| ()>
                        {move || reading.get().flatten().map(|r| {
                            let understood = r.understood.join(", ");
                            let ignored = r.ignored;
                            view! {
                                {(!understood.is_empty()).then(|| view! { <span class="understood">"Understood: " {understood}</span> })}
                                {(!ignored.is_empty()).then(|| view! {
                                    <span class="ignored">"Ignored (the model does not know these words): "
                                        {ignored.into_iter().map(|w| view! { <mark>{w}</mark>" " }).collect_view()}
                                    </span>
                                })}
                            }
                        })}
                    </Transition>
                </div>
                <div class="row">
                    <button type="button" class="secondary" on:click=move |_| { surprise.dispatch(()); }>"Surprise me"</button>
                    <button type="button" class="secondary" on:click=move |_| prompt.set(String::new())>"Clear"</button>
                </div>
                {(!recent.is_empty()).then(|| view! {
                    <details class="recent">
                        <summary>"Recent prompts"</summary>
                        <ul>
                            {recent.into_iter().map(|p| {
                                let p2 = p.clone();
                                view! { <li><button type="button" class="link" on:click=move |_| prompt.set(p2.clone())>{p}</button></li> }
                            }).collect_view()}
                        </ul>
                    </details>
                })}
            </section>

            <section class="upload" class:hidden=move || !image_mode() aria-labelledby="upload-title">
                <h2 id="upload-title">"Image to animate"</h2>
                <div class="dropzone" on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
                    <label for="image">"Drop an image here, paste one, or choose a file"</label>
                    <input id="image" type="file" name="image" accept="image/png,image/jpeg,image/gif,image/webp,image/bmp"
                        node_ref=file_ref on:change=on_file/>
                    <Show when=move || preview.get().is_some()>
                        <figure class="preview">
                            <div class="crop" style=format!("--native: {size}px")>
                                <img src=move || preview.get().unwrap_or_default() alt="The image to animate"/>
                            </div>
                            <figcaption>{format!("The model sees the centre square, at {size}×{size} pixels.")}</figcaption>
                        </figure>
                    </Show>
                </div>
                <fieldset class="examples">
                    <legend>"Or start from an example"</legend>
                    {examples.into_iter().map(|name| {
                        let n2 = name.clone();
                        let n3 = name.clone();
                        let n4 = name.clone();
                        view! {
                            <label class="example">
                                <input type="radio" name="example" value=name.clone()
                                    prop:checked=move || example.get().as_deref() == Some(n2.as_str())
                                    on:change=move |_| {
                                        example.set(Some(n3.clone()));
                                        preview.set(Some(format!("/examples/{n3}")));
                                        mode.set(Mode::ImageToVideo);
                                        #[cfg(feature = "hydrate")]
                                        if let Some(input) = file_ref.get_untracked() { input.set_value(""); }
                                    }/>
                                <img src=format!("/examples/{n4}") alt=format!("Example {name}") width="64" height="64"/>
                            </label>
                        }
                    }).collect_view()}
                    {source.clone().map(|src| view! {
                        <label class="example">
                            <input type="radio" name="source" value=src.clone() checked=true/>
                            <img src=src alt="The remixed video's source image" width="64" height="64"/>
                        </label>
                    })}
                </fieldset>
            </section>

            <section class="params" aria-labelledby="params-title">
                <h2 id="params-title">"Parameters"</h2>
                <div class="grid-params">
                    <label>"Model"
                        <select name="model" prop:value=move || model_id.get()
                            on:change:target={
                                let choose = choose.clone();
                                let image_models = image_models.clone();
                                let video_models = video_models.clone();
                                move |ev| {
                                    let picked = ev.target().value();
                                    if image_models.contains(&picked) {
                                        choose(Mode::TextToImage, Some(picked));
                                    } else if video_models.contains(&picked) {
                                        if mode.get_untracked() == Mode::TextToImage { choose(Mode::TextToVideo, None); }
                                        model_id.set(picked);
                                        steps.set("25".into());
                                        guidance.set("3".into());
                                    } else {
                                        model_id.set(picked);
                                        if mode.get_untracked() == Mode::TextToImage { choose(Mode::TextToVideo, None); }
                                    }
                                }
                            }>
                            {models.iter().map(|m| {
                                let id = m.id.clone();
                                let label = if m.modes.contains(&Mode::TextToImage) { format!("{id} (keyframes)") } else { id.clone() };
                                view! { <option value=id.clone() selected=model_id.get_untracked() == id>{label}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                    <label class:hidden=move || !is_image()>"Negative prompt"
                        <input type="text" name="negative" maxlength=crate::limits::MAX_PROMPT_CHARS placeholder="what the image should not show" value=start.negative.clone()/>
                    </label>
                    <label class:hidden=move || !is_image() && !is_svd.get()>"Width"
                        <input type="number" name="width" min="64" max="1024" step="8" value=start.width.to_string()/>
                    </label>
                    <label class:hidden=move || !is_image() && !is_svd.get()>"Height"
                        <input type="number" name="height" min="64" max="1024" step="8" value=start.height.to_string()/>
                    </label>
                    <label class:hidden=is_image>"Frames"
                        <input type="number" name="frames" min="2" max=move || if is_svd.get() { "32".to_string() } else { info_frames.to_string() } value=start.frames.to_string()/>
                    </label>
                    <label class:hidden=is_image>"Frames per second"
                        <input type="number" name="fps" min=lim("fps").min max=lim("fps").max value=start.fps.to_string()/>
                    </label>
                    <label class:hidden=is_image>"Motion strength"
                        <input type="number" name="motion" min=lim("motion").min max=lim("motion").max step="0.1" value=start.motion.to_string()/>
                    </label>
                    <label>"Steps"
                        <input type="number" name="steps" min="1" max=move || if is_image() { image_max_steps.to_string() } else { info_max_steps.to_string() } value=steps.get_untracked()
                            prop:value=move || steps.get() on:input:target=move |ev| steps.set(ev.target().value())/>
                    </label>
                    <label>"Guidance"
                        <input type="number" name="guidance" min=lim("guidance").min max=lim("guidance").max step="0.5" value=guidance.get_untracked()
                            prop:value=move || guidance.get() on:input:target=move |ev| guidance.set(ev.target().value())/>
                    </label>
                    <label>"Seed"
                        <input type="number" name="seed" min="0" placeholder="random"
                            prop:value=move || seed.get() value=seed.get_untracked()
                            on:input:target=move |ev| { seed.set(ev.target().value()); keep_seed.set(!ev.target().value().is_empty()); }/>
                    </label>
                    <label class="inline">
                        <input type="checkbox" prop:checked=move || keep_seed.get() checked=keep_seed.get_untracked()
                            on:change:target=move |ev| { keep_seed.set(ev.target().checked()); if !ev.target().checked() { seed.set(String::new()); } }/>
                        " Keep this seed"
                    </label>
                </div>
            </section>

            <Show when=move || error.get().is_some()>
                <p class="error" role="alert">{move || error.get().unwrap_or_default()}</p>
            </Show>
            <button type="submit" class="primary" disabled=move || busy.get()>
                {move || if busy.get() { "Queuing…" } else { "Generate" }}
            </button>
        </form>
        <section class="jobs" aria-label="Your jobs">
            <For each=move || jobs.get() key=|j| j.with_untracked(|j| j.id.clone()) let:job>
                <JobCard job show_video=true on_reroll=reroll/>
            </For>
        </section>
    }
}
