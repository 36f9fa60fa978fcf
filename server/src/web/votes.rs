//! The JSON API of comparisons: `POST /api/comparisons`, `POST /api/votes`, `GET /api/votes`,
//! and `GET /api/leaderboard?by=model` (`&format=csv` for a spreadsheet).

use super::api::Failure;
use super::state::WebState;
use crate::compare::{self, VoteError};
use app::votes::{ComparisonRequest, GroupBy, VoteRequest};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

/// The largest vote request: a vote is a few hundred bytes (at most 4 ids and 5 reasons).
pub const MAX_VOTE_BYTES: usize = 4 * 1024;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/api/comparisons", post(open_comparison))
        .route("/api/votes", get(list_votes).post(cast_vote))
        .route("/api/leaderboard", get(leaderboard))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_VOTE_BYTES))
}

impl From<VoteError> for Failure {
    fn from(e: VoteError) -> Self {
        match e {
            VoteError::Invalid(why) => Failure::bad(why),
            VoteError::Store(e) => e.into(),
        }
    }
}

async fn open_comparison(
    State(web): State<WebState>,
    parts: Parts,
    body: Result<Json<ComparisonRequest>, JsonRejection>,
) -> Result<Response, Failure> {
    let Json(request) =
        body.map_err(|e| Failure(e.status(), format!("a comparison is JSON {{\"candidates\"}}: {}", e.body_text())))?;
    let comparison = compare::open(web.store.as_ref(), request.candidates, false).await?;
    let mut res = (StatusCode::CREATED, Json(comparison)).into_response();
    // The voter's cookie before any vote: votes sent at once are one voter's.
    if let (_, Some(cookie)) = web.voters.voter_of(&parts) {
        res.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(res)
}

async fn cast_vote(
    State(web): State<WebState>,
    parts: Parts,
    body: Result<Json<VoteRequest>, JsonRejection>,
) -> Result<Response, Failure> {
    let Json(request) = body.map_err(|e| {
        Failure(
            e.status(),
            format!("a vote is JSON {{\"comparison\", \"axis\", \"winner\", \"reasons\"}}: {}", e.body_text()),
        )
    })?;
    let (voter, cookie) = web.voters.voter_of(&parts);
    let vote = compare::cast(web.store.as_ref(), request, &voter).await?;
    let mut res = (StatusCode::CREATED, Json(vote)).into_response();
    if let Some(cookie) = cookie {
        res.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(res)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct VotesParams {
    limit: Option<u32>,
}

async fn list_votes(State(web): State<WebState>, Query(p): Query<VotesParams>) -> Result<Response, Failure> {
    let votes = web.store.votes(p.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(Json(serde_json::json!({ "votes": votes })).into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct LeaderboardParams {
    by: String,
    format: String,
}

async fn leaderboard(State(web): State<WebState>, Query(p): Query<LeaderboardParams>) -> Result<Response, Failure> {
    let by = match p.by.as_str() {
        "" => GroupBy::Model,
        b => GroupBy::parse(b).ok_or_else(|| {
            Failure::bad(format!("by must be one of {}, not {b:?}", GroupBy::ALL.map(GroupBy::as_str).join(", ")))
        })?,
    };
    let board = compare::standings(web.store.as_ref(), by).await?;
    match p.format.as_str() {
        "" | "json" => Ok(Json(board).into_response()),
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"vidplay-leaderboard-{}.csv\"", by.as_str()),
                ),
            ],
            board.csv(),
        )
            .into_response()),
        f => Err(Failure::bad(format!("format must be json or csv, not {f:?}"))),
    }
}
