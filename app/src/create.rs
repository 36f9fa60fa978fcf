//! The Create page: build a prompt from chips or free text, optionally upload an image to
//! animate, set the parameters, and generate. The parameters are drawn from the chosen model's
//! own description ([`ModelInfo`]), so the form offers exactly what the server accepts.
//! Dropping a video, GIF or image made here restores all its settings. Without JavaScript the
//! form still posts to `/api/jobs` and lands on the queue.

use crate::calls::{example_images, list_models, read_prompt, recent_prompts, surprise_prompt, video_by_id};
use crate::job_card::JobCard;
use crate::models::{ModelInfo, ParamKind, ParamSpec};
use crate::prompt_builder::{apply_chip, contains_phrase};
use crate::types::{Job, JobParams, Mode};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use std::collections::HashMap;

#[component]
pub fn CreatePage() -> impl IntoView {
    let query = use_query_map();
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
        <Suspense fallback=|| view! { <p>"Loading the models…"</p> }>
            {move || Suspend::new(async move {
                let models = models.await;
                let remix = remix.await;
                let examples = examples.await.unwrap_or_default();
                let recent: Vec<String> = recent.await.unwrap_or_default();
                match models {
                    Ok(models) if !models.is_empty() => {
                        let (start, start_mode, source) = match remix {
                            Some(v) => {
                                let source = v.source_url();
                                (v.params, v.mode, source)
                            }
                            None => {
                                // "Animate this keyframe": a text-to-image result as the image to animate.
                                let animate = query.with_untracked(|q| q.get("animate")).filter(|id| crate::types::is_valid_id(id));
                                let start = JobParams { prompt: query.with_untracked(|q| q.get("prompt").unwrap_or_default()), model: String::new(), ..JobParams::default() };
                                match animate {
                                    Some(id) => (start, Mode::ImageToVideo, Some(crate::media_files::url(&id, crate::media_files::MediaFile::Image))),
                                    None => (start, Mode::TextToVideo, None),
                                }
                            }
                        };
                        view! { <CreateForm models start start_mode source examples recent/> }.into_any()
                    }
                    Ok(_) => view! { <p class="error" role="alert">"The server has no models."</p> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{format!("The server cannot describe its models: {e}")}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The form's text of every parameter of `params` (as `set_value` reads it back).
fn form_values(params: &JobParams) -> HashMap<String, String> {
    use crate::models::ParamValue;
    let names = [
        "frames",
        "fps",
        "steps",
        "guidance",
        "guidance_2",
        "image_guidance",
        "motion",
        "width",
        "height",
        "keyframe_steps",
        "keyframe_guidance",
        "negative",
        "keyframe_model",
        "memory",
    ];
    names
        .into_iter()
        .filter_map(|n| {
            let text = match params.value(n)? {
                ParamValue::Number(v) => v.to_string(),
                ParamValue::Text(t) => t,
            };
            Some((n.to_string(), text))
        })
        .collect()
}

/// The form's text of every parameter at `info`'s defaults, for all its tasks (so switching
/// task on the same model finds every field filled).
fn default_values(info: &ModelInfo) -> HashMap<String, String> {
    let params = info.tasks.iter().fold(JobParams::default(), |p, &task| info.defaults(task, p));
    form_values(&params)
}

/// How the task is offered in the mode switch.
fn task_label(task: Mode) -> &'static str {
    match task {
        Mode::TextToVideo => "Text to video",
        Mode::ImageToVideo => "Image to video",
        Mode::TextToImage => "Keyframe (text to image)",
        Mode::Extend => "Extend a video",
        Mode::Edit => "Edit an image (instructions)",
    }
}

/// `mode` if `info` does it, else the task `info` does first.
fn task_for(info: &ModelInfo, mode: Mode) -> Mode {
    if info.tasks.contains(&mode) { mode } else { info.tasks.first().copied().unwrap_or(mode) }
}

/// The model to start with for `mode`: `wanted` if it does that, else the first that does.
fn pick_model(models: &[ModelInfo], wanted: &str, mode: Mode) -> ModelInfo {
    models
        .iter()
        .find(|m| m.id == wanted && m.tasks.contains(&mode))
        .or_else(|| models.iter().find(|m| m.tasks.contains(&mode)))
        .unwrap_or(&models[0])
        .clone()
}

/// One parameter's control, drawn from its description.
fn param_control(spec: &ParamSpec, values: RwSignal<HashMap<String, String>>) -> AnyView {
    let name = spec.name.clone();
    let current = {
        let name = name.clone();
        move || values.with(|v| v.get(&name).cloned().unwrap_or_default())
    };
    // Read once, untracked: the controls are redrawn when the model or task changes, not on
    // every keystroke.
    let initial = values.with_untracked(|v| v.get(&name).cloned().unwrap_or_default());
    let set = {
        let name = name.clone();
        move |value: String| {
            values.update(|v| {
                v.insert(name.clone(), value);
            })
        }
    };
    let label = spec.label.clone();
    let help = spec.help.clone();
    match &spec.kind {
        ParamKind::Integer | ParamKind::Number => view! {
            <label title=help.clone()>{label}
                <input type="number" name=name.clone() min=spec.min max=spec.max step=spec.step
                    value=initial.clone() prop:value=current.clone() on:input:target=move |ev| set(ev.target().value())/>
            </label>
        }
        .into_any(),
        ParamKind::Text => view! {
            <label title=help.clone()>{label}
                <input type="text" name=name.clone() maxlength=spec.max placeholder=help.clone()
                    value=initial.clone() prop:value=current.clone() on:input:target=move |ev| set(ev.target().value())/>
            </label>
        }
        .into_any(),
        // The file goes with the form under the parameter's name; nothing to keep in `values`.
        ParamKind::Image => view! {
            <label title=help.clone()>{label}
                <input type="file" name=name.clone() accept="image/png,image/jpeg,image/gif,image/webp,image/bmp"/>
            </label>
        }
        .into_any(),
        ParamKind::Choice(options) => {
            let options = options.clone();
            view! {
                <label title=help.clone()>{label}
                    <select name=name.clone() prop:value=current.clone() on:change:target=move |ev| set(ev.target().value())>
                        {options.into_iter().map(|o| {
                            let selected = initial == o;
                            view! { <option value=o.clone() selected=selected>{o.clone()}</option> }
                        }).collect_view()}
                    </select>
                </label>
            }
            .into_any()
        }
    }
}

#[component]
fn CreateForm(
    /// Every model, the default (built-in) one first.
    models: Vec<ModelInfo>,
    start: JobParams,
    start_mode: Mode,
    /// The source image of a remixed image-to-video clip.
    source: Option<String>,
    examples: Vec<String>,
    recent: Vec<String>,
) -> impl IntoView {
    let models = StoredValue::new(models);
    let start_loras = StoredValue::new(start.loras.clone());
    let first = pick_model(&models.get_value(), &start.model, start_mode);
    let start_mode = task_for(&first, start_mode);
    let prompt = RwSignal::new(start.prompt.clone());
    let mode = RwSignal::new(start_mode);
    let model = RwSignal::new(first.clone());
    // The text of every parameter, by name: the model's defaults, then the remixed settings.
    let values = RwSignal::new({
        let mut v = default_values(&first);
        if start.model == first.id {
            v.extend(form_values(&start));
        }
        v
    });
    let keep_seed = RwSignal::new(start.seed.is_some());
    let seed = RwSignal::new(start.seed.map(|s| s.to_string()).unwrap_or_default());
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let jobs = RwSignal::new(Vec::<RwSignal<Job>>::new());
    let preview = RwSignal::new(source.clone());
    // Animate many: how many pictures the file field holds (each becomes a clip of one group).
    let pictures = RwSignal::new(0u32);
    let example = RwSignal::new(source.as_ref().map(|_| "remix".to_string()));
    let busy = RwSignal::new(false);
    crate::job_card::follow_jobs(jobs, false);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let file_ref = NodeRef::<leptos::html::Input>::new();
    let tasks: Vec<Mode> = {
        let mut all: Vec<Mode> = Vec::new();
        for m in models.get_value() {
            for t in m.tasks {
                if !all.contains(&t) {
                    all.push(t);
                }
            }
        }
        all
    };

    // Switching model or task: the model follows the task (and the other way), and the
    // parameters start from the model's defaults.
    let choose = move |m: Mode, wanted: Option<String>| {
        let current = model.get_untracked();
        let all = models.get_value();
        let picked = match &wanted {
            // A model chosen by name: that one, on the task if it does it, else on its first.
            Some(id) => all.iter().find(|x| &x.id == id).cloned().unwrap_or_else(|| current.clone()),
            // A task chosen: the current model if it does it, else the first that does.
            None => pick_model(&all, &current.id, m),
        };
        let m = task_for(&picked, m);
        if picked.id != current.id {
            values.set(default_values(&picked));
            model.set(picked);
        }
        mode.set(m);
    };
    // Settings restored from a file: its model (if installed), task and every parameter.
    let restore = move |mode_of_file: Mode, params: JobParams| {
        let picked = pick_model(&models.get_value(), &params.model, mode_of_file);
        let m = task_for(&picked, mode_of_file);
        let mut v = default_values(&picked);
        if picked.id == params.model {
            v.extend(form_values(&params));
        }
        values.set(v);
        model.set(picked);
        mode.set(m);
        prompt.set(params.prompt.clone());
        if let Some(s) = params.seed {
            seed.set(s.to_string());
            keep_seed.set(true);
        }
    };

    // How the model reads the prompt, as it is typed.
    let reading = Resource::new(
        move || (prompt.get(), model.with(|m| m.reads_prompt)),
        |(p, reads)| async move { if !reads || p.trim().is_empty() { None } else { read_prompt(p).await.ok() } },
    );
    let surprise =
        Action::new(
            move |_: &()| async move { surprise_prompt((prompt.get_untracked().len() as u64) ^ 0x9E37_79B9).await },
        );
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
            leptos::task::spawn_local(async move {
                if let Some(job) = crate::job_card::submit_to_cards(&form, jobs, error).await
                    && keep_seed.get_untracked()
                {
                    seed.set(job.params.seed.unwrap_or_default().to_string());
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
            pictures.set(input.files().map_or(0, |f| f.length()));
            preview.set(crate::browser::object_url(&file));
            example.set(None);
            choose(if mode.get_untracked() == Mode::Edit { Mode::Edit } else { Mode::ImageToVideo }, None);
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
    // A dropped file: one made here restores its settings; another image is the one to animate.
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            let Some(file) = crate::browser::first_file(ev.data_transfer()) else { return };
            let kind = file.type_();
            if !matches!(
                kind.as_str(),
                "video/mp4" | "image/gif" | "image/png" | "image/jpeg" | "image/webp" | "image/bmp"
            ) {
                error.set(Some("Drop an image file (PNG, JPEG, GIF, WebP or BMP), or a video made here.".into()));
                return;
            }
            error.set(None);
            notice.set(None);
            leptos::task::spawn_local(async move {
                let can_carry = matches!(kind.as_str(), "video/mp4" | "image/gif" | "image/png");
                let settings = if can_carry { crate::browser::settings_of(&file).await } else { Err(String::new()) };
                match settings {
                    Ok(s) => {
                        restore(s.mode, s.params);
                        notice.set(Some(format!("Settings restored from {}.", file.name())));
                    }
                    Err(e) if kind == "video/mp4" => error.set(Some(e)),
                    Err(_) => {
                        if let Some(input) = file_ref.get_untracked() {
                            crate::browser::put_file(&input, &file);
                        }
                        pictures.set(1);
                        preview.set(crate::browser::object_url(&file));
                        example.set(None);
                        choose(if mode.get_untracked() == Mode::Edit { Mode::Edit } else { Mode::ImageToVideo }, None);
                    }
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = restore;
    };
    let on_paste = move |ev: leptos::ev::ClipboardEvent| {
        #[cfg(feature = "hydrate")]
        if let Some(input) = file_ref.get()
            && let Some(file) = crate::browser::take_image(&input, ev.clipboard_data())
        {
            ev.prevent_default();
            pictures.set(1);
            preview.set(crate::browser::object_url(&file));
            example.set(None);
            choose(if mode.get_untracked() == Mode::Edit { Mode::Edit } else { Mode::ImageToVideo }, None);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };

    let image_mode = move || matches!(mode.get(), Mode::ImageToVideo | Mode::Edit);
    let editing = move || mode.get() == Mode::Edit;
    let reads_prompt = move || model.with(|m| m.reads_prompt);
    // Prompt parts to click, where the model offers them (the built-in model's words, Wan's
    // camera, motion, light and style phrases).
    let has_chips = move || model.with(|m| !m.chips.is_empty());

    view! {
        <form node_ref=form_ref class="create" action="/api/jobs" method="post" enctype="multipart/form-data"
            on:submit=on_submit on:paste=on_paste on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
            <fieldset class="modes">
                <legend>"Mode"</legend>
                {tasks.into_iter().map(|task| view! {
                    <label><input type="radio" name="mode" value=task.as_str()
                        prop:checked=move || mode.get() == task checked={start_mode == task}
                        on:change=move |_| choose(task, None)/>" " {task_label(task)}</label>
                }).collect_view()}
            </fieldset>

            <section class="builder" aria-labelledby="builder-title">
                <h2 id="builder-title">"Prompt"</h2>
                <div class="chips" class:hidden=move || !has_chips() || mode.get() == Mode::TextToImage>
                {move || model.with(|m| m.chips.clone()).into_iter().map(|group| {
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
                <label for="prompt">{move || if editing() { "Instruction (what to change)" } else if has_chips() { "Assembled prompt (editable)" } else { "Prompt" }}</label>
                <textarea id="prompt" name="prompt" rows="2" maxlength=crate::limits::MAX_PROMPT_CHARS
                    placeholder="a red ball bouncing on a grass field, camera pans left"
                    prop:value=move || prompt.get()
                    on:input:target=move |ev| prompt.set(ev.target().value())>
                    {start.prompt.clone()}
                </textarea>
                <div class="reading" aria-live="polite" class:hidden=move || !reads_prompt()>
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
                <details class="shots" class:hidden=move || matches!(mode.get(), Mode::TextToImage | Mode::Edit)>
                    <summary>"Shot list: then…"</summary>
                    <label for="shots">"More segments, one prompt per line; each continues from the last frame of the one before"</label>
                    <textarea id="shots" name="shots" rows="3" maxlength="4000"
                        prop:disabled=move || matches!(mode.get(), Mode::TextToImage | Mode::Edit)
                        placeholder="camera pans right\nzoom in while it snows"></textarea>
                </details>
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
                <h2 id="upload-title">{move || if editing() { "Image to edit" } else { "Image to animate" }}</h2>
                <div class="dropzone">
                    <label for="image">"Drop an image here, paste one, or choose a file (or several: one clip each, as a group to compare). Drop a video, GIF or image made here to restore its settings."</label>
                    <input id="image" type="file" name="image" accept="image/png,image/jpeg,image/gif,image/webp,image/bmp"
                        multiple=move || !editing() node_ref=file_ref on:change=on_file/>
                    <Show when=move || { pictures.get() > 1 && !editing() }>
                        <p class="note" role="status">{move || format!(
                            "{} pictures: each is animated with these settings, as one group (compare them from any of their pages).",
                            pictures.get()
                        )}</p>
                    </Show>
                    <Show when=move || preview.get().is_some()>
                        <figure class="preview">
                            <div class="crop" style=move || format!("--native: {}px", model.with(|m| m.native_width))>
                                <img src=move || preview.get().unwrap_or_default() alt="The image to animate"/>
                            </div>
                            <figcaption>{move || model.with(|m| m.input_note.clone())}</figcaption>
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
                                        choose(if mode.get_untracked() == Mode::Edit { Mode::Edit } else { Mode::ImageToVideo }, None);
                                        #[cfg(feature = "hydrate")]
                                        if let Some(input) = file_ref.get_untracked() { input.set_value(""); pictures.set(0); }
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
                <p class="model-description">{move || model.with(|m| m.description.clone())}</p>
                <div class="grid-params">
                    <label>"Model"
                        <select name="model" prop:value=move || model.with(|m| m.id.clone())
                            on:change:target=move |ev| choose(mode.get_untracked(), Some(ev.target().value()))>
                            {models.get_value().into_iter().map(|m| {
                                let label = match m.tasks.as_slice() {
                                    [Mode::TextToImage] => format!("{} (keyframes)", m.id),
                                    [Mode::Edit] => format!("{} (image editor)", m.id),
                                    _ => m.id.clone(),
                                };
                                let selected = m.id == first.id;
                                view! { <option value=m.id.clone() selected=selected>{label}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                    {move || {
                        let m = model.get();
                        let task = mode.get();
                        m.params_for(task).map(|spec| param_control(spec, values)).collect_view()
                    }}
                    {move || model.with(|m| m.takes_loras).then(|| view! {
                        <crate::lora_picker::LoraPicker start=start_loras.get_value() values/>
                    })}
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
                    <details class="variants" class:hidden=move || mode.get() == Mode::Edit>
                        <summary>"Variants: make several at once"</summary>
                        <label for="vary">"Vary"</label>
                        <select id="vary" name="vary">
                            <option value="">"Nothing (one result)"</option>
                            <option value="seed">"Seed (number of seeds below)"</option>
                            {move || model.get().params_for(mode.get()).filter(|spec| !matches!(spec.kind, ParamKind::Text | ParamKind::Image)).map(|spec| {
                                view! { <option value=spec.name.clone()>{spec.label.clone()}</option> }
                            }).collect_view()}
                            <option value="model">"Model (ids below)"</option>
                        </select>
                        <label for="vary_values">"Values"</label>
                        <input id="vary_values" type="text" name="vary_values" maxlength="400" placeholder="4 seeds; or 1, 3, 5; or model ids"/>
                        <p class="hint">"The results are grouped: compare them side by side from any of their pages."</p>
                    </details>
                </div>
            </section>

            <Show when=move || notice.get().is_some()>
                <p class="notice" role="status">{move || notice.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || error.get().is_some()>
                <p class="error" role="alert">{move || error.get().unwrap_or_default()}</p>
            </Show>
            <button type="submit" class="primary" disabled=move || busy.get()>
                {move || if busy.get() { "Queuing…" } else if editing() { "Edit" } else { "Generate" }}
            </button>
        </form>
        <crate::job_card::LiveNote/>
        <section class="jobs" aria-label="Your jobs">
            <For each=move || jobs.get() key=|j| j.with_untracked(|j| j.id.clone()) let:job>
                <JobCard job show_video=true on_reroll=reroll/>
            </For>
        </section>
    }
}
