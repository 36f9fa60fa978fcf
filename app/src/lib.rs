#![recursion_limit = "512"]
//! The playground's pages, shared by the server (`ssr`: renders HTML, runs server functions)
//! and the browser bundle (`hydrate`).

#[cfg(feature = "ssr")]
pub mod backend;
#[cfg(feature = "hydrate")]
pub mod browser;
pub mod calls;
mod compare;
mod create;
pub mod csp;
mod edit_chain;
mod format;
mod gallery;
mod job_card;
mod leaderboard;
pub mod limits;
mod lora_picker;
pub mod media_files;
pub mod models;
pub mod params;
pub mod people;
pub mod prompt_builder;
mod queue;
pub mod results;
mod score_view;
pub mod scores;
pub mod types;
pub mod variants;
mod video_page;
pub mod votes;

use leptos::prelude::*;
use leptos_meta::{Link, Meta, MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{Lazy, LazyRoute, SsrMode, lazy_route, path};

/// The name of the page's meta tag that says how its views were built ([`view_build`]).
pub const VIEW_BUILD_META: &str = "vidplay-view-build";

/// How this build's views were compiled: `erased` with Leptos' type-erased components (the
/// workspace's `--cfg erase_components`), else `typed`. The server's HTML and the browser bundle
/// differ in structure between the two, so the bundle hydrates only a page whose meta tag
/// names its own kind.
pub fn view_build() -> &'static str {
    if cfg!(erase_components) { "erased" } else { "typed" }
}

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    csp::set_page_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name=VIEW_BUILD_META content=view_build()/>
                <meta name=people::VIEWER_META content=serde_json::to_string(&people::current()).unwrap_or_default()/>
                // The bundle's stylesheet carries the bundle's (content-hashed) name.
                <link rel="stylesheet" href=format!("/{}/{}.css", options.site_pkg_dir, options.output_name)/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // What the pages offer to change follows who is using them.
    provide_context(people::current());
    view! {
        <Link rel="icon" href="/favicon.svg"/>
        <Meta name="description" content="Direct short generated videos: text to video, image to video, and a searchable gallery."/>
        <Title formatter=|t: String| if t.is_empty() { "vidplay".to_string() } else { format!("{t} · vidplay") }/>
        <Router>
            <a class="skip" href="#main">"Skip to content"</a>
            <header class="top">
                <A href="/" attr:class="brand">"vidplay"</A>
                <nav aria-label="Main">
                    <A href="/">"Create"</A>
                    <A href="/gallery">"Gallery"</A>
                    <A href="/queue">"Queue"</A>
                    <A href="/leaderboard">"Leaderboard"</A>
                </nav>
            </header>
            <main id="main">
                <Routes fallback=NotFound>
                    <Route path=path!("") view={Lazy::<CreateRoute>::new()}/>
                    <Route path=path!("/gallery") view={Lazy::<GalleryRoute>::new()}/>
                    // Rendered whole before answering, so an unknown id is a real 404.
                    <Route path=path!("/v/:id") view={Lazy::<VideoRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/queue") view={Lazy::<QueueRoute>::new()}/>
                    <Route path=path!("/compare") view={Lazy::<CompareRoute>::new()}/>
                    <Route path=path!("/leaderboard") view={Lazy::<LeaderboardRoute>::new()}/>
                </Routes>
            </main>
        </Router>
    }
}

// Each page is a lazy route: a release bundle is split per page (`cargo xtask site`), and a
// page loads its own code (and what it shares with others) when it is shown.

struct CreateRoute;

#[lazy_route]
impl LazyRoute for CreateRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <create::CreatePage/> }.into_any()
    }
}

struct GalleryRoute;

#[lazy_route]
impl LazyRoute for GalleryRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <gallery::GalleryPage/> }.into_any()
    }
}

struct VideoRoute;

#[lazy_route]
impl LazyRoute for VideoRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <video_page::VideoPage/> }.into_any()
    }
}

struct QueueRoute;

#[lazy_route]
impl LazyRoute for QueueRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <queue::QueuePage/> }.into_any()
    }
}

struct CompareRoute;

#[lazy_route]
impl LazyRoute for CompareRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <compare::ComparePage/> }.into_any()
    }
}

struct LeaderboardRoute;

#[lazy_route]
impl LazyRoute for LeaderboardRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <leaderboard::LeaderboardPage/> }.into_any()
    }
}

/// Answers the page being rendered on the server with 404 (a no-op in the browser).
pub(crate) fn respond_not_found() {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
}

#[component]
fn NotFound() -> impl IntoView {
    respond_not_found();
    view! {
        <Title text="Not found"/>
        <section class="empty">
            <h1>"Nothing here"</h1>
            <p>"This page does not exist. " <A href="/">"Make a video"</A> " or " <A href="/gallery">"browse the gallery"</A> "."</p>
        </section>
    }
}
