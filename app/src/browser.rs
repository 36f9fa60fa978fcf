//! Browser-only helpers (`hydrate`): submitting the Create form with fetch, following job
//! progress over server-sent events, and reading dropped or pasted images.

use crate::types::{ApiError, FileSettings, Job, StepUpdate};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    EventSource, File, FormData, HtmlFormElement, HtmlInputElement, MessageEvent, Request, RequestInit, Response,
};

fn js_error(e: JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::Reflect::get(&e, &"message".into()).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| "the request failed".into())
}

/// The content of the page's meta tag `name`.
pub fn meta_content(name: &str) -> Option<String> {
    let document = web_sys::window()?.document()?;
    document.query_selector(&format!("meta[name=\"{name}\"]")).ok()??.get_attribute("content")
}

/// Milliseconds since the Unix epoch, from the browser's clock.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Posts `body` to `url` and reads the JSON answer: a `T`, or the server's message.
async fn post_json<T: serde::de::DeserializeOwned>(url: &str, body: &JsValue) -> Result<T, String> {
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(body);
    let request = Request::new_with_str_and_init(url, &init).map_err(js_error)?;
    request.headers().set("Accept", "application/json").map_err(js_error)?;
    let window = web_sys::window().ok_or("no window")?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|_| "the server cannot be reached".to_string())?
        .dyn_into()
        .map_err(js_error)?;
    let text = JsFuture::from(response.text().map_err(js_error)?).await.map_err(js_error)?;
    let text = text.as_string().unwrap_or_default();
    if response.ok() {
        serde_json::from_str::<T>(&text).map_err(|e| format!("unexpected answer from the server: {e}"))
    } else {
        Err(serde_json::from_str::<ApiError>(&text)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("the server answered {}", response.status())))
    }
}

/// What the JSON API answers a job request with: one job, or a group of variants.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Queued {
    Group(crate::variants::VariantGroup),
    // Boxed: a job is ten times the size of a group's handle.
    One(Box<Job>),
}

/// Posts the Create form to the JSON API; returns the queued jobs (several for variants) or
/// the server's message.
pub async fn submit_job(form: &HtmlFormElement) -> Result<Vec<Job>, String> {
    let data = FormData::new_with_form(form).map_err(js_error)?;
    Ok(match post_json::<Queued>("/api/jobs", &data).await? {
        Queued::Group(g) => g.jobs,
        Queued::One(job) => vec![*job],
    })
}

/// The settings embedded in a file vidplay made (MP4, GIF or PNG), or why there are none.
pub async fn settings_of(file: &File) -> Result<FileSettings, String> {
    post_json("/api/settings", file).await
}

/// Follows job updates (one job, or all with `None`) until the returned source is closed:
/// `on_job` when a job changes state, `on_step` as it progresses, `on_refused` when the
/// browser gives the stream up (the server turned it away: too many streams, 429, or none
/// left, 503), where a lost connection is retried by the browser itself.
pub fn watch_jobs(
    id: Option<&str>,
    on_job: impl Fn(Job) + 'static,
    on_step: impl Fn(StepUpdate) + 'static,
    on_refused: impl Fn() + 'static,
) -> Option<EventSource> {
    let url = match id {
        Some(id) => format!("/api/jobs/events?id={id}"),
        None => "/api/jobs/events".to_string(),
    };
    let source = EventSource::new(&url).ok()?;
    listen(&source, "job", on_job)?;
    listen(&source, "step", on_step)?;
    let watched = source.clone();
    let error = Closure::<dyn Fn(web_sys::Event)>::new(move |_| {
        if watched.ready_state() == EventSource::CLOSED {
            on_refused();
        }
    });
    source.set_onerror(Some(error.as_ref().unchecked_ref()));
    error.forget();
    Some(source)
}

/// Calls `handle` with each `event` of `source` whose data reads as a `T`. The listener lives
/// as long as the page; the source is closed by the caller.
fn listen<T: serde::de::DeserializeOwned + 'static>(
    source: &EventSource,
    event: &str,
    handle: impl Fn(T) + 'static,
) -> Option<()> {
    let callback = Closure::<dyn Fn(MessageEvent)>::new(move |ev: MessageEvent| {
        if let Some(text) = ev.data().as_string()
            && let Ok(value) = serde_json::from_str::<T>(&text)
        {
            handle(value);
        }
    });
    source.add_event_listener_with_callback(event, callback.as_ref().unchecked_ref()).ok()?;
    callback.forget();
    Some(())
}

/// A `blob:` URL showing `file` (for the upload preview).
pub fn object_url(file: &File) -> Option<String> {
    web_sys::Url::create_object_url_with_blob(file).ok()
}

/// The first file of a drop.
pub fn first_file(transfer: Option<web_sys::DataTransfer>) -> Option<File> {
    transfer?.files()?.get(0)
}

/// Puts `file` into the file input, so the form sends it.
pub fn put_file(input: &HtmlInputElement, file: &File) -> Option<()> {
    let single = web_sys::DataTransfer::new().ok()?;
    single.items().add_with_file(file).ok()?;
    input.set_files(single.files().as_ref());
    Some(())
}

/// Puts the first image of a drop or paste into the file input, so the form sends it.
pub fn take_image(input: &HtmlInputElement, transfer: Option<web_sys::DataTransfer>) -> Option<File> {
    let transfer = transfer?;
    let files = transfer.files()?;
    let file = (0..files.length()).filter_map(|i| files.get(i)).find(|f| f.type_().starts_with("image/"))?;
    let single = web_sys::DataTransfer::new().ok()?;
    single.items().add_with_file(&file).ok()?;
    input.set_files(single.files().as_ref());
    Some(file)
}

/// The file chosen in a file input.
pub fn chosen_file(input: &HtmlInputElement) -> Option<File> {
    input.files()?.get(0)
}
