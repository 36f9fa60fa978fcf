//! Job, video, comparison and vote records as both databases return them: the columns are the same and mean the
//! same, only their types differ (JSON is TEXT in SQLite and JSONB in PostgreSQL, a flag an
//! integer or a BOOLEAN). Each store says how it reads a column ([`RowRead`]); what a record is
//! made of is decoded here, once.

use super::{StoreError, StoreResult, corrupt, unreadable_job};
use app::results::ResultMeta;
use app::types::{Job, JobParams, JobState, Mode, Video};
use app::votes::{Comparison, GroupBy, PairCount, Vote, VoteAxis};

/// The columns a vote record is read from, in both databases.
pub const VOTE_COLUMNS: &str = "id, created_ms, comparison_id, voter, axis, winner, candidates, reasons, blind";

/// The columns a job record is read from, in both databases.
pub const JOB_COLUMNS: &str = "id, state, mode, params, created_ms, started_ms, finished_ms, step, total, message, \
     video_id, owner, input, decode_retries";

/// The state column's value for `state`. A decode-failed job is stored as failed with a count
/// of decode retries ([`Job::decode_retries`]): the column's check predates that state.
pub fn state_column(state: JobState) -> &'static str {
    match state {
        JobState::DecodeFailed => JobState::Failed.as_str(),
        other => other.as_str(),
    }
}

/// A job's state from its state column and its count of decode retries ([`state_column`]).
fn state_of(column: &str, decode_retries: Option<u32>) -> StoreResult<JobState> {
    match JobState::parse(column) {
        Some(JobState::Failed) if decode_retries.is_some() => Ok(JobState::DecodeFailed),
        Some(JobState::DecodeFailed) | None => Err(corrupt(format!("job state {column:?}"))),
        Some(state) => Ok(state),
    }
}

/// A query with every [`JOB_COLUMNS`] of `job` bound in that order, `params` as the database
/// keeps JSON (a `JOB_COLUMNS` insert is written alike for both databases).
pub fn bind_job<'q, DB, P>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    job: &Job,
    params: P,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    P: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
{
    query
        .bind(job.id.clone())
        .bind(state_column(job.state).to_string())
        .bind(job.mode.as_str().to_string())
        .bind(params)
        .bind(job.created_ms)
        .bind(job.started_ms)
        .bind(job.finished_ms)
        .bind(job.step as i64)
        .bind(job.total as i64)
        .bind(job.message.clone())
        .bind(job.video_id.clone())
        .bind(job.owner.clone())
        .bind(job.input.clone())
        .bind(job.decode_retries.map(i64::from))
}

/// One row, read column by column.
pub trait RowRead {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn optional_text(&self, column: &str) -> StoreResult<Option<String>>;
    fn integer(&self, column: &str) -> StoreResult<i64>;
    fn optional_integer(&self, column: &str) -> StoreResult<Option<i64>>;
    fn flag(&self, column: &str) -> StoreResult<bool>;
    /// A JSON column; a value that is not JSON is [`StoreError::Corrupt`].
    fn json(&self, column: &str) -> StoreResult<serde_json::Value>;
    fn optional_json(&self, column: &str) -> StoreResult<Option<serde_json::Value>>;
}

/// The [`RowRead`] methods whose columns both databases type alike (TEXT, BIGINT), for a row
/// type with `sqlx::Row` in scope.
macro_rules! read_alike {
    () => {
        fn text(&self, column: &str) -> StoreResult<String> {
            Ok(self.try_get(column)?)
        }

        fn optional_text(&self, column: &str) -> StoreResult<Option<String>> {
            Ok(self.try_get(column)?)
        }

        fn integer(&self, column: &str) -> StoreResult<i64> {
            Ok(self.try_get(column)?)
        }

        fn optional_integer(&self, column: &str) -> StoreResult<Option<i64>> {
            Ok(self.try_get(column)?)
        }
    };
}
pub(super) use read_alike;

pub fn job(row: &impl RowRead) -> StoreResult<Job> {
    let state = row.text("state")?;
    let mode = row.text("mode")?;
    let decode_retries = row.optional_integer("decode_retries")?.map(|n| n.clamp(0, u32::MAX as i64) as u32);
    Ok(Job {
        id: row.text("id")?,
        state: state_of(&state, decode_retries)?,
        mode: Mode::parse(&mode).ok_or_else(|| corrupt(format!("mode {mode:?}")))?,
        params: serde_json::from_value::<JobParams>(row.json("params")?).map_err(corrupt)?,
        created_ms: row.integer("created_ms")?,
        started_ms: row.optional_integer("started_ms")?,
        finished_ms: row.optional_integer("finished_ms")?,
        step: row.integer("step")? as u32,
        total: row.integer("total")? as u32,
        message: row.optional_text("message")?,
        video_id: row.optional_text("video_id")?,
        owner: row.text("owner")?,
        input: row.optional_text("input")?,
        decode_retries,
    })
}

