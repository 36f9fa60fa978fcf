//! The queue page: every recent job (queued, running, done, failed with the reason,
//! cancelled), updating live.

use crate::calls::{queue_health, recent_jobs};
use crate::job_card::JobCard;
use crate::types::Job;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn QueuePage() -> impl IntoView {
    let jobs = Resource::new(|| (), |_| recent_jobs());
    let health = Resource::new(|| (), |_| queue_health());
    view! {
        <Title text="Queue"/>
        <h1>"Queue"</h1>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match health.await {
                    Ok(h) if h.stalled => {
                        let why = h.last_error.unwrap_or_else(|| "the generation worker has stopped".into());
                        // A web node alone waits for workers, not for a restart.
                        let until = if why.contains("vidplay worker") { "a worker starts" } else { "the server is restarted" };
                        view! {
                            <p class="error stalled" role="alert">
                                {format!("Nothing is running: {why}. Queued jobs wait until {until}.")}
                            </p>
                        }.into_any()
                    }
                    Ok(h) => {
                        let preparing = h.warm_up.filter(|w| w.preparing()).map(|w| {
                            let now = w.current.map(|m| format!(": {m}")).unwrap_or_default();
                            view! {
                                <p class="note preparing" role="status">
                                    {format!(
                                        "Preparing GPU kernels ({} of {}{now}). A job waits only for the model being prepared now; the first job of a model not yet prepared takes longer.",
                                        w.done + 1,
                                        w.total,
                                    )}
                                </p>
                            }
                        });
                        let workers = (!h.workers.is_empty()).then(|| view! { <WorkerList workers=h.workers/> });
                        view! { {preparing} {workers} }.into_any()
                    }
                    _ => ().into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match jobs.await {
                    Err(e) => view! { <p class="error" role="alert">{format!("The queue cannot be read: {e}")}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <section class="empty"><p>"No jobs yet. " <a href="/">"Make a video"</a>"."</p></section>
                    }.into_any(),
                    Ok(list) => view! { <JobList initial=list/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The workers sharing this queue (GPU machines), with what they run and have loaded.
#[component]
fn WorkerList(workers: Vec<crate::types::WorkerStatus>) -> impl IntoView {
    let rows = workers
        .into_iter()
        .map(|w| {
            let doing = match &w.current_job {
                Some(id) => format!("running {id}"),
                None => "idle".to_string(),
            };
            let preparing = w
                .warm_up
                .filter(|p| p.preparing())
                .map(|p| format!(" · preparing GPU kernels ({} of {})", p.done + 1, p.total))
                .unwrap_or_default();
            let loaded = if w.loaded.is_empty() {
                "nothing loaded".to_string()
            } else {
                format!("loaded: {}", w.loaded.join(", "))
            };
            view! {
                <li class="worker">
                    <strong>{w.name}</strong>
                    " · " {w.devices.join(", ")}
                    " · " {doing}
                    {preparing}
                    " · " {loaded}
                    " · " <span class="models">{format!("runs {}", w.models.join(", "))}</span>
                </li>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <section class="workers" aria-label="Workers">
            <h2>"Workers"</h2>
            <ul>{rows}</ul>
        </section>
    }
}

#[component]
fn JobList(initial: Vec<Job>) -> impl IntoView {
    let jobs = RwSignal::new(initial.into_iter().map(RwSignal::new).collect::<Vec<_>>());
    crate::job_card::follow_jobs(jobs, true);
    let counts = move || {
        jobs.with(|list| {
            let count = |s: crate::types::JobState| list.iter().filter(|j| j.with(|j| j.state == s)).count();
            use crate::types::JobState::*;
            format!(
                "{} queued · {} running · {} done · {} failed · {} cancelled",
                count(Queued),
                count(Running),
                count(Done),
                count(Failed) + count(DecodeFailed),
                count(Cancelled)
            )
        })
    };
    view! {
        <p class="counts" aria-live="polite">{counts}</p>
        <crate::job_card::LiveNote/>
        <section class="jobs">
            <For each=move || jobs.get() key=|j| j.with_untracked(|j| j.id.clone()) let:job>
                <JobCard job/>
            </For>
        </section>
    }
}
