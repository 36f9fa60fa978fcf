//! Side-by-side comparisons: votes checked against the gallery before they are stored, and
//! the leaderboard they add up to (see [`app::votes`]).

use crate::ids::{new_id, now_ms};
use crate::storage::{Store, StoreError};
use app::votes::{GroupBy, Leaderboard, Vote, VoteRequest, leaderboard};
use std::collections::HashMap;

/// Most votes the leaderboard adds up (the newest).
pub const MAX_VOTES: u32 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores a vote whose results are all in the gallery, as clips.
pub async fn cast(store: &dyn Store, request: VoteRequest) -> Result<Vote, VoteError> {
    request.check().map_err(VoteError::Invalid)?;
    for id in &request.candidates {
        match store.video(id.clone()).await? {
            None => return Err(VoteError::Invalid(format!("there is no video {id}"))),
            Some(v) if v.is_image() => return Err(VoteError::Invalid(format!("{id} is a still image; compare clips"))),
            Some(_) => {}
        }
    }
    let vote = Vote {
        id: new_id(),
        created_ms: now_ms(),
        axis: request.axis,
        winner: request.winner,
        candidates: request.candidates,
        reasons: request.reasons,
        blind: request.blind,
    };
    store.insert_vote(vote.clone()).await?;
    Ok(vote)
}

/// Win rates per model or setting over the stored votes.
pub async fn standings(store: &dyn Store, by: GroupBy) -> Result<Leaderboard, StoreError> {
    let votes = store.votes(MAX_VOTES).await?;
    let mut params = HashMap::new();
    for id in votes.iter().flat_map(|v| v.candidates.iter()) {
        if !params.contains_key(id)
            && let Some(video) = store.video(id.clone()).await?
        {
            params.insert(id.clone(), video.params);
        }
    }
    Ok(leaderboard(&votes, &params, by))
}
