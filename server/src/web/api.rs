//! The JSON HTTP API for scripts (documented in the README), and the job event stream the
//! pages listen to.
//!
//! Errors are `{"error": "..."}` with a 4xx status for anything the caller can fix.

use super::state::WebState;
use crate::queue::defaults::Given;
use crate::queue::events::JobEvent;
use crate::queue::{ChangeError, Picture, Pictures, SubmitError, Upload};
use crate::storage::StoreError;
use crate::web::security::Client;
use app::media_files::MediaFile;
use app::people::Viewer;
use app::scores::{GallerySort, ScoreFlag};
use app::types::{ApiError, JobParams, Mode, VideoQuery, is_valid_id};
use app::variants::Variants;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use std::convert::Infallible;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

/// An API failure: a status and a message for people.
#[derive(Debug)]
pub struct Failure(pub StatusCode, pub String);

impl Failure {
    pub fn bad(msg: impl Into<String>) -> Self {
        Failure(StatusCode::BAD_REQUEST, msg.into())
    }
    pub fn not_found(what: &str) -> Self {
        Failure(StatusCode::NOT_FOUND, format!("no such {what}"))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.0.is_server_error() {
            tracing::error!(status = %self.0, "{}", self.1);
        }
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<SubmitError> for Failure {
    fn from(e: SubmitError) -> Self {
        let status = match &e {
            SubmitError::Invalid(_) => StatusCode::BAD_REQUEST,
            SubmitError::QueueFull => StatusCode::TOO_MANY_REQUESTS,
            SubmitError::Store(_) | SubmitError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(status, e.to_string())
    }
}

impl From<ChangeError> for Failure {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Forbidden(why) => Failure(StatusCode::FORBIDDEN, why),
            ChangeError::Conflict(why) => Failure(StatusCode::CONFLICT, why),
            ChangeError::Store(e) => e.into(),
        }
    }
}

type ApiResult<T> = Result<T, Failure>;

/// Who sent a request, as the security guard found them (nobody, for a request it did not see).
fn viewer(extension: Option<Extension<Viewer>>) -> Viewer {
    extension.map(|Extension(v)| v).unwrap_or_default()
}

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/api/jobs", get(list_jobs).post(create_job))
        .route("/api/jobs/events", get(job_events))
        .route("/api/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/api/jobs/{id}/retry-decode", axum::routing::post(retry_decode))
        .route("/api/videos", get(list_videos))
        .route("/api/videos/{id}", get(get_video).delete(delete_video))
        .route("/api/videos/{id}/chain", get(get_chain))
        .route("/api/health", get(health))
        .route("/api/models", get(list_models))
        .route("/api/loras", get(list_loras))
        .route("/api/settings", axum::routing::post(settings_of_file))
}

fn check_id(id: &str, what: &str) -> ApiResult<()> {
    if is_valid_id(id) { Ok(()) } else { Err(Failure::not_found(what)) }
}

/// Largest JSON job request, and largest form field besides the image.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// Reads a form field's text, refusing one larger than [`MAX_FIELD_BYTES`] before it is all read.
async fn field_text(mut field: axum::extract::multipart::Field<'_>, name: &str) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    while let Some(chunk) =
        field.chunk().await.map_err(|e| Failure::bad(format!("reading the form: {}", e.body_text())))?
    {
        if bytes.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(Failure::bad(format!("the form field {name:?} is larger than {} KB", MAX_FIELD_BYTES / 1024)));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| Failure::bad(format!("the form field {name:?} is not UTF-8 text")))
}

/// Reads a job request: a JSON body (`JobParams`), or a multipart form with the same fields
/// plus an optional `image` file (what the Create page's form sends without JavaScript).
pub async fn read_job_request(req: Request, web: &WebState) -> ApiResult<JobRequest> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(req, &()).await.map_err(|e| Failure::bad(e.body_text()))?;
        read_multipart(form, web).await
    } else if content_type.starts_with("application/json") {
        let too_big = || {
            Failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a JSON job request is at most {} KB", MAX_FIELD_BYTES / 1024),
            )
        };
        let body = axum::body::to_bytes(req.into_body(), MAX_FIELD_BYTES).await.map_err(|_| too_big())?;
        let mut value = serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| Failure::bad(format!("invalid JSON job request: {e}")))?;
        // `variants` asks for a group of jobs; everything else is the job's parameters.
        let variants = match value.as_object_mut().and_then(|o| o.remove("variants")) {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value::<Variants>(v).map_err(|e| Failure::bad(format!("invalid variants: {e}")))?,
            ),
        };
        let given = Given::Only(value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default());
        let mut params = serde_json::from_value::<JobParams>(value)
            .map_err(|e| Failure::bad(format!("invalid JSON job request: {e}")))?;
        // A stored result's parameters posted again make a new result, not one of its group.
        params.group.clear();
        Ok(JobRequest { params, picture: None, more_pictures: Vec::new(), last_picture: None, variants, given })
    } else {
        Err(Failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the job as application/json, or multipart/form-data with an image".into(),
        ))
    }
}

