//! People own their work: with named tokens, everyone signed in sees the shared gallery and
//! queue, only a job's or video's owner or the administrator may cancel or delete it (403
//! otherwise, and the pages offer it to nobody else), and favourites are each person's own.
//! Every route and server function falls under one rule (`server::web::rules`): enumerated
//! here from the router's sources, the page routes and the registered server functions, and
//! each tried against its rule.

use crate::common::*;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};
use server::faults::Faults;
use server::web::rules::{ROUTES, Rule, SERVER_FUNCTIONS};
use server::web::security::{Access, read_tokens};
use std::time::{Duration, Instant};

const ANN: (&str, &str) = ("authorization", "Bearer ann-secret-123456");
const BOB: (&str, &str) = ("authorization", "Bearer bob-secret-123456");
const ADMIN: (&str, &str) = ("authorization", "Bearer admin-secret-1234");

fn as_(mut req: Request<Body>, who: Option<(&'static str, &str)>) -> Request<Body> {
    if let Some((name, value)) = who {
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    req
}

fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(uri).body(Body::empty()).unwrap()
}

/// A server function call with form fields (those taking JSON get a body they refuse: enough
/// to show who gets past the guard).
fn server_fn(path: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}

/// The answer's status, and its text when it is a refusal (a stream's is never read: the event
/// stream does not end).
async fn answer(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    if !status.is_client_error() {
        return (status, String::new());
    }
    (status, String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned())
}

/// The registered server function's path for `name` (its function in `app::calls`).
fn server_fn_path(name: &str) -> Option<&'static str> {
    leptos::server_fn::axum::server_fn_paths().map(|(path, _)| path).find(|path| {
        path.strip_prefix("/api/")
            .and_then(|rest| rest.strip_prefix(name))
            .is_some_and(|hash| hash.chars().all(|c| c.is_ascii_digit()))
    })
}

