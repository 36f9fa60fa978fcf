//! A job's card: state, live progress (step i/N, elapsed, estimate), cancel, and the video
//! once it is done.

use crate::calls::{cancel_job, retry_decode, set_favorite};
use crate::format;
use crate::types::{Job, JobState};
use leptos::prelude::*;
use leptos_router::components::A;
use std::collections::HashMap;

/// The latest preview of each running job (a `data:` URL), for the cards to show.
#[derive(Clone, Copy)]
struct Previews(RwSignal<HashMap<String, String>>);

/// Whether the server turned the page's event stream away.
#[derive(Clone, Copy)]
struct Refused(RwSignal<bool>);

/// Says so when the server turned the page's live updates away (within [`follow_jobs`]'s
/// page), and what to do.
#[component]
pub fn LiveNote() -> impl IntoView {
    let refused = use_context::<Refused>();
    move || {
        refused.is_some_and(|r| r.0.get()).then(|| {
            view! {
                <p class="error" role="alert">
                    "Live progress is off: the server turned this page's updates away (too many vidplay tabs open?). "
                    "Close some, then reload this page."
                </p>
            }
        })
    }
}

/// Keeps a list of job cards up to date from the server's one event stream (browser only),
/// so a page holds a single connection however many jobs it shows. With `add_new`, jobs
/// created elsewhere (another tab, the API) are added at the top. Shows a note when the
/// server turns the stream away ([`LiveNote`]).
pub fn follow_jobs(jobs: RwSignal<Vec<RwSignal<Job>>>, add_new: bool) {
    let previews = Previews(RwSignal::new(HashMap::new()));
    provide_context(previews);
    let refused = Refused(RwSignal::new(false));
    provide_context(refused);
    #[cfg(feature = "hydrate")]
    {
        let card =
            move |id: &str| jobs.with_untracked(|list| list.iter().find(|j| j.with_untracked(|j| j.id == id)).copied());
        let source = crate::browser::watch_jobs(
            None,
            move |update: Job| match card(&update.id) {
                Some(card) => card.set(update),
                None if add_new => jobs.update(|list| list.insert(0, RwSignal::new(update))),
                None => {}
            },
            move |step: crate::types::StepUpdate| {
                if let Some(url) = step.preview {
                    previews.0.update(|p| {
                        p.insert(step.id.clone(), url);
                    });
                }
                if let Some(card) = card(&step.id) {
                    card.update(|job| {
                        job.step = step.step;
                        job.total = step.total;
                        job.state = crate::types::JobState::Running;
                    });
                }
            },
            move || refused.0.set(true),
        );
        // A job that changed between the page's rendering and the stream's opening (a short
        // job may finish in between) sends no more events: read the unfinished ones once.
        let unfinished: Vec<RwSignal<Job>> = jobs.with_untracked(|list| {
            list.iter().copied().filter(|j| j.with_untracked(|j| !j.state.is_finished())).collect()
        });
        leptos::task::spawn_local(async move {
            for card in unfinished {
                let id = card.with_untracked(|j| j.id.clone());
                if let Ok(Some(now)) = crate::calls::job_by_id(id).await
                    && (now.state.is_finished() || now.step > card.get_untracked().step)
                {
                    card.set(now);
                }
            }
        });
        let source = send_wrapper::SendWrapper::new(source);
        on_cleanup(move || {
            if let Some(s) = source.take() {
                s.close();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (jobs, add_new);
}

/// Posts a job form (JavaScript's way) and puts the queued job's card first in `jobs`; the
/// server's refusal goes to `error`. Returns the job.
#[cfg(feature = "hydrate")]
pub async fn submit_to_cards(
    form: &web_sys::HtmlFormElement,
    jobs: RwSignal<Vec<RwSignal<Job>>>,
    error: RwSignal<Option<String>>,
) -> Option<Job> {
    error.set(None);
    match crate::browser::submit_job(form).await {
        Ok(queued) => {
            let mut cards = Vec::new();
            for job in queued.iter().rev() {
                let card = RwSignal::new(job.clone());
                jobs.update(|j| j.insert(0, card));
                cards.push((job.id.clone(), card));
            }
            // Updates sent before a card existed are missed; read the state once.
            for (id, card) in cards {
                if let Ok(Some(now)) = crate::calls::job_by_id(id).await
                    && (now.state.is_finished() || now.step > card.get_untracked().step)
                {
                    card.set(now);
                }
            }
            queued.into_iter().next()
        }
        Err(e) => {
            error.set(Some(e));
            None
        }
    }
}

/// Browser clock, ticking every half second while a job runs (`None` on the server).
fn clock() -> ReadSignal<Option<f64>> {
    let (now, set_now) = signal(None::<f64>);
    #[cfg(feature = "hydrate")]
    {
        set_now.set(Some(crate::browser::now_ms()));
        if let Ok(handle) = set_interval_with_handle(
            move || set_now.set(Some(crate::browser::now_ms())),
            std::time::Duration::from_millis(500),
        ) {
            on_cleanup(move || handle.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = set_now;
    now
}

#[component]
pub fn JobCard(
    job: RwSignal<Job>,
    #[prop(optional)] show_video: bool,
    /// For keyframes: make another one with the same settings and a new seed.
    #[prop(optional)]
    on_reroll: Option<Callback<()>>,
) -> impl IntoView {
    let kept = RwSignal::new(false);
    let keep = Action::new(move |id: &String| {
        let id = id.clone();
        async move { set_favorite(id, true).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(true)) = keep.value().get() {
            kept.set(true);
        }
    });
    let now = clock();
    let cancel = Action::new(move |id: &String| {
        let id = id.clone();
        async move { cancel_job(id).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(Some(updated))) = cancel.value().get() {
            job.set(updated);
        }
    });
    let retry = Action::new(move |id: &String| {
        let id = id.clone();
        async move { retry_decode(id).await }
    });
    let retry_refused = RwSignal::new(None::<String>);
    Effect::new(move |_| match retry.value().get() {
        Some(Ok(Some(updated))) => {
            retry_refused.set(None);
            job.set(updated);
        }
        Some(Err(e)) => retry_refused.set(Some(format!("The decode was not queued again: {e}"))),
        _ => {}
    });
    let state = move || job.with(|j| j.state);
    // Only its owner or the administrator may cancel it: others see no button.
    let viewer = StoredValue::new(use_context::<crate::people::Viewer>().unwrap_or_default());
    let may_cancel = move || job.with(|j| viewer.with_value(|v| v.may_change(&j.owner)));
    let previews = use_context::<Previews>();
    let preview = move || {
        let id = job.with(|j| j.id.clone());
        previews.and_then(|p| p.0.with(|p| p.get(&id).cloned()))
    };
    let progress = move || {
        job.with(|j| {
            let total = j.total.max(1);
            let pct = 100.0 * j.step as f64 / total as f64;
            let timing = match (j.state, j.started_ms, now.get()) {
                (JobState::Running, Some(started), Some(now)) => {
                    let elapsed = ((now - started as f64) / 1000.0).max(0.0);
                    let estimate = if j.step > 0 {
                        format!(", about {} left", format::seconds(elapsed / j.step as f64 * (total - j.step) as f64))
                    } else {
                        String::new()
                    };
                    format!(" · {} elapsed{estimate}", format::seconds(elapsed))
                }
                _ => String::new(),
            };
            let what = match j.decode_retries {
                Some(n) if n > 0 => format!("decoding the kept latents again (retry {n}, in smaller pieces)"),
                _ => format!("step {} of {}", j.step, total),
            };
            (pct, format!("{what}{timing}"))
        })
    };
    view! {
        <article class="job" id=move || format!("job-{}", job.with(|j| j.id.clone())) data-state=move || state().as_str()>
            <header>
                <span class=move || format!("badge {}", state().as_str())>{move || state().as_str().replace('-', " ")}</span>
                <span class="prompt">{move || job.with(|j| if j.params.prompt.is_empty() { "(no prompt)".to_string() } else { j.params.prompt.clone() })}</span>
            </header>
            <p class="meta">
                // Whose it is, on a server with named tokens.
                {move || job.with(|j| (!j.owner.is_empty()).then(|| format!("{}'s · ", j.owner)))}
                {move || job.with(|j| if j.mode == crate::types::Mode::Edit {
                    format!("{} · {} · seed {} · {} steps", j.mode.label(), j.params.model, j.params.seed.unwrap_or_default(), j.params.steps)
                } else if j.mode == crate::types::Mode::TextToImage {
                    format!("{} · {} · seed {} · {}×{} · {} steps", j.mode.label(), j.params.model, j.params.seed.unwrap_or_default(), j.params.width, j.params.height, j.params.steps)
                } else {
                    format!("{} · seed {} · {} frames at {} fps · {} steps",
                        j.mode.label(), j.params.seed.unwrap_or_default(), j.params.frames, j.params.fps, j.params.steps)
                })}
            </p>
            <Show when=move || state() == JobState::Running && preview().is_some()>
                <img class="live-preview" src=move || preview().unwrap_or_default() alt="What the result looks like so far"/>
            </Show>
            <Show when=move || matches!(state(), JobState::Queued | JobState::Running)>
                <div class="progress">
                    <progress max="100" value=move || progress().0.to_string() aria-label="Generation progress"></progress>
                    <span class="progress-text" aria-live="polite">
                        {move || if state() == JobState::Queued { "waiting in the queue".to_string() } else { progress().1 }}
                    </span>
                    <Show when=may_cancel>
                        <button type="button" class="secondary cancel"
                            on:click=move |_| { cancel.dispatch(job.with_untracked(|j| j.id.clone())); }>
                            "Cancel"
                        </button>
                    </Show>
                </div>
            </Show>
            <Show when=move || state() == JobState::Failed>
                <p class="error" role="alert">{move || job.with(|j| j.message.clone().unwrap_or_else(|| "failed".into()))}</p>
            </Show>
            <Show when=move || state() == JobState::DecodeFailed>
                <p class="error" role="alert">{move || job.with(|j| j.message.clone().unwrap_or_else(|| "the decode failed".into()))}</p>
                <Show when=may_cancel>
                    <div class="actions">
                        <button type="button" class="primary retry-decode" disabled=move || retry.pending().get()
                            on:click=move |_| { retry.dispatch(job.with_untracked(|j| j.id.clone())); }>
                            "Retry decode"
                        </button>
                    </div>
                </Show>
                {move || retry_refused.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            </Show>
            <Show when=move || state() == JobState::Cancelled>
                <p class="note">"Cancelled."</p>
            </Show>
            <Show when=move || state() == JobState::Done>
                {move || {
                    let id = job.with(|j| j.video_id.clone().unwrap_or_else(|| j.id.clone()));
                    if job.with(|j| j.mode == crate::types::Mode::Edit) {
                        return view! {
                            {show_video.then(|| view! {
                                <img class="result" src=crate::media_files::url(&id, crate::media_files::MediaFile::Image) alt="The edited image"/>
                            })}
                            <div class="actions">
                                <A href=format!("/v/{id}") attr:class="button primary">"Open this version (edit it further)"</A>
                                <a class="button" href=format!("/?animate={id}")>"Animate this"</a>
                            </div>
                        }.into_any();
                    }
                    if job.with(|j| j.mode == crate::types::Mode::TextToImage) {
                        let id2 = id.clone();
                        return view! {
                            {show_video.then(|| view! {
                                <img class="result" src=crate::media_files::url(&id, crate::media_files::MediaFile::Image) alt="The keyframe"/>
                            })}
                            <div class="actions">
                                <a class="button primary" href=format!("/?animate={id}")>"Animate this keyframe"</a>
                                {on_reroll.map(|reroll| view! {
                                    <button type="button" class="secondary" on:click=move |_| reroll.run(())>"Re-roll"</button>
                                })}
                                <button type="button" class="secondary" aria-pressed=move || kept.get().to_string()
                                    on:click=move |_| { keep.dispatch(id2.clone()); }>
                                    {move || if kept.get() { "Kept ★" } else { "Keep" }}
                                </button>
                                <A href=format!("/v/{id}")>"Open the image page"</A>
                            </div>
                        }.into_any();
                    }
                    let src = crate::media_files::url(&id, crate::media_files::MediaFile::Video);
                    // A fresh clip that came out still or camera-only says so, with what to try.
                    let scored = id.clone();
                    let scores = Resource::new(move || scored.clone(), |id| async move {
                        crate::calls::video_by_id(id).await.ok().flatten().and_then(|v| v.scores)
                    });
                    view! {
                        {show_video.then(|| view! {
                            <video class="result" src=src.clone() controls autoplay loop muted playsinline></video>
                        })}
                        <Suspense fallback=|| ()>
                            {move || Suspend::new(async move {
                                scores.await.map(|s| {
                                    let warnings = s.warnings();
                                    view! {
                                        <crate::score_view::ScoreBadges scores=Some(s)/>
                                        {warnings.into_iter().map(|w| view! { <p class="warning" role="note">{w}</p> }).collect_view()}
                                    }
                                })
                            })}
                        </Suspense>
                        <p><A href=format!("/v/{id}")>"Open the video page"</A></p>
                    }.into_any()
                }}
            </Show>
            <Show when=move || job.with(|j| j.message.is_some() && j.state == JobState::Queued)>
                <p class="note">{move || job.with(|j| j.message.clone().unwrap_or_default())}</p>
            </Show>
        </article>
    }
}
