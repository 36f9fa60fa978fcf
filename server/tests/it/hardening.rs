//! The server refuses what it must, survives what it must, and loses nothing: bounded input,
//! other origins and unknown host names refused, a token, security headers, bounded event
//! streams and uploads, a panicking generation, cancels racing the worker, this store's orphans
//! cleaned at start (and nobody else's files); and, with the real `vidplay` binary, prompt
//! shutdown on SIGTERM and a crash (abort) at every step of finishing a job.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use server::faults::{CrashPoint, Faults};
use server::web::security::Access;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tower::ServiceExt;

fn with(mut req: Request<Body>, headers: &[(&'static str, &str)]) -> Request<Body> {
    for (name, value) in headers {
        req.headers_mut().insert(*name, value.parse().unwrap());
    }
    req
}

async fn job_count(app: &axum::Router) -> usize {
    send_json(app, get("/api/jobs")).await.1.as_array().unwrap().len()
}

fn raw_json(body: &'static str) -> Request<Body> {
    Request::post("/api/jobs").header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_and_text_are_bounded_everywhere() {
    let data = data_dir("bounds");
    let (app, _jobs) = start_custom(&data, no_models(), Access::local(), Faults::default()).await;
    let bad = StatusCode::BAD_REQUEST;
    // 1e39 does not fit an f32: it used to be stored as an infinite number (then `null`).
    assert_rejected(&app, raw_json(r#"{"prompt": "a red ball", "keyframe_guidance": 1e39}"#), bad, "keyframe_guidance")
        .await;
    assert_rejected(&app, raw_json(r#"{"prompt": "a red ball", "guidance": 1e39}"#), bad, "guidance").await;
    assert_rejected(&app, raw_json(r#"{"prompt": "a red ball", "motion": -1e39}"#), bad, "motion").await;
    assert_rejected(&app, raw_json(r#"{"prompt": "a red ball", "image_guidance": 99}"#), bad, "image_guidance").await;
    for value in ["inf", "NaN", "-inf", "1e39"] {
        let form = multipart(&[("prompt", "a red ball"), ("guidance", value)], None);
        assert_rejected(&app, post_multipart(form), bad, "guidance").await;
    }
    let long = "x".repeat(app::limits::MAX_PROMPT_CHARS + 1);
    assert_rejected(&app, post_json(json!({"prompt": "a red ball", "negative": long})), bad, "negative prompt").await;
    assert_rejected(
        &app,
        post_multipart(multipart(&[("prompt", "a red ball"), ("negative", &long)], None)),
        bad,
        "negative prompt",
    )
    .await;
    assert_rejected(&app, post_json(json!({"prompt": "a red ball", "model": "m".repeat(300)})), bad, "model name")
        .await;
    let search = "q".repeat(app::limits::MAX_SEARCH_CHARS + 1);
    assert_rejected(&app, get(&format!("/api/videos?q={search}")), bad, "search").await;
    // A server function refuses too, with 400.
    use leptos::server_fn::ServerFn;
    let read = Request::post(app::calls::ReadPrompt::PATH)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("prompt={long}")))
        .unwrap();
    let (status, body) = send(&app, read).await;
    assert_eq!(status, bad, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("longer than"));
    // Nothing was stored, and the listing works.
    assert_eq!(job_count(&app).await, 0);
    let (status, _) = send_json(&app, post_json(json!({"prompt": "a red ball", "steps": 1, "guidance": 20}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(job_count(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_and_unknown_hosts_cannot_act() {
    let data = data_dir("origins");
    let (app, _jobs) = start_custom(&data, no_models(), Access::local(), Faults::default()).await;
    let host = ("host", "localhost:3000");
    let forbidden = StatusCode::FORBIDDEN;
    // A plain HTML form on another site (multipart needs no preflight).
    let form = || post_multipart(multipart(&[("prompt", "a red ball"), ("steps", "1")], None));
    assert_rejected(&app, with(form(), &[host, ("origin", "http://evil.example")]), forbidden, "other sites").await;
    assert_rejected(&app, with(form(), &[host, ("origin", "null")]), forbidden, "other sites").await;
    assert_rejected(&app, with(form(), &[host, ("origin", "http://localhost:8080")]), forbidden, "other sites").await;
    assert_rejected(&app, with(form(), &[host, ("sec-fetch-site", "cross-site")]), forbidden, "other sites").await;
    let delete = Request::delete("/api/videos/0123456789abcdef").body(Body::empty()).unwrap();
    assert_rejected(&app, with(delete, &[host, ("origin", "https://evil.example")]), forbidden, "other sites").await;
    use leptos::server_fn::ServerFn;
    let server_fn = Request::post(app::calls::DeleteVideo::PATH)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("id=0123456789abcdef"))
        .unwrap();
    assert_rejected(&app, with(server_fn, &[host, ("origin", "http://evil.example")]), forbidden, "other sites").await;
    // DNS rebinding: a page on evil.example whose name now points at 127.0.0.1.
    assert_rejected(&app, with(get("/api/jobs"), &[("host", "evil.example:3000")]), forbidden, "--public-host").await;
    assert_rejected(
        &app,
        with(form(), &[("host", "evil.example:3000"), ("origin", "http://evil.example:3000")]),
        forbidden,
        "",
    )
    .await;
    assert_eq!(job_count(&app).await, 0, "nothing was queued");
    // Our own pages and origin-less clients (curl, scripts) still work.
    let (status, _) =
        send_json(&app, with(form(), &[host, ("origin", "http://localhost:3000"), ("sec-fetch-site", "same-origin")]))
            .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send_json(&app, form()).await;
    assert_eq!(status, StatusCode::CREATED);
    // Every response says: no sniffing, no framing, a CSP, no referrer to other sites.
    for path in ["/", "/api/jobs", "/no/such/page"] {
        let resp = app.clone().oneshot(get(path)).await.unwrap();
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"), "{path}: {csp}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert!(!csp.split(';').any(|d| d.contains("script-src") && d.contains("unsafe-inline")), "{path}: {csp}");
    }
    // A page's inline scripts (hydration, streaming) run by its nonce, and only by it.
    let resp = app.clone().oneshot(get("/")).await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the page's policy")
        .to_string();
    let html = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the page's scripts carry the nonce");
    let again = app.clone().oneshot(get("/")).await.unwrap();
    assert!(
        !again.headers()["content-security-policy"].to_str().unwrap().contains(&nonce),
        "a new nonce every response"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_tokens_each_have_their_own_queue() {
    use server::web::security::read_tokens;
    let data = data_dir("named-tokens");
    let named = read_tokens("# the lab\nann ann-secret-123456\n\nbob bob-secret-123456\n").unwrap();
    assert!(read_tokens("ann short").unwrap_err().contains("shorter"));
    assert!(read_tokens("ann ann-secret-123456\nann other-secret-123456").unwrap_err().contains("twice"));
    let access = Access::new("127.0.0.1:0".parse().unwrap(), &[], None).with_named(named);
    // The worker holds its first job, so the rest wait in the queue.
    let faults = Faults { pause_after_claim: Some(Duration::from_secs(60)), ..Faults::default() };
    let (app, _jobs) = start_custom(&data, no_models(), access, faults).await;
    assert_rejected(&app, post_json(json!({"prompt": "a red ball"})), StatusCode::UNAUTHORIZED, "token").await;
    let ann = ("authorization", "Bearer ann-secret-123456");
    let bob = ("authorization", "Bearer bob-secret-123456");
    let mut accepted = 0;
    loop {
        let (status, job) = send_json(&app, with(post_json(json!({"prompt": "a red ball", "steps": 1})), &[ann])).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(status, StatusCode::CREATED, "{job}");
        assert_eq!(job["owner"], "ann");
        accepted += 1;
        assert!(accepted <= server::queue::QUEUE_LIMIT + 1, "ann's queue has a limit");
    }
    assert!(accepted >= server::queue::QUEUE_LIMIT, "{accepted}");
    // Ann's full queue does not hold Bob back.
    let (status, job) = send_json(&app, with(post_json(json!({"prompt": "a blue star", "steps": 1})), &[bob])).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["owner"], "bob");
    let id = job["id"].as_str().unwrap();
    let (_, stored) = send_json(&app, with(get(&format!("/api/jobs/{id}")), &[bob])).await;
    assert_eq!(stored["owner"], "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_the_api_the_pages_and_the_media() {
    let data = data_dir("token");
    let access = Access::new("127.0.0.1:0".parse().unwrap(), &[], Some("s3cret-token".into()));
    let (app, _jobs) = start_custom(&data, no_models(), access, Faults::default()).await;
    assert_rejected(&app, get("/api/jobs"), StatusCode::UNAUTHORIZED, "token").await;
    assert_rejected(
        &app,
        with(get("/api/jobs"), &[("authorization", "Bearer wrong")]),
        StatusCode::UNAUTHORIZED,
        "token",
    )
    .await;
    assert_rejected(&app, post_json(json!({"prompt": "a red ball"})), StatusCode::UNAUTHORIZED, "token").await;
    assert_rejected(&app, get("/media/0123456789abcdef/video.mp4"), StatusCode::UNAUTHORIZED, "token").await;
    let bearer = ("authorization", "Bearer s3cret-token");
    let (status, job) = send_json(&app, with(post_json(json!({"prompt": "a red ball", "steps": 1})), &[bearer])).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, list) = send_json(&app, with(get("/api/jobs"), &[bearer])).await;
    assert_eq!((status, list.as_array().unwrap().len()), (StatusCode::OK, 1));
    // Media behind a token are for the browser's own cache, never a shared one.
    let id = job["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while send_json(&app, with(get(&format!("/api/jobs/{id}")), &[bearer])).await.1["state"] != "done" {
        assert!(Instant::now() < deadline, "the job did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = app.clone().oneshot(with(get(&format!("/media/{id}/poster.png")), &[bearer])).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "private, max-age=31536000, immutable");

    // A person: sent to the sign-in page, signs in, gets an HttpOnly SameSite=Strict cookie.
    let resp = app.clone().oneshot(with(get("/gallery?q=red"), &[("accept", "text/html")])).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/signin?next=/gallery%3Fq%3Dred");
    let (status, page) = send(&app, get("/signin?next=/gallery")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page).contains("Sign in"));
    let signin = |token: &str| {
        Request::post("/signin")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}&next=/gallery")))
            .unwrap()
    };
    let resp = app.clone().oneshot(signin("guess")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    let resp = app.clone().oneshot(signin("s3cret-token")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/gallery");
    let cookie = resp.headers()[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("s3cret-token"), "the cookie holds a MAC, not the token: {cookie}");
    assert!(!cookie.contains("Secure"), "no trusted proxy says https: {cookie}");
    let cookie = cookie.split(';').next().unwrap().to_string();
    let (status, html) = send(&app, with(get("/gallery"), &[("cookie", &cookie), ("accept", "text/html")])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&html).contains("Gallery"));
    let (status, _) = send(&app, with(get("/api/jobs"), &[("cookie", &cookie)])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_are_limited_per_client_and_cookies_are_secure_behind_https() {
    let data = data_dir("signins");
    let access = Access::new("127.0.0.1:0".parse().unwrap(), &[], Some("s3cret-token".into())).with_trust_proxy(true);
    let (app, _jobs) = start_custom(&data, no_models(), access, Faults::default()).await;
    let signin = |token: &str, client: &str, https: bool| {
        let mut req = Request::post("/signin")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("x-forwarded-for", format!("198.51.100.9, {client}"));
        if https {
            req = req.header("x-forwarded-proto", "https");
        }
        req.body(Body::from(format!("token={token}&next=/"))).unwrap()
    };
    let resp = app.clone().oneshot(signin("s3cret-token", "203.0.113.5", true)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp.headers()[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let resp = app.clone().oneshot(signin("s3cret-token", "203.0.113.5", false)).await.unwrap();
    assert!(!resp.headers()[header::SET_COOKIE].to_str().unwrap().contains("Secure"));
    // The cookie is not the token: sent as a cookie, the token itself is refused.
    let (status, _) = send(&app, with(get("/api/jobs"), &[("cookie", "vidplay_session=s3cret-token")])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let value = cookie.split(';').next().unwrap().to_string();
    assert_eq!(send(&app, with(get("/api/jobs"), &[("cookie", &value)])).await.0, StatusCode::OK);

    // Guessing: each client has a few tries, then waits, even with the right token.
    let limit = server::web::security::SIGN_IN_FAILURES;
    for _ in 0..limit {
        let resp = app.clone().oneshot(signin("guess-guess-guess", "203.0.113.7", true)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = app.clone().oneshot(signin("s3cret-token", "203.0.113.7", true)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key(header::RETRY_AFTER) && resp.headers().get(header::SET_COOKIE).is_none());
    let page = String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).to_string();
    assert!(page.contains("Too many wrong tokens"), "{page}");
    // The address the client wrote itself before the proxy's is not who it is.
    let resp = app.clone().oneshot(signin("s3cret-token", "203.0.113.8", true)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "another client signs in");
    // Nor is a header line of its own before the proxy's line.
    let mut own_line = signin("s3cret-token", "203.0.113.7", true);
    own_line.headers_mut().insert("x-forwarded-for", "203.0.113.200".parse().unwrap());
    own_line.headers_mut().append("x-forwarded-for", "203.0.113.7".parse().unwrap());
    assert_eq!(app.clone().oneshot(own_line).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);

    // Tokens guessed at the API count alike: bearer tokens, then cookies.
    let api = |auth: (&'static str, String), client: &str| {
        let mut req = with(get("/api/jobs"), &[("x-forwarded-for", client)]);
        req.headers_mut().insert(auth.0, auth.1.parse().unwrap());
        req
    };
    for i in 0..limit {
        let guess = if i % 2 == 0 {
            ("authorization", format!("Bearer guess-{i}-guess-guess"))
        } else {
            ("cookie", format!("vidplay_session=guess{i}"))
        };
        assert_eq!(send(&app, api(guess, "203.0.113.9")).await.0, StatusCode::UNAUTHORIZED);
    }
    let right = ("authorization", "Bearer s3cret-token".to_string());
    let resp = app.clone().oneshot(api(right.clone(), "203.0.113.9")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "a right guess tells it nothing now");
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(send(&app, api(right, "203.0.113.10")).await.0, StatusCode::OK);

    // The cookie of earlier versions (it held the token) is removed wherever it is sent.
    let resp = app.clone().oneshot(with(get("/signin"), &[("cookie", "vidplay_token=s3cret-token")])).await.unwrap();
    let removals: Vec<_> = resp.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
    assert!(removals.iter().any(|c| c.starts_with("vidplay_token=;") && c.contains("Max-Age=0")), "{removals:?}");
}

/// Reads server-sent events from a response body until `stop` says so.
async fn read_events(body: &mut Body, until: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(5), body.frame()).await else { continue };
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
            if until(&text) {
                break;
            }
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_and_uploads_are_bounded() {
    let data = data_dir("resources");
    let (app, jobs) = start_custom(&data, no_models(), Access::local(), Faults::default()).await;
    // Each client (here, an address) holds a few streams; all clients together a bounded number.
    let from = |client: u8| {
        let mut req = get("/api/jobs/events");
        req.extensions_mut().insert(axum::extract::ConnectInfo(SocketAddr::from(([192, 0, 2, client], 50_000))));
        req
    };
    let per_client = server::limits::STREAMS_PER_CLIENT;
    let mut streams = Vec::new();
    for i in 0..server::queue::events::MAX_EVENT_STREAMS {
        let resp = app.clone().oneshot(from((i / per_client) as u8)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        streams.push(resp.into_body());
    }
    assert_rejected(&app, from(0), StatusCode::TOO_MANY_REQUESTS, "event streams open already").await;
    assert_rejected(&app, from(200), StatusCode::SERVICE_UNAVAILABLE, "too many").await;
    drop(streams.pop());
    let resp = app.clone().oneshot(from(200)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut events = resp.into_body();

    // Progress events carry progress, not the whole job.
    let (_, long) = send_json(&app, post_json(json!({"prompt": "a blue square spinning", "steps": 200}))).await;
    let long = long["id"].as_str().unwrap().to_string();
    let text = read_events(&mut events, |t| t.matches("event: step").count() >= 2).await;
    let step = text.split("event: step\ndata: ").nth(1).and_then(|rest| rest.lines().next()).expect("a step event");
    let step: Value = serde_json::from_str(step).unwrap();
    assert_eq!(step["id"], long.as_str());
    assert!(step.get("params").is_none() && step["total"] == 200, "{step}");

    // An upload larger than any model uses is kept at that size (it waits behind the long job).
    let (status, big) = send_json(
        &app,
        post_multipart(multipart(&[("prompt", "camera pans left")], Some(("wide.png", &png(3000, 600))))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{big}");
    let big = big["id"].as_str().unwrap().to_string();
    let stored = data.join("uploads").join(format!("{big}.png"));
    let side = jobs.registry().max_input_side();
    assert_eq!(image::image_dimensions(&stored).unwrap(), (side, (side as f64 / 5.0).round() as u32));

    // A full queue is refused before any upload is decoded (this one is not even an image).
    while send_json(&app, post_json(json!({"prompt": "a red ball", "steps": 1}))).await.0 == StatusCode::CREATED {}
    assert_rejected(
        &app,
        post_multipart(multipart(&[], Some(("junk.png", b"not an image")))),
        StatusCode::TOO_MANY_REQUESTS,
        "queue is full",
    )
    .await;

    // Cancelled jobs leave no upload behind.
    let (status, _) = send_json(&app, Request::delete(format!("/api/jobs/{big}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!stored.exists(), "the cancelled job's upload is removed");
    // Shutting down ends every open event stream.
    let open = streams.pop().unwrap();
    jobs.begin_shutdown();
    let ended = tokio::time::timeout(Duration::from_secs(10), open.collect()).await;
    assert!(ended.is_ok(), "an open event stream ended with the shutdown");
    jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_its_job_and_the_worker_goes_on() {
    let data = data_dir("panic");
    let faults = Faults { panic_on: Some("PANICNOW".into()), ..Faults::default() };
    let (app, _jobs) = start_custom(&data, no_models(), Access::local(), faults).await;
    let (_, bad) = send_json(
        &app,
        post_multipart(multipart(&[("prompt", "PANICNOW"), ("steps", "1")], Some(("p.png", &png(40, 40))))),
    )
    .await;
    let bad = bad["id"].as_str().unwrap().to_string();
    let (_, good) = send_json(&app, post_json(json!({"prompt": "a red ball", "steps": 1}))).await;
    let good = good["id"].as_str().unwrap().to_string();
    let failed = wait_for(&app, &bad, |j| j["state"] != "queued" && j["state"] != "running").await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["message"].as_str().unwrap().contains("crashed"), "{failed}");
    assert!(!data.join("uploads").join(format!("{bad}.png")).exists(), "a failed job's upload is removed");
    wait_for(&app, &good, |j| j["state"] == "done").await;
    let (status, health) = send_json(&app, get("/api/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((health["worker_alive"].as_bool(), health["stalled"].as_bool()), (Some(true), Some(false)), "{health}");
    assert_eq!(health["queue_length"], 0);
    assert!(health["last_error"].as_str().unwrap().contains("crashed"), "{health}");
    let (status, html) = send(&app, get("/queue")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!String::from_utf8_lossy(&html).contains("Nothing is running"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_a_model_shows_as_stalled() {
    let data = data_dir("stalled");
    let opts = server::web::ServeOptions {
        database_url: None,
        media: None,
        media_endpoint: None,
        worker: Some(server::queue::WorkerSetup::new("test".into(), vec!["cpu".into()])),
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.clone(),
        site_root: site_root(),
        seed_examples: false,
        models_dir: Some(no_models()),
        access: Access::local(),
        model_memory_mib: 4096,
        faults: Faults::default(),
        visual_min_similarity: server::visual::MIN_SIMILARITY,
    };
    let config = model::builtin::pipeline::BuiltinModel::config_of(None).unwrap();
    let (app, _jobs) = server::web::build(&opts, config, || Err(anyhow::anyhow!("no weights here"))).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let (_, health) = send_json(&app, get("/api/health")).await;
        if health["stalled"] == true || Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health["stalled"], true, "{health}");
    let (_, html) = send(&app, get("/queue")).await;
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains("Nothing is running") && html.contains("no weights here"), "the queue page says why");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_claim_is_never_lost() {
    let data = data_dir("race");
    // The worker lingers between claiming a job and starting it: the window a cancel used to
    // fall into (the job no longer queued, its cancel flag not yet made).
    let faults = Faults { pause_after_claim: Some(Duration::from_millis(300)), ..Faults::default() };
    let (app, _jobs) = start_custom(&data, no_models(), Access::local(), faults).await;
    for round in 0..3 {
        let (_, job) = send_json(&app, post_json(json!({"prompt": "a red ball", "steps": 60, "seed": round}))).await;
        let id = job["id"].as_str().unwrap().to_string();
        wait_for(&app, &id, |j| j["state"] == "running").await;
        send_json(&app, Request::delete(format!("/api/jobs/{id}")).body(Body::empty()).unwrap()).await;
        let end = wait_for(&app, &id, |j| j["state"] != "queued" && j["state"] != "running").await;
        assert_eq!((end["state"].as_str(), end["step"].as_u64()), (Some("cancelled"), Some(0)), "{end}");
    }
    for round in 0..20u64 {
        let (status, job) =
            send_json(&app, post_json(json!({"prompt": "a red ball moving left", "steps": 60, "seed": round}))).await;
        assert_eq!(status, StatusCode::CREATED);
        let id = job["id"].as_str().unwrap().to_string();
        // Sometimes before the worker claims it, sometimes during, sometimes just after.
        tokio::time::sleep(Duration::from_micros(round * 97 % 3000)).await;
        let (status, _) =
            send_json(&app, Request::delete(format!("/api/jobs/{id}")).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let end = wait_for(&app, &id, |j| j["state"] != "queued" && j["state"] != "running").await;
        assert_eq!(end["state"], "cancelled", "round {round}: {end}");
    }
    let (_, page) = send_json(&app, get("/api/videos")).await;
    assert!(page["videos"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_cleaned_at_start_and_deleted_media_are_gone_at_once() {
    let data = data_dir("orphans");
    let (id, dropped) = {
        let (app, jobs) = start_custom(&data, no_models(), Access::local(), Faults::default()).await;
        let mut ids = Vec::new();
        for prompt in ["a red ball", "a blue ball"] {
            let (_, job) = send_json(&app, post_json(json!({"prompt": prompt, "steps": 1}))).await;
            let id = job["id"].as_str().unwrap().to_string();
            wait_for(&app, &id, |j| j["state"] == "done").await;
            ids.push(id);
        }
        let (status, _) =
            send(&app, Request::delete(format!("/api/videos/{}", ids[1])).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        jobs.shutdown().await;
        (ids[0].clone(), ids[1].clone())
    };
    let media = data.join("media");
    let uploads = data.join("uploads");
    // What this store's jobs left: a removal that failed (the dropped video's files), folders
    // of older versions, the upload of a finished job.
    let ours = [
        media.join(&dropped),
        media.join(format!("{id}.partial")),
        media.join(format!("{id}.deleted-0123456789abcdef")),
    ];
    // What other stores sharing the folder keep there: ids this store never made.
    let theirs = [media.join("0123456789abcdef"), media.join("0123456789abcde0.partial"), media.join("not-an-id")];
    for dir in ours.iter().chain(&theirs) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("video.mp4"), b"stale").unwrap();
    }
    let our_upload = uploads.join(format!("{id}.png"));
    let their_upload = uploads.join("0123456789abcdef.png");
    std::fs::create_dir_all(&uploads).unwrap();
    for file in [&our_upload, &their_upload] {
        std::fs::write(file, png(4, 4)).unwrap();
    }
    let (app, _jobs) = start_custom(&data, no_models(), Access::local(), Faults::default()).await;
    for dir in &ours {
        assert!(!dir.exists(), "{} was left", dir.display());
    }
    assert!(!our_upload.exists());
    for dir in &theirs {
        assert!(dir.join("video.mp4").exists(), "{} is another store's and was removed", dir.display());
    }
    assert!(their_upload.exists(), "another store's upload was removed");
    assert!(media.join(&id).join("video.mp4").exists(), "the real video stays");
    let (status, _) = send(&app, get(&format!("/media/{id}/video.mp4?download"))).await;
    assert_eq!(status, StatusCode::OK);
    let resp = app.clone().oneshot(get(&format!("/media/{id}/video.gif?download"))).await.unwrap();
    let disposition = resp.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().to_string();
    assert!(
        disposition.starts_with("attachment;") && disposition.contains(&format!("vidplay-{id}-video.gif")),
        "{disposition}"
    );
    let (status, _) = send(&app, Request::delete(format!("/api/videos/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(&app, get(&format!("/media/{id}/video.mp4"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Empty folders are removed with their last file; the other stores' files stay.
    let mut left: Vec<_> = std::fs::read_dir(&media).unwrap().map(|e| e.unwrap().path()).collect();
    left.sort();
    let mut expected = theirs.to_vec();
    expected.sort();
    assert_eq!(left, expected);
}

// ---- The real binary ----

struct Server {
    child: Child,
    addr: SocketAddr,
    /// Kept open: the server's stdout is not a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start(data: &Path, faults: Option<&str>) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vidplay"));
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--no-examples", "--device", "cpu"])
            .arg("--data-dir")
            .arg(data)
            .arg("--site-root")
            .arg(site_root())
            .arg("--models-dir")
            .arg(no_models())
            .env_remove("VIDPLAY_TOKEN")
            .env_remove("VIDPLAY_TEST_FAULTS")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(f) = faults {
            cmd.env("VIDPLAY_TEST_FAULTS", f);
        }
        let mut child = cmd.spawn().expect("start vidplay serve");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr, _stdout: stdout }
    }

    /// One HTTP/1.1 request; the status and the body.
    fn request(&self, method: &str, path: &str, json: Option<Value>) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        let body = json.map(|j| j.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let out = String::from_utf8_lossy(&out);
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    fn job(&self, id: &str) -> Value {
        let (_, body) = self.request("GET", &format!("/api/jobs/{id}"), None);
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    fn wait_job(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let job = self.job(id);
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} never got there: {job}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the process to end by itself; its exit status.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_ends_open_streams_and_requeues_the_running_job() {
    let data = data_dir("sigterm");
    let id = {
        let mut server = Server::start(&data, None);
        let (status, job) =
            server.request("POST", "/api/jobs", Some(json!({"prompt": "a blue square spinning", "steps": 200})));
        assert_eq!(status, 201, "{job}");
        let id = serde_json::from_str::<Value>(&job).unwrap()["id"].as_str().unwrap().to_string();
        server.wait_job(&id, |j| j["state"] == "running" && j["step"].as_u64() > Some(0));
        // Pages with live updates are open.
        let streams: Vec<TcpStream> = (0..3)
            .map(|_| {
                let mut s = TcpStream::connect(server.addr).unwrap();
                write!(
                    s,
                    "GET /api/jobs/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
                    server.addr
                )
                .unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        terminate(&server.child);
        let status = server.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "a clean shutdown, not the fallback exit: {status:?}");
        drop(streams);
        id
    };
    let server = Server::start(&data, None);
    let job = server.job(&id);
    assert!(job["state"] == "queued" || job["state"] == "running", "queued again: {job}");
    assert!(job["message"].as_str().unwrap_or("").contains("queued again"), "{job}");
    let (_, _) = server.request("DELETE", &format!("/api/jobs/{id}"), None);
    server.wait_job(&id, |j| j["state"] == "cancelled");
}

#[test]
fn a_crash_at_any_step_of_finishing_a_job_loses_nothing() {
    for point in CrashPoint::ALL {
        let data = data_dir(&format!("crash-{}", point.name()));
        let id = {
            let mut server = Server::start(&data, Some(&format!("crash-at={}", point.name())));
            let (status, job) = server.request(
                "POST",
                "/api/jobs",
                Some(json!({"prompt": "a red ball moving right", "steps": 2, "seed": 3})),
            );
            assert_eq!(status, 201, "{job}");
            let status = server.wait_exit(Duration::from_secs(120));
            assert!(!status.success(), "{}: the injected crash happened", point.name());
            serde_json::from_str::<Value>(&job).unwrap()["id"].as_str().unwrap().to_string()
        };
        let server = Server::start(&data, None);
        let job = server.wait_job(&id, |j| j["state"] != "queued" && j["state"] != "running");
        assert_eq!(job["state"], "done", "{}: {job}", point.name());
        let (_, page) = server.request("GET", "/api/videos", None);
        let page: Value = serde_json::from_str(&page).unwrap();
        let ids: Vec<&str> = page["videos"].as_array().unwrap().iter().filter_map(|v| v["id"].as_str()).collect();
        assert_eq!(ids, [id.as_str()], "{}: exactly one video", point.name());
        let media: Vec<String> = std::fs::read_dir(data.join("media"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(media, std::slice::from_ref(&id), "{}: no orphan media", point.name());
        let (status, _) = server.request("GET", &format!("/media/{id}/video.mp4"), None);
        assert_eq!(status, 200, "{}", point.name());
    }
}

/// The process ends while decoding (as when the system runs out of memory): after the
/// restart the job is not sampled again: its kept latents are decoded again, in smaller pieces.
#[test]
fn a_process_that_dies_while_decoding_loses_no_sampling() {
    let data = data_dir("decode-abort");
    let id = {
        let mut server = Server::start(&data, Some("abort-decode-on=DECODEFAULT"));
        let (status, job) = server.request(
            "POST",
            "/api/jobs",
            Some(json!({"prompt": "a red ball moving right DECODEFAULT", "steps": 2, "seed": 3})),
        );
        assert_eq!(status, 201, "{job}");
        assert!(!server.wait_exit(Duration::from_secs(120)).success(), "the injected end happened");
        serde_json::from_str::<Value>(&job).unwrap()["id"].as_str().unwrap().to_string()
    };
    assert!(data.join("latents").join(format!("{id}.safetensors")).is_file(), "sampled, then kept");
    let server = Server::start(&data, None);
    let job = server.wait_job(&id, |j| j["state"] != "queued" && j["state"] != "running");
    assert_eq!((&job["state"], &job["decode_retries"]), (&json!("done"), &json!(1)), "{job}");
    let (_, video) = server.request("GET", &format!("/api/videos/{id}"), None);
    let video: Value = serde_json::from_str(&video).unwrap();
    assert_eq!(video["metadata"]["decode_retry"], 1, "the decoder alone: {video}");
    let (status, _) = server.request("GET", &format!("/media/{id}/video.mp4"), None);
    assert_eq!(status, 200);
    assert!(!data.join("latents").join(format!("{id}.safetensors")).exists());
}

#[test]
fn listening_beyond_loopback_needs_a_token() {
    let data = data_dir("exposed");
    let out = Command::new(env!("CARGO_BIN_EXE_vidplay"))
        .args(["serve", "--addr", "0.0.0.0:0", "--no-examples"])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("VIDPLAY_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--token") && stderr.contains("--no-auth"), "{stderr}");
    assert!(!data.join("vidplay.db").exists(), "nothing was started");
}