/// A job request as read: its parameters, image, variants, and which parameters it gave (the
/// others take the model's defaults).
pub struct JobRequest {
    pub params: JobParams,
    pub picture: Option<Picture>,
    /// Animate many: the pictures after the first, each animated by a job of its own (one
    /// group with the first's).
    pub more_pictures: Vec<Picture>,
    /// The clip's last frame (the models that take one), for every job of the request.
    pub last_picture: Option<Upload>,
    pub variants: Option<Variants>,
    pub given: Given,
}

async fn read_multipart(form: Multipart, web: &WebState) -> ApiResult<JobRequest> {
    let mut vary = (String::new(), String::new());
    let mut names = std::collections::HashSet::new();
    let mut more_pictures = Vec::new();
    let mut last_picture = None;
    let (params, picture) = read_form(form, web, &mut vary, &mut names, &mut more_pictures, &mut last_picture).await?;
    // Text alone, an extension or an edit: the form may still hold a last frame chosen for
    // animating a picture, which they do not use.
    let last_picture = last_picture.filter(|_| picture.is_some() && params.task.is_empty());
    let variants = Variants::from_form(&vary.0, &vary.1).map_err(Failure::bad)?;
    Ok(JobRequest { params, picture, more_pictures, last_picture, variants, given: Given::Only(names) })
}

