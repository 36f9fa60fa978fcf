//! Side-by-side comparisons: comparisons issued for results in the gallery, votes checked
//! against them and kept one per voter, comparison and axis, and the leaderboard the store adds
//! them up to (see [`app::votes`]).

use crate::ids::now_ms;
use crate::storage::{Store, StoreError};
use app::votes::{Comparison, GroupBy, Leaderboard, Vote, VoteRequest, check_candidates, leaderboard};
use sha2::Digest;

#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The id of the comparison of `candidates` (in any order) shown `blind` or not: everyone who
/// compares the same results the same way votes on one comparison, so a voter has one vote on
/// it per axis however often the page is opened.
fn comparison_id(candidates: &[String], blind: bool) -> String {
    let mut sorted = candidates.to_vec();
    sorted.sort();
    let mut hash = sha2::Sha256::new();
    hash.update(format!("vidplay comparison, version 1, blind {blind}: {}", sorted.join(",")));
    hash.finalize()[..10].iter().map(|b| format!("{b:02x}")).collect()
}

/// Issues the comparison of `candidates`, 2 to 4 distinct clips of the gallery, in the order
/// given (the first issue's order is kept).
pub async fn open(store: &dyn Store, candidates: Vec<String>, blind: bool) -> Result<Comparison, VoteError> {
    check_candidates(&candidates).map_err(VoteError::Invalid)?;
    for id in &candidates {
        match store.video(id.clone()).await? {
            None => return Err(VoteError::Invalid(format!("there is no video {id}"))),
            Some(v) if v.is_image() => return Err(VoteError::Invalid(format!("{id} is a still image; compare clips"))),
            Some(_) => {}
        }
    }
    let comparison = Comparison { id: comparison_id(&candidates, blind), created_ms: now_ms(), candidates, blind };
    Ok(store.open_comparison(comparison).await?)
}

/// Records `voter`'s vote (see [`app::votes::Vote::voter`]), replacing their earlier vote on
/// the same comparison and axis. A request without a comparison compares its candidates, not
/// blind.
pub async fn cast(store: &dyn Store, request: VoteRequest, voter: &str) -> Result<Vote, VoteError> {
    request.check().map_err(VoteError::Invalid)?;
    let comparison = match &request.comparison {
        Some(id) => store
            .comparison(id.clone())
            .await?
            .ok_or_else(|| VoteError::Invalid(format!("there is no comparison {id}")))?,
        None => open(store, request.candidates.clone(), false).await?,
    };
    request.check_winner(&comparison.candidates).map_err(VoteError::Invalid)?;
    let vote = Vote {
        id: crate::ids::new_id(),
        created_ms: now_ms(),
        comparison: Some(comparison.id),
        voter: voter.to_string(),
        axis: request.axis,
        winner: request.winner,
        candidates: comparison.candidates,
        reasons: request.reasons,
        blind: comparison.blind,
    };
    Ok(store.cast_vote(vote).await?)
}

/// Win rates per model or setting, as the store adds the votes up.
pub async fn standings(store: &dyn Store, by: GroupBy) -> Result<Leaderboard, StoreError> {
    let (pairs, votes) = store.pair_counts(by).await?;
    Ok(leaderboard(&pairs, votes, by))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_comparison_per_set_of_results_and_blindness() {
        let ab = ["aaaaaaaa".to_string(), "bbbbbbbb".to_string()];
        let ba = [ab[1].clone(), ab[0].clone()];
        assert_eq!(comparison_id(&ab, true), comparison_id(&ba, true));
        assert_ne!(comparison_id(&ab, true), comparison_id(&ab, false));
        assert!(app::types::is_valid_id(&comparison_id(&ab, false)));
    }
}