/// A job record for listings: one that cannot be read shows as failed with the reason, so a
/// bad record never breaks the queue page or the API.
pub fn job_or_failed(row: &impl RowRead) -> StoreResult<Job> {
    match job(row) {
        Err(StoreError::Corrupt(why)) => {
            let id = row.text("id")?;
            tracing::warn!(%id, "unreadable job record: {why}");
            Ok(Job {
                id,
                state: JobState::Failed,
                mode: Mode::TextToVideo,
                params: JobParams::default(),
                created_ms: row.integer("created_ms").unwrap_or(0),
                started_ms: None,
                finished_ms: None,
                step: 0,
                total: 0,
                message: Some(unreadable_job(&why)),
                video_id: None,
                owner: row.text("owner").unwrap_or_default(),
                input: None,
                decode_retries: None,
            })
        }
        other => other,
    }
}

pub fn video(row: &impl RowRead) -> StoreResult<Video> {
    let mode = row.text("mode")?;
    Ok(Video {
        id: row.text("id")?,
        mode: Mode::parse(&mode).ok_or_else(|| corrupt(format!("mode {mode:?}")))?,
        params: serde_json::from_value(row.json("params")?).map_err(corrupt)?,
        created_ms: row.integer("created_ms")?,
        // Favourites are per person: marked for whoever asks (crate::storage::mark_favorites).
        favorite: false,
        owner: row.text("owner")?,
        metadata: ResultMeta::from_value(row.json("metadata")?),
        // Scores that cannot be read are measured again, never an error for the video.
        scores: row.optional_json("scores").ok().flatten().and_then(|s| serde_json::from_value(s).ok()),
    })
}

pub fn comparison(row: &impl RowRead) -> StoreResult<Comparison> {
    Ok(Comparison {
        id: row.text("id")?,
        created_ms: row.integer("created_ms")?,
        candidates: serde_json::from_value(row.json("candidates")?).map_err(corrupt)?,
        blind: row.flag("blind")?,
    })
}

fn vote(row: &impl RowRead) -> StoreResult<Vote> {
    let axis = row.text("axis")?;
    Ok(Vote {
        id: row.text("id")?,
        created_ms: row.integer("created_ms")?,
        comparison: row.optional_text("comparison_id")?,
        voter: row.text("voter")?,
        axis: VoteAxis::parse(&axis).ok_or_else(|| corrupt(format!("vote axis {axis:?}")))?,
        winner: row.text("winner")?,
        candidates: serde_json::from_value(row.json("candidates")?).map_err(corrupt)?,
        reasons: serde_json::from_value(row.json("reasons")?).map_err(corrupt)?,
        blind: row.flag("blind")?,
    })
}

/// The votes of `rows` ([`VOTE_COLUMNS`]); a row that cannot be read is left out (and logged).
pub fn votes(rows: &[impl RowRead]) -> StoreResult<Vec<Vote>> {
    let mut votes = Vec::with_capacity(rows.len());
    for row in rows {
        match vote(row) {
            Ok(v) => votes.push(v),
            Err(StoreError::Corrupt(why)) => tracing::warn!("unreadable vote left out: {why}"),
            Err(e) => return Err(e),
        }
    }
    Ok(votes)
}

/// The pair counts of `rows` (`axis`, `winner` and `loser` groups as the database reads them,
/// and their count `n`), the groups named by `by`; votes of an axis this version does not know
/// are left out (and logged).
pub fn pair_counts(rows: &[impl RowRead], by: GroupBy) -> StoreResult<Vec<PairCount>> {
    let mut pairs = Vec::with_capacity(rows.len());
    for row in rows {
        let axis = row.text("axis")?;
        let Some(axis) = VoteAxis::parse(&axis) else {
            tracing::warn!("votes of an unknown axis {axis:?} left out");
            continue;
        };
        pairs.push(PairCount {
            axis,
            winner: by.label(row.optional_text("winner")?.as_deref()),
            loser: by.label(row.optional_text("loser")?.as_deref()),
            count: row.integer("n")? as u32,
        });
    }
    Ok(pairs)
}