async fn read_form(
    mut form: Multipart,
    web: &WebState,
    vary: &mut (String, String),
    names: &mut std::collections::HashSet<String>,
    more_pictures: &mut Vec<Picture>,
    last_picture: &mut Option<Upload>,
) -> ApiResult<(JobParams, Option<Picture>)> {
    let mut params = JobParams::default();
    let mut upload = None;
    // Animate many: every `image` field after the first, one job each.
    let mut more_uploads = Vec::new();
    let (mut mode, mut example, mut source) = (None, None, None);
    // A shot list: `segment` fields in order, each optionally followed by its `segment_seed`
    // ("new" draws a fresh one: a re-roll); or `shots`, one prompt per line after `prompt`.
    let mut shots: Option<String> = None;
    // Whether the last `lora` field named one (its `lora_scale` follows).
    let mut lora_row = false;
    let too_big = |e: axum::extract::multipart::MultipartError| {
        let text = e.body_text();
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE || exceeded_limit(&e) {
            Failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the upload is larger than {} MB", crate::media::input::MAX_BYTES / (1024 * 1024)),
            )
        } else {
            Failure::bad(format!("reading the form: {text}"))
        }
    };
    while let Some(field) = form.next_field().await.map_err(too_big)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "image" {
            let file_name = field.file_name().unwrap_or("upload").to_string();
            let bytes = field.bytes().await.map_err(too_big)?;
            if !bytes.is_empty() {
                let this = Upload { bytes: bytes.to_vec(), name: file_name };
                if upload.is_none() {
                    upload = Some(this);
                } else if more_uploads.len() + 1 < app::variants::MAX_VARIANTS {
                    more_uploads.push(this);
                } else {
                    return Err(Failure::bad(format!(
                        "at most {} pictures are animated at once",
                        app::variants::MAX_VARIANTS
                    )));
                }
            }
            continue;
        }
        if name == app::models::LAST_IMAGE {
            let file_name = field.file_name().unwrap_or("last frame").to_string();
            let bytes = field.bytes().await.map_err(too_big)?;
            if !bytes.is_empty() {
                *last_picture = Some(Upload { bytes: bytes.to_vec(), name: file_name });
            }
            continue;
        }
        let value = field_text(field, &name).await?;
        let value = value.trim();
        names.insert(name.clone());
        match name.as_str() {
            "prompt" => params.prompt = value.to_string(),
            "model" => params.model = value.to_string(),
            "seed" if value.is_empty() => params.seed = None,
            "seed" => {
                params.seed =
                    Some(value.parse().map_err(|_| Failure::bad(format!("seed must be a number, not {value:?}")))?)
            }
            "mode" => mode = Some(Mode::parse(value).ok_or_else(|| Failure::bad(format!("unknown mode {value:?}")))?),
            "example" if !value.is_empty() => example = Some(value.to_string()),
            "source" if !value.is_empty() => source = Some(value.to_string()),
            "task" => params.task = value.to_string(),
            "source_frame" if !value.is_empty() => {
                params.source_frame =
                    value.parse().map_err(|_| Failure::bad(format!("the frame must be a number, not {value:?}")))?
            }
            "segment" => params.segments.push(app::params::Segment { prompt: value.to_string(), seed: None }),
            "segment_seed" => {
                let last =
                    params.segments.last_mut().ok_or_else(|| Failure::bad("segment_seed must follow a segment"))?;
                last.seed = match value {
                    "" => None,
                    "new" => Some(crate::ids::random_seed()),
                    v => Some(
                        v.parse().map_err(|_| Failure::bad(format!("a segment's seed must be a number, not {v:?}")))?,
                    ),
                };
            }
            "shots" if !value.is_empty() => shots = Some(value.to_string()),
            // LoRAs: `lora` fields in order, each optionally followed by its `lora_scale` (an
            // empty `lora`, a row left at none, takes the scale after it with it).
            "lora" => {
                lora_row = !value.is_empty();
                if lora_row {
                    params.loras.push(app::params::LoraChoice { file: value.to_string(), scale: 1.0 });
                }
            }
            "lora_scale" if value.is_empty() || !lora_row => {}
            "lora_scale" => {
                if let Some(last) = params.loras.last_mut() {
                    last.scale = value
                        .parse()
                        .map_err(|_| Failure::bad(format!("a LoRA's scale must be a number, not {value:?}")))?;
                }
            }
            "vary" => vary.0 = value.to_string(),
            "vary_values" => vary.1 = value.to_string(),
            // Every model parameter, by its name in `JobParams`.
            param if params.value(param).is_some() => {
                app::models::set_value(&mut params, param, value).then_some(()).ok_or_else(|| {
                    Failure::bad(format!("{} must be a number, not {value:?}", param.replace('_', " ")))
                })?
            }
            _ => {}
        }
    }
    if let Some(shots) = shots {
        let more: Vec<&str> = shots.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if !more.is_empty() && params.segments.is_empty() {
            params.segments.push(app::params::Segment { prompt: params.prompt.clone(), seed: None });
            params.segments.extend(more.iter().map(|p| app::params::Segment { prompt: p.to_string(), seed: None }));
            params.prompt.clear();
        }
    }
    if mode == Some(Mode::Edit) {
        params.task = app::params::EDIT_TASK.into();
    }
    if params.task == app::params::EXTEND_TASK {
        // The source is the video to continue, not an image.
        params.source = source.unwrap_or_default();
        return Ok((params, None));
    }
    if matches!(mode, Some(Mode::TextToVideo | Mode::TextToImage)) {
        // The form keeps a chosen image when the mode is switched back; text modes ignore it.
        return Ok((params, None));
    }
    if upload.is_none()
        && let Some(name) = example
    {
        if !crate::web::studio::list_examples(&web.examples_dir).contains(&name) {
            return Err(Failure::bad(format!("there is no example image {name:?}")));
        }
        let bytes = tokio::fs::read(web.examples_dir.join(&name))
            .await
            .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("reading example {name}: {e}")))?;
        upload = Some(Upload { bytes, name });
    }
    if !more_uploads.is_empty() && (params.task == app::params::EDIT_TASK || mode == Some(Mode::Edit)) {
        return Err(Failure::bad("an edit changes one image: choose one"));
    }
    if params.task == app::params::EDIT_TASK {
        return edit_source(params, upload.map(Picture::Upload), source, web).await;
    }
    more_pictures.extend(more_uploads.into_iter().map(Picture::Upload));
    let mut picture = upload.map(Picture::Upload);
    if picture.is_none()
        && let Some(source) = source
    {
        // A stored image: a remixed clip's source (`input.png`), or a keyframe to animate
        // (`image.png`, `keyframe.png`), by its URL; the queue checks that it is stored.
        let stored = source
            .strip_prefix("/media/")
            .and_then(|s| s.split_once('/'))
            .and_then(|(id, file)| Some((id, MediaFile::parse(file)?)))
            .filter(|(id, file)| {
                is_valid_id(id) && matches!(file, MediaFile::Input | MediaFile::Image | MediaFile::Keyframe)
            });
        let (id, file) =
            stored.ok_or_else(|| Failure::bad("the source image is not a stored input image or keyframe"))?;
        picture = Some(Picture::Stored { id: id.to_string(), file });
    }
    if mode == Some(Mode::ImageToVideo) && picture.is_none() {
        return Err(Failure::bad("choose an image to animate: upload, drop or paste one, or pick an example"));
    }
    Ok((params, picture))
}

