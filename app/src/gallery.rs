//! The gallery: every finished video, newest first or by a score (most motion, sharpest, ...),
//! with full-text search over prompts (`?q=`, shareable; with a CLIP model installed, also by
//! what clips show, marked as such), filters (mode, model, motion flags,
//! favourites) and paging. Cards play muted loops when hovered, focused or
//! scrolled into view.

use crate::calls::{SetFavorite, find_videos, list_models};
use crate::format;
use crate::scores::{GallerySort, ScoreFlag};
use crate::types::{Mode, Video, VideoQuery};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

const PAGE: u32 = 24;

/// The model filter: all models, or one of `ids`.
#[component]
fn ModelFilter(ids: Vec<String>, chosen: Option<String>) -> impl IntoView {
    view! {
        <select id="model" name="model">
            <option value="" selected=chosen.is_none()>"All"</option>
            {ids.into_iter().map(|id| {
                let selected = chosen.as_deref() == Some(id.as_str());
                let value = id.clone();
                view! { <option value=value selected=selected>{id}</option> }
            }).collect_view()}
        </select>
    }
}

#[component]
pub fn GalleryPage() -> impl IntoView {
    let query = use_query_map();
    let params = move || {
        query.with(|q| {
            let get = |k: &str| q.get(k).unwrap_or_default();
            VideoQuery {
                q: get("q"),
                mode: Mode::parse(&get("mode")),
                model: Some(get("model")).filter(|m| !m.is_empty()),
                favorites: matches!(get("favorites").as_str(), "1" | "on" | "true"),
                before: Some(get("before")).filter(|b| !b.is_empty()),
                limit: PAGE,
                sort: GallerySort::parse(&get("sort")).unwrap_or_default(),
                flag: ScoreFlag::parse(&get("flag")),
                group: Some(get("group")).filter(|g| crate::types::is_valid_id(g)),
                // The server's to say: whoever's token asks.
                favorites_of: String::new(),
            }
        })
    };
    let page = Resource::new(params, find_videos);
    let models = Resource::new(|| (), |_| list_models());
    let favorite = ServerAction::<SetFavorite>::new();

    view! {
        <Title text="Gallery"/>
        <h1>"Gallery"</h1>
        <form method="get" action="/gallery" class="search" role="search">
            <label for="q">"Search prompts"</label>
            <input id="q" type="search" name="q" placeholder="e.g. red ball" value=move || params().q/>
            <label for="mode">"Mode"</label>
            <select id="mode" name="mode">
                <option value="" selected=move || params().mode.is_none()>"All"</option>
                <option value="text-to-video" selected=move || params().mode == Some(Mode::TextToVideo)>"Text to video"</option>
                <option value="image-to-video" selected=move || params().mode == Some(Mode::ImageToVideo)>"Image to video"</option>
                <option value="text-to-image" selected=move || params().mode == Some(Mode::TextToImage)>"Keyframes (text to image)"</option>
                <option value="extend" selected=move || params().mode == Some(Mode::Extend)>"Extended videos"</option>
                <option value="edit" selected=move || params().mode == Some(Mode::Edit)>"Edited images"</option>
            </select>
            <label for="model">"Model"</label>
            <Suspense fallback=move || view! { <ModelFilter ids=params().model.into_iter().collect() chosen=params().model/> }>
                {move || {
                    let chosen = params().model;
                    Suspend::new(async move {
                    // Every model this server runs, and the one asked for when it is gone (its
                    // clips stay in the gallery).
                    let mut ids: Vec<String> = models.await.unwrap_or_default().into_iter().map(|m| m.id).collect();
                    if let Some(m) = &chosen && !ids.contains(m) {
                        ids.push(m.clone());
                    }
                    view! { <ModelFilter ids chosen/> }
                })}}
            </Suspense>
            <label for="flag">"Motion"</label>
            <select id="flag" name="flag">
                <option value="" selected=move || params().flag.is_none()>"Any"</option>
                {ScoreFlag::ALL.into_iter().map(|f| view! {
                    <option value=f.as_str() selected=move || params().flag == Some(f)>{f.label()}</option>
                }).collect_view()}
            </select>
            <label for="sort">"Sort"</label>
            <select id="sort" name="sort">
                {GallerySort::ALL.into_iter().map(|g| view! {
                    <option value=g.as_str() selected=move || params().sort == g>{g.label()}</option>
                }).collect_view()}
            </select>
            <label class="inline"><input type="checkbox" name="favorites" value="1" checked=move || params().favorites/>" Favorites only"</label>
            {move || params().group.map(|g| view! { <input type="hidden" name="group" value=g/> })}
            <button type="submit" class="primary">"Search"</button>
        </form>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <p class="error" role="alert">{format!("The gallery cannot be read: {e}")}</p> }.into_any(),
                    Ok(page) if page.videos.is_empty() => {
                        let p = params();
                        let filtered = !p.q.is_empty() || p.mode.is_some() || p.model.is_some() || p.favorites || p.before.is_some() || p.flag.is_some() || p.sort != GallerySort::Newest || p.group.is_some();
                        view! {
                            <section class="empty">
                                {if filtered {
                                    view! { <p>"No videos match. " <A href="/gallery">"Show all videos"</A></p> }.into_any()
                                } else {
                                    view! {
                                        <p>"No videos yet. The first examples are being made in the background: watch them on the "
                                        <A href="/queue">"queue"</A> ", or " <A href="/">"make your own"</A> "."</p>
                                    }.into_any()
                                }}
                            </section>
                        }.into_any()
                    }
                    Ok(page) => {
                        let next = page.next.clone().map(|before| {
                            let p = params();
                            let mut url = format!("/gallery?before={before}");
                            if !p.q.is_empty() { url += &format!("&q={}", encode(&p.q)); }
                            if let Some(m) = p.mode { url += &format!("&mode={}", m.as_str()); }
                            if let Some(m) = &p.model { url += &format!("&model={}", encode(m)); }
                            if p.favorites { url += "&favorites=1"; }
                            if let Some(f) = p.flag { url += &format!("&flag={}", f.as_str()); }
                            if p.sort != GallerySort::Newest { url += &format!("&sort={}", p.sort.as_str()); }
                            if let Some(g) = &p.group { url += &format!("&group={g}"); }
                            url
                        });
                        view! {
                            <form id="compare-form" method="get" action="/compare" class="compare-bar">
                                <span class="hint">"Tick two to four clips, then "</span>
                                <label class="inline"><input type="checkbox" name="blind" value="1" checked/>" blind"</label>
                                <button type="submit">"Compare selected"</button>
                            </form>
                            <ul class="cards">
                                {page.videos.into_iter().map(|v| {
                                    let seen = page.visual.iter().find(|m| m.id == v.id).map(|m| m.similarity);
                                    view! { <VideoCard video=v favorite seen/> }
                                }).collect_view()}
                            </ul>
                            <nav class="paging" aria-label="Pages">
                                <Show when=move || params().before.is_some()>
                                    <A href="/gallery">"Newest"</A>
                                </Show>
                                {next.map(|url| view! { <A href=url>{if params().sort == GallerySort::Newest { "Older videos →" } else { "More →" }}</A> })}
                            </nav>
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[component]
fn VideoCard(
    video: Video,
    favorite: ServerAction<SetFavorite>,
    /// Found by what it shows (visual search), with this similarity, not by its prompt's words.
    seen: Option<f32>,
) -> impl IntoView {
    let fav = RwSignal::new(video.favorite);
    let id = video.id.clone();
    let video_ref = NodeRef::<leptos::html::Video>::new();
    let play = move || {
        #[cfg(feature = "hydrate")]
        if let Some(v) = video_ref.get() {
            let _ = v.play();
        }
    };
    let pause = move || {
        #[cfg(feature = "hydrate")]
        if let Some(v) = video_ref.get() {
            let _ = v.pause();
        }
    };
    #[cfg(feature = "hydrate")]
    autoplay_when_visible(video_ref);
    let toggle = {
        let id = id.clone();
        move |_| {
            let now = !fav.get_untracked();
            fav.set(now);
            favorite.dispatch(SetFavorite { id: id.clone(), favorite: now });
        }
    };
    view! {
        <li class="card" data-id=id.clone()>
            <a href=format!("/v/{id}")
                on:mouseenter=move |_| play() on:mouseleave=move |_| pause() on:focus=move |_| play() on:blur=move |_| pause()>
                {if video.is_image() {
                    view! { <img class="still" src=video.image_url() alt=format!("{}: {}", if video.mode == Mode::Edit { "Edited image" } else { "Keyframe" }, video.params.prompt) loading="lazy"/> }.into_any()
                } else {
                    view! {
                        <video node_ref=video_ref src=video.video_url() poster=video.poster_url() muted loop playsinline preload="metadata"
                            aria-label=format!("Video: {}", video.params.prompt)></video>
                    }.into_any()
                }}
                <p class="prompt">{if video.params.prompt.is_empty() { "(no prompt)".to_string() } else { video.params.prompt.clone() }}</p>
            </a>
            <p class="meta">
                <span>{video.mode.label()}</span>" · "<span>{format::utc(video.created_ms)}</span>
                {video.scores.as_ref().map(|s| view! { " · " <span title="Motion: % of the width per frame">{format!("motion {:.2}", s.motion)}</span> })}
                " " <crate::score_view::ScoreBadges scores=video.scores.clone()/>
                {seen.map(|s| view! { " " <span class="badge visual" title="Not in its prompt: found by what its frames show (CLIP similarity)">{format!("Seen in the clip · {s:.2}")}</span> })}
            </p>
            {(!video.is_image()).then(|| view! {
                <label class="pick"><input type="checkbox" name="ids" value=id.clone() form="compare-form"/>" Compare"</label>
            })}
            <button type="button" class="fav" aria-pressed=move || fav.get().to_string()
                aria-label=move || if fav.get() { "Remove from favorites" } else { "Add to favorites" }
                on:click=toggle>
                {move || if fav.get() { "★" } else { "☆" }}
            </button>
        </li>
    }
}

/// Plays a card's loop while it is on screen (browser only).
#[cfg(feature = "hydrate")]
fn autoplay_when_visible(video_ref: NodeRef<leptos::html::Video>) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::Closure;
    Effect::new(move |_| {
        let Some(video) = video_ref.get() else { return };
        let callback = Closure::<dyn Fn(js_sys::Array)>::new(move |entries: js_sys::Array| {
            for entry in entries.iter() {
                let entry: web_sys::IntersectionObserverEntry = entry.unchecked_into();
                let target: web_sys::HtmlVideoElement = entry.target().unchecked_into();
                if entry.is_intersecting() {
                    let _ = target.play();
                } else {
                    let _ = target.pause();
                }
            }
        });
        if let Ok(observer) = web_sys::IntersectionObserver::new(callback.as_ref().unchecked_ref()) {
            observer.observe(&video);
        }
        callback.forget();
    });
}
