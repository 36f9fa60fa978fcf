//! Compare two to four results side by side, played together, and vote which is better for
//! quality and which for faithfulness to the prompt, with reasons. Blind mode shows them in a
//! shuffled order as A, B, ... and hides what made which until the vote is in.

use crate::calls::{cast_vote, compare_videos};
use crate::types::Video;
use crate::votes::{MAX_CANDIDATES, MIN_CANDIDATES, REASONS, VoteAxis, VoteRequest};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use leptos_router::params::ParamsMap;

const LABELS: [&str; MAX_CANDIDATES] = ["A", "B", "C", "D"];

/// The ids asked for (`?ids=a&ids=b` or `?ids=a,b`), without repeats, at most four.
fn ids_of(q: &ParamsMap) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for value in q.get_all("ids").unwrap_or_default() {
        for id in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !ids.iter().any(|i| i == id) && ids.len() < MAX_CANDIDATES {
                ids.push(id.to_string());
            }
        }
    }
    ids
}

/// A shuffle that the server and the browser agree on: by a hash of each id.
fn blind_order(mut videos: Vec<Video>) -> Vec<Video> {
    let fnv = |s: &str| s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    videos.sort_by_key(|v| fnv(&v.id));
    videos
}

#[component]
pub fn ComparePage() -> impl IntoView {
    let query = use_query_map();
    let asked = move || {
        query.with(|q| {
            let blind = matches!(q.get("blind").as_deref(), Some("1" | "on" | "true"));
            (ids_of(q), q.get("group").unwrap_or_default(), blind)
        })
    };
    // The server issues the comparison the votes name, blind or not as this page shows it.
    let compared = Resource::new(asked, |(ids, group, blind)| compare_videos(ids, group, blind));
    view! {
        <Title text="Compare"/>
        <h1>"Compare"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match compared.await {
                    Err(e) => view! { <p class="error" role="alert">{format!("The results cannot be read: {e}")}</p> }.into_any(),
                    Ok(found) if found.videos.len() < MIN_CANDIDATES || found.comparison.is_none() => view! {
                        <section class="empty">
                            <p>"Pick two to four clips to compare: tick "<strong>"Compare"</strong>" on them in the "
                            <A href="/gallery">"gallery"</A>", then press "<strong>"Compare selected"</strong>"."</p>
                        </section>
                    }.into_any(),
                    Ok(found) => {
                        let comparison = found.comparison.expect("checked above");
                        let is_blind = comparison.blind;
                        let videos = if is_blind { blind_order(found.videos) } else { found.videos };
                        view! { <Comparison videos comparison=comparison.id blind=is_blind/> }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn Comparison(videos: Vec<Video>, comparison: String, blind: bool) -> impl IntoView {
    let candidates: Vec<String> = videos.iter().map(|v| v.id.clone()).collect();
    let revealed = RwSignal::new(!blind);
    let refs: Vec<NodeRef<leptos::html::Video>> = videos.iter().map(|_| NodeRef::new()).collect();
    let play_all = {
        let refs = refs.clone();
        move |_| {
            #[cfg(feature = "hydrate")]
            for r in &refs {
                if let Some(v) = r.get() {
                    v.set_current_time(0.0);
                    let _ = v.play();
                }
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = &refs;
        }
    };
    let prompts: Vec<String> = {
        let mut p: Vec<String> = videos.iter().map(|v| v.params.prompt.clone()).collect();
        p.dedup();
        p
    };
    let same_prompt = prompts.len() == 1;
    let toggle = {
        let ids = candidates.join(",");
        if blind { format!("/compare?ids={ids}") } else { format!("/compare?ids={ids}&blind=1") }
    };
    view! {
        {same_prompt.then(|| view! { <p class="compare-prompt">"Prompt: " <q>{prompts[0].clone()}</q></p> })}
        <div class="actions">
            <button type="button" on:click=play_all>"Play all from the start"</button>
            <a class="button" href=toggle>{if blind { "Show which is which" } else { "Blind mode" }}</a>
        </div>
        <ul class="compare" data-blind=blind.to_string()>
            {videos.into_iter().zip(refs).enumerate().map(|(i, (v, node))| {
                let label = LABELS[i];
                let details = format!("{} · seed {} · {} steps · guidance {} · motion {}", v.params.model, v.params.seed.unwrap_or_default(), v.params.steps, v.params.guidance, v.params.motion);
                let prompt = (!same_prompt).then(|| v.params.prompt.clone());
                let scores = v.scores.clone();
                let id = v.id.clone();
                view! {
                    <li class="compare-item" data-label=label>
                        <h2 class="label">{label}</h2>
                        <video node_ref=node class="compare-clip" src=v.video_url() poster=v.poster_url() muted loop autoplay playsinline controls
                            aria-label=format!("Clip {label}")></video>
                        {prompt.map(|p| view! { <p class="prompt">{p}</p> })}
                        <p class="meta">{move || if revealed.get() {
                            let (href, details, scores) = (format!("/v/{id}"), details.clone(), scores.clone());
                            view! { <A href=href>{details}</A> " " <crate::score_view::ScoreBadges scores=scores/> }.into_any()
                        } else {
                            view! { <span>"Hidden until you vote"</span> }.into_any()
                        }}</p>
                    </li>
                }
            }).collect_view()}
        </ul>
        {VoteAxis::ALL.into_iter().map(|axis| view! { <VoteForm axis comparison=comparison.clone() candidates=candidates.clone() revealed/> }).collect_view()}
        <p><A href="/leaderboard">"See the leaderboard"</A></p>
    }
}

/// One question: which is better on `axis`, and why.
#[component]
fn VoteForm(axis: VoteAxis, comparison: String, candidates: Vec<String>, revealed: RwSignal<bool>) -> impl IntoView {
    let winner = RwSignal::new(None::<String>);
    let reasons = RwSignal::new(Vec::<String>::new());
    let cast = Action::new(|req: &VoteRequest| {
        let req = req.clone();
        async move { cast_vote(req).await }
    });
    let done = move || matches!(cast.value().get(), Some(Ok(_)));
    Effect::new(move |_| {
        if done() {
            revealed.set(true);
        }
    });
    let offered: Vec<&'static str> = match axis {
        VoteAxis::Quality => REASONS.iter().copied().filter(|r| *r != "follows the prompt").collect(),
        VoteAxis::Faithfulness => vec!["follows the prompt"],
    };
    let name = format!("winner-{}", axis.as_str());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(w) = winner.get_untracked() else { return };
        cast.dispatch(VoteRequest {
            comparison: Some(comparison.clone()),
            axis,
            winner: w,
            candidates: Vec::new(),
            reasons: reasons.get_untracked(),
        });
    };
    view! {
        <form class="vote" on:submit=submit aria-label=format!("Vote: {}", axis.label())>
            <fieldset disabled=done>
                <legend>{format!("Which is better: {}?", axis.label().to_lowercase())}</legend>
                {candidates.iter().enumerate().map(|(i, id)| {
                    let id = id.clone();
                    let picked = id.clone();
                    view! {
                        <label class="inline">
                            <input type="radio" name=name.clone() value=id.clone() on:change=move |_| winner.set(Some(picked.clone()))/>
                            {format!(" {}", LABELS[i])}
                        </label>
                    }
                }).collect_view()}
                <span class="reasons">
                    {offered.into_iter().map(|r| view! {
                        <label class="inline">
                            <input type="checkbox" value=r on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                reasons.update(|rs| { rs.retain(|x| x != r); if on { rs.push(r.to_string()); } });
                            }/>
                            {format!(" {r}")}
                        </label>
                    }).collect_view()}
                </span>
                <button type="submit" class="primary" disabled=move || winner.get().is_none()>{format!("Vote for {}", axis.as_str())}</button>
            </fieldset>
            {move || match cast.value().get() {
                Some(Ok(_)) => Some(view! { <p class="note" role="status">{format!("Vote recorded ({}).", axis.as_str())}</p> }.into_any()),
                Some(Err(e)) => Some(view! { <p class="error" role="alert">{format!("The vote was not recorded: {e}")}</p> }.into_any()),
                None => None,
            }}
        </form>
    }
}