/// The route with its `{id}` as `id` and its `{*file}` as a file that exists.
fn concrete(pattern: &str, id: &str) -> String {
    pattern.replace("{id}", id).replace("{*file}", "poster.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_change_only_their_own_work_and_every_route_has_its_rule() {
    // Every route registered (axum's, read from the sources; the pages' and the server
    // functions', as registered) has a rule, and every rule names something registered.
    let mut registered: Vec<(String, String)> = crate::docs::routes();
    for page in leptos_axum::generate_route_list(app::App) {
        registered.push(("GET".into(), page.path().to_string()));
    }
    assert!(registered.iter().any(|(m, p)| m == "GET" && p == "/v/{id}"), "{registered:?}");
    for (method, path) in &registered {
        assert!(ROUTES.iter().any(|(m, p, _)| m == method && p == path), "{method} {path} has no rule in ROUTES");
    }
    for (method, path, _) in ROUTES {
        // The bundle's files and the icon are served by fallbacks, not a registered route.
        let fallback = path.starts_with("/pkg/") || *path == "/favicon.svg";
        assert!(fallback || registered.iter().any(|(m, p)| m == method && p == path), "{method} {path} is not a route");
    }
    let functions: Vec<&str> = leptos::server_fn::axum::server_fn_paths().map(|(path, _)| path).collect();
    assert!(functions.len() >= SERVER_FUNCTIONS.len(), "{functions:?}");
    for path in &functions {
        assert!(
            SERVER_FUNCTIONS.iter().any(|(name, _)| server_fn_path(name) == Some(path)),
            "the server function {path} has no rule in SERVER_FUNCTIONS"
        );
    }
    for (name, _) in SERVER_FUNCTIONS {
        assert!(server_fn_path(name).is_some(), "{name} is not a server function");
    }
    assert_eq!(server_fn_path("delete_video"), Some(app::calls::DeleteVideo::PATH));

    let data = data_dir("ownership");
    let named = read_tokens("ann ann-secret-123456\nbob bob-secret-123456\n").unwrap();
    let access = Access::new("127.0.0.1:0".parse().unwrap(), &[], Some("admin-secret-1234".into())).with_named(named);
    let (app, _jobs) = start_custom(&data, no_models(), access, Faults::default()).await;
    let app = &app;
    // Ann's clip, and a second one to delete in the end.
    let mut ids = Vec::new();
    for prompt in ["a red ball", "a blue star"] {
        let (status, job) =
            send_json(app, as_(post_json(json!({"prompt": prompt, "steps": 1, "frames": 8})), Some(ANN))).await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        assert_eq!(job["owner"], "ann");
        ids.push(job["id"].as_str().unwrap().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    for id in &ids {
        while send_json(app, as_(get(&format!("/api/jobs/{id}")), Some(BOB))).await.1["state"] != "done" {
            assert!(Instant::now() < deadline, "the jobs did not finish");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (id, other) = (ids[0].as_str(), ids[1].as_str());
    let (status, video) = send_json(app, as_(get(&format!("/api/videos/{id}")), Some(BOB))).await;
    assert_eq!((status, &video["owner"]), (StatusCode::OK, &json!("ann")), "everyone sees the gallery: {video}");

    // Each route as nobody, as Bob (not the owner), and where Bob is refused, as Ann.
    for (method, pattern, rule) in ROUTES {
        let uri = concrete(pattern, id);
        let (nobody, _) = answer(app, request(method, &uri)).await;
        let (bob, body) = answer(app, as_(request(method, &uri), Some(BOB))).await;
        match rule {
            Rule::Open => assert_ne!(nobody, StatusCode::UNAUTHORIZED, "{method} {uri} is open"),
            Rule::SignedIn => {
                assert_eq!(nobody, StatusCode::UNAUTHORIZED, "{method} {uri} needs a token");
                assert!(
                    ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&bob),
                    "{method} {uri}: {bob} {body}"
                );
            }
            Rule::Owner => {
                assert_eq!(nobody, StatusCode::UNAUTHORIZED, "{method} {uri} needs a token");
                assert_eq!(bob, StatusCode::FORBIDDEN, "{method} {uri} is Ann's: {body}");
                assert!(body.contains("ann's"), "{method} {uri}: {body}");
            }
        }
    }
    for (name, rule) in SERVER_FUNCTIONS {
        let path = server_fn_path(name).unwrap();
        let form = format!("id={id}&favorite=true");
        let (nobody, _) = answer(app, server_fn(path, &form)).await;
        let (bob, body) = answer(app, as_(server_fn(path, &form), Some(BOB))).await;
        assert_eq!(nobody, StatusCode::UNAUTHORIZED, "{name} needs a token");
        match rule {
            Rule::Open => unreachable!("no server function is open"),
            Rule::SignedIn => {
                assert!(![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&bob), "{name}: {bob} {body}")
            }
            Rule::Owner => {
                assert_eq!(bob, StatusCode::FORBIDDEN, "{name} is Ann's: {body}");
                assert!(body.contains("ann's"), "{name}: {body}");
            }
        }
    }
    // Nothing of Ann's was lost to Bob's tries.
    for id in [id, other] {
        let (status, video) = send_json(app, as_(get(&format!("/api/videos/{id}")), Some(ANN))).await;
        assert_eq!(status, StatusCode::OK, "{video}");
        let (status, _) = send(app, as_(get(&format!("/media/{id}/video.mp4")), Some(ANN))).await;
        assert_eq!(status, StatusCode::OK);
    }

    // Favourites are each person's own (Bob's mark above, through set_favorite, is his).
    let favorites = |who| async move {
        let (status, page) = send_json(app, as_(get("/api/videos?favorites=1"), Some(who))).await;
        assert_eq!(status, StatusCode::OK);
        page["videos"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(favorites(BOB).await, [id]);
    assert!(favorites(ANN).await.is_empty());
    let marked = |who| async move {
        send_json(app, as_(get(&format!("/api/videos/{id}")), Some(who))).await.1["favorite"].clone()
    };
    assert_eq!((marked(BOB).await, marked(ANN).await), (json!(true), json!(false)));

    // The pages offer the delete and the cancel only to whom they are for.
    let page = |who| async move {
        let (status, html) = send(app, as_(get(&format!("/v/{id}")), Some(who))).await;
        assert_eq!(status, StatusCode::OK);
        String::from_utf8(html).unwrap()
    };
    let seen_by_bob = page(BOB).await;
    assert!(!seen_by_bob.contains("Delete for good"));
    assert!(seen_by_bob.contains("Made by") && seen_by_bob.contains(">ann<"), "whose it is shows");
    let (_, queue) = send(app, as_(get("/queue"), Some(BOB))).await;
    let queue = String::from_utf8(queue).unwrap();
    assert!(queue.contains("ann's · ") && !queue.contains(">Cancel<"), "the queue says whose each job is");
    assert!(page(ANN).await.contains("Delete for good"));
    assert!(page(ADMIN).await.contains("Delete for good"));
    assert!(page(BOB).await.contains(r#"name="vidplay-viewer""#), "the browser learns who it is");

    // The owner and the administrator may.
    let (status, job) = send_json(app, as_(request("DELETE", &format!("/api/jobs/{id}")), Some(ANN))).await;
    assert_eq!((status, &job["state"]), (StatusCode::OK, &json!("done")), "{job}");
    let (status, _) = send(app, as_(request("DELETE", &format!("/api/videos/{id}")), Some(ANN))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) =
        send(app, as_(server_fn(app::calls::DeleteVideo::PATH, &format!("id={other}")), Some(ADMIN))).await;
    assert!(status.is_success() || status.is_redirection(), "{status} {}", String::from_utf8_lossy(&body));
    let (status, _) = send(app, as_(get(&format!("/api/videos/{other}")), Some(ANN))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the administrator deleted it");
}

/// Without named tokens, everyone may change everything, as before; behind a login in front
/// (`--no-auth`) the media are private all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_named_tokens_everyone_may_change_everything() {
    let data = data_dir("ownership-shared");
    let access = Access::local().with_guard_in_front(true);
    let (app, _jobs) = start_custom(&data, no_models(), access, Faults::default()).await;
    let (status, job) = send_json(&app, post_json(json!({"prompt": "a red ball", "steps": 1, "frames": 8}))).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap();
    let job: Value = wait_for(&app, id, |j| j["state"] == "done").await;
    assert!(job.get("owner").is_none(), "{job}");
    let (status, html) = send(&app, get(&format!("/v/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&html).contains("Delete for good"));
    let resp = tower::ServiceExt::oneshot(app.clone(), get(&format!("/media/{id}/poster.png"))).await.unwrap();
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "private, max-age=31536000, immutable");
    let (status, _) = send(&app, request("DELETE", &format!("/api/videos/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