/// An edit's image: an upload (a new chain), else a stored result by id or by the URL of its
/// image or one of its frames (the version the edit continues from), or the input of a stored
/// edit (a remix: the same parent again).
async fn edit_source(
    mut params: JobParams,
    picture: Option<Picture>,
    source: Option<String>,
    web: &WebState,
) -> ApiResult<(JobParams, Option<Picture>)> {
    params.source.clear();
    let Some(source) = source.filter(|_| picture.is_none()) else {
        return Ok((params, picture));
    };
    let Some((id, file)) = source.strip_prefix("/media/").and_then(|s| s.split_once('/')) else {
        params.source = source;
        return Ok((params, None));
    };
    match MediaFile::parse(file) {
        Some(MediaFile::Frame(i)) => {
            params.source = id.to_string();
            params.source_frame = i as u32;
            Ok((params, None))
        }
        Some(MediaFile::Image) => {
            params.source = id.to_string();
            Ok((params, None))
        }
        Some(MediaFile::Input) if is_valid_id(id) => {
            let video =
                web.store.video(id.to_string()).await?.ok_or_else(|| Failure::bad("the source image is gone"))?;
            if video.mode == Mode::Edit {
                params.source = video.params.source.clone();
                params.source_frame = video.params.source_frame;
            }
            Ok((params, Some(Picture::Stored { id: id.to_string(), file: MediaFile::Input })))
        }
        _ => Err(Failure::bad(
            "the source of an edit is a stored image or a frame of a clip (/media/ID/image.png, /media/ID/frames/N.png)",
        )),
    }
}

/// Whether a body error comes from a body size limit (somewhere down its source chain).
fn exceeded_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.to_string().contains("length limit exceeded") {
            return true;
        }
        current = err.source();
    }
    false
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

