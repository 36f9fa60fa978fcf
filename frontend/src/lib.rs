#![recursion_limit = "512"]
//! Entry point of the browser bundle: hydrates the server-rendered page.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    let document = web_sys::window().and_then(|w| w.document());
    // A server and a bundle built with different view kinds (app::view_build) render
    // differently, and hydrating the one with the other stops the bundle with a bare
    // "unreachable": say what is wrong and leave the server's page as it is.
    let page_build = document
        .as_ref()
        .and_then(|d| d.query_selector(&format!("meta[name=\"{}\"]", app::VIEW_BUILD_META)).ok().flatten())
        .and_then(|meta| meta.get_attribute("content"));
    if page_build.as_deref() != Some(app::view_build()) {
        web_sys::console::error_1(
            &format!(
                "vidplay: the server renders {} views and this bundle was built with {} views; build both with the same \
                 RUSTFLAGS (see .cargo/config.toml), then `cargo xtask site`. The page is not interactive.",
                page_build.as_deref().unwrap_or("unknown"),
                app::view_build()
            )
            .into(),
        );
        return;
    }
    // The pages are lazy routes: hydration waits for the page's own code, then says so.
    wasm_bindgen_futures::spawn_local(async move {
        leptos::mount::hydrate_from_async(leptos::tachys::dom::body(), app::App).await.forget();
        // Tells tests (and curious people) that the page is interactive now.
        if let Some(root) = document.and_then(|d| d.document_element()) {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });
}