async fn create_job(State(web): State<WebState>, req: Request) -> ApiResult<Response> {
    let html = wants_html(req.headers());
    // Whose token sent it (set by the security guard): it is theirs, and queued jobs take
    // turns by owner.
    let owner = req.extensions().get::<Viewer>().map(|v| v.name.clone()).unwrap_or_default();
    let JobRequest { params, picture, more_pictures, last_picture, variants, given } =
        read_job_request(req, &web).await?;
    if !more_pictures.is_empty() {
        if variants.is_some() {
            return Err(Failure::bad(
                "variants of several pictures at once are not offered: vary one picture, or animate several",
            ));
        }
        let pictures = picture.into_iter().chain(more_pictures).collect();
        let group = web.jobs.submit_pictures(&owner, params, pictures, last_picture, &given).await?;
        if html {
            return Ok(Redirect::to("/queue").into_response());
        }
        return Ok((StatusCode::CREATED, Json(group)).into_response());
    }
    if let Some(variants) = variants {
        let pictures = Pictures { first: picture, last: last_picture };
        let group = web.jobs.submit_variants(&owner, params, pictures, &variants, &given).await?;
        if html {
            return Ok(Redirect::to("/queue").into_response());
        }
        return Ok((StatusCode::CREATED, Json(group)).into_response());
    }
    let job = web.jobs.submit_given(&owner, params, Pictures { first: picture, last: last_picture }, &given).await?;
    if html {
        // A browser without JavaScript posted the Create form: show the queue.
        return Ok(Redirect::to(&format!("/queue#job-{}", job.id)).into_response());
    }
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

async fn list_jobs(State(web): State<WebState>) -> ApiResult<Response> {
    Ok(Json(web.store.jobs(100).await?).into_response())
}

async fn get_job(State(web): State<WebState>, Path(id): Path<String>) -> ApiResult<Response> {
    check_id(&id, "job")?;
    let job = web.store.job(id).await?.ok_or_else(|| Failure::not_found("job"))?;
    Ok(Json(job).into_response())
}

async fn cancel_job(
    State(web): State<WebState>,
    who: Option<Extension<Viewer>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_id(&id, "job")?;
    let job = web.jobs.cancel(&id, &viewer(who)).await?.ok_or_else(|| Failure::not_found("job"))?;
    Ok(Json(job).into_response())
}

/// Decodes a decode-failed job's kept latents again (202 with the queued job; 409 when its
/// decode did not fail).
async fn retry_decode(
    State(web): State<WebState>,
    who: Option<Extension<Viewer>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_id(&id, "job")?;
    let job = web.jobs.retry_decode(&id, &viewer(who)).await?.ok_or_else(|| Failure::not_found("job"))?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct VideoParams {
    pub q: String,
    pub mode: String,
    pub model: String,
    pub favorites: Option<String>,
    pub before: String,
    pub limit: Option<u32>,
    pub sort: String,
    pub flag: String,
    pub group: String,
}

impl VideoParams {
    pub fn to_query(&self) -> ApiResult<VideoQuery> {
        use app::limits::{MAX_NAME_CHARS, MAX_SEARCH_CHARS, check_text};
        check_text("the search", &self.q, MAX_SEARCH_CHARS).map_err(Failure::bad)?;
        check_text("the model name", &self.model, MAX_NAME_CHARS).map_err(Failure::bad)?;
        let mode = match self.mode.as_str() {
            "" | "all" => None,
            m => Some(Mode::parse(m).ok_or_else(|| {
                Failure::bad(format!(
                    "mode must be text-to-video, image-to-video, text-to-image, extend or edit, not {m:?}"
                ))
            })?),
        };
        if !self.before.is_empty() {
            check_id(&self.before, "video").map_err(|_| Failure::bad("`before` is not a video id"))?;
        }
        if !self.group.is_empty() && !is_valid_id(&self.group) {
            return Err(Failure::bad("`group` is not a variants group id"));
        }
        let names = |all: &[&str]| all.join(", ");
        let sort = match self.sort.as_str() {
            "" => GallerySort::Newest,
            s => GallerySort::parse(s).ok_or_else(|| {
                Failure::bad(format!(
                    "sort must be one of {}, not {s:?}",
                    names(&GallerySort::ALL.map(GallerySort::as_str))
                ))
            })?,
        };
        let flag = match self.flag.as_str() {
            "" | "all" => None,
            f => Some(ScoreFlag::parse(f).ok_or_else(|| {
                Failure::bad(format!(
                    "flag must be one of {}, not {f:?}",
                    names(&ScoreFlag::ALL.map(ScoreFlag::as_str))
                ))
            })?),
        };
        Ok(VideoQuery {
            q: self.q.clone(),
            mode,
            model: (!self.model.is_empty()).then(|| self.model.clone()),
            favorites: matches!(self.favorites.as_deref(), Some("1" | "true" | "on" | "yes")),
            before: (!self.before.is_empty()).then(|| self.before.clone()),
            limit: self.limit.unwrap_or(24),
            sort,
            flag,
            group: (!self.group.is_empty()).then(|| self.group.clone()),
            // Whose favourites: the caller's, set from its token.
            favorites_of: String::new(),
        })
    }
}

async fn list_videos(
    State(web): State<WebState>,
    client: Option<Extension<Client>>,
    who: Option<Extension<Viewer>>,
    Query(params): Query<VideoParams>,
) -> ApiResult<Response> {
    let client = client.map(|Extension(c)| c).unwrap_or_default().0;
    let query = VideoQuery { favorites_of: viewer(who).name, ..params.to_query()? };
    let page = crate::visual::search(web.store.as_ref(), web.visual.as_ref(), query, &client).await?;
    Ok(Json(page).into_response())
}

async fn get_video(
    State(web): State<WebState>,
    who: Option<Extension<Viewer>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_id(&id, "video")?;
    let mut video = web.store.video(id).await?.ok_or_else(|| Failure::not_found("video"))?;
    crate::storage::mark_favorites(web.store.as_ref(), &viewer(who).name, std::slice::from_mut(&mut video)).await?;
    Ok(Json(video).into_response())
}

/// An edited image's versions: `{"chain": [...]}`, the first edit first and this one last
/// (the original, when it was an upload, is the first edit's `input.png`).
async fn get_chain(
    State(web): State<WebState>,
    who: Option<Extension<Viewer>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_id(&id, "video")?;
    let mut chain = web.jobs.chain(&id).await?;
    crate::storage::mark_favorites(web.store.as_ref(), &viewer(who).name, &mut chain).await?;
    if chain.is_empty() {
        return Err(Failure::not_found("video"));
    }
    Ok(Json(serde_json::json!({ "chain": chain })).into_response())
}

async fn delete_video(
    State(web): State<WebState>,
    who: Option<Extension<Viewer>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_id(&id, "video")?;
    if !web.jobs.delete_video(&id, &viewer(who)).await? {
        return Err(Failure::not_found("video"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every model this server runs, with its tasks and every parameter's bounds, default and
/// help: what the Create page draws its form from, and what job requests are checked against.
async fn list_models(State(web): State<WebState>) -> ApiResult<Response> {
    Ok(Json(web.registry.infos()).into_response())
}

/// The LoRA files jobs may name (`{"loras": [file, ...]}`), for the models that take them.
async fn list_loras(State(web): State<WebState>) -> ApiResult<Response> {
    Ok(Json(serde_json::json!({ "loras": web.registry.loras.list() })).into_response())
}

/// The settings embedded in a file this server made (an MP4, GIF or PNG, sent as the body):
/// `{"mode", "params"}`, for restoring them on the Create page. 400 when the file has none.
async fn settings_of_file(body: axum::body::Bytes) -> ApiResult<Response> {
    let meta = crate::media::encode::embedded_metadata(&body).ok_or_else(|| {
        Failure::bad("this file carries no vidplay settings (only MP4, GIF and PNG files made here do)")
    })?;
    let meta = app::results::ResultMeta::from_value(meta);
    if meta.version == 0 {
        return Err(Failure::bad("this file's settings cannot be read"));
    }
    Ok(Json(app::types::FileSettings { mode: meta.mode, params: meta.params }).into_response())
}

async fn health(State(web): State<WebState>) -> ApiResult<Response> {
    Ok(Json(web.jobs.health().await?).into_response())
}

#[derive(Debug, Deserialize)]
struct EventParams {
    id: Option<String>,
}

/// Server-sent events, optionally for one job id: a `job` event (the whole job as JSON) when a
/// job's state changes, a `step` event (`{"id", "step", "total"}`) as it progresses. At most
/// [`crate::limits::STREAMS_PER_CLIENT`] per client (429 beyond) and
/// [`crate::queue::events::MAX_EVENT_STREAMS`] in all (503 beyond); a listener that falls
/// behind is dropped (browsers reconnect by themselves); every stream ends when the server
/// shuts down.
async fn job_events(
    State(web): State<WebState>,
    client: Option<Extension<Client>>,
    Query(params): Query<EventParams>,
) -> ApiResult<Response> {
    if let Some(id) = &params.id {
        check_id(id, "job")?;
    }
    let client = client.map(|Extension(c)| c).unwrap_or_default().0;
    let Some(own) = web.streams.take(&client) else {
        let why = format!(
            "you have {} event streams open already (a tab each); close one, or try again later",
            crate::limits::STREAMS_PER_CLIENT
        );
        return Err(Failure(StatusCode::TOO_MANY_REQUESTS, why));
    };
    let Some(slot) = web.jobs.stream_slot() else {
        return Err(Failure(StatusCode::SERVICE_UNAVAILABLE, "too many open event streams; try again later".into()));
    };
    let only = params.id;
    let stream = BroadcastStream::new(web.jobs.subscribe()).map_while(|update| update.ok()).filter_map(move |event| {
        let _held = (&slot, &own);
        if only.as_ref().is_some_and(|id| id != event.job_id()) {
            return None;
        }
        let sse = match &event {
            JobEvent::Changed(job) => Event::default().event("job").json_data(job),
            JobEvent::Step(step) => Event::default().event("step").json_data(step),
        };
        Some(Ok::<_, Infallible>(sse.unwrap_or_default()))
    });
    let stream = futures_util::StreamExt::take_until(stream, web.jobs.closing());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
