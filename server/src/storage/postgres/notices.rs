//! Announcements between the processes sharing a PostgreSQL database: `NOTIFY` on one
//! channel with the notice as JSON (small: a step's preview is kept in `job_previews` and
//! read by whoever wants it), `LISTEN` on a connection of its own that comes back after the
//! server restarts.

use super::PostgresStore;
use crate::storage::NoticeStore;
use crate::storage::{Notice, NoticeKind, StoreResult, corrupt};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::postgres::PgListener;
use sqlx::{PgExecutor, PgPool};
use std::time::Duration;

pub const CHANNEL: &str = "vidplay_events";

pub(super) async fn notify(conn: impl PgExecutor<'_>, notice: &Notice) -> StoreResult<()> {
    let payload = serde_json::to_string(notice).map_err(corrupt)?;
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(conn).await?;
    Ok(())
}

pub(super) async fn announce(pool: &PgPool, notice: Notice, preview: Option<String>) -> StoreResult<()> {
    if let (NoticeKind::Step { id, .. }, Some(url)) = (&notice.kind, preview) {
        sqlx::query(
            "INSERT INTO job_previews (id, url) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET url = excluded.url",
        )
        .bind(id)
        .bind(url)
        .execute(pool)
        .await?;
    }
    notify(pool, &notice).await
}

pub(super) async fn preview(pool: &PgPool, id: &str) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar("SELECT url FROM job_previews WHERE id = $1").bind(id).fetch_optional(pool).await?)
}

/// Every notice from now on. A lost connection is reconnected (retrying every second), after
/// which a [`NoticeKind::Reconnected`] comes.
pub(super) async fn listen(pool: &PgPool) -> StoreResult<BoxStream<'static, Notice>> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    // State: the listener, a notice held back behind a `Reconnected`, whether it was lost.
    let stream =
        futures_util::stream::unfold((listener, None::<Notice>, false), |(mut listener, held, mut lost)| async move {
            if let Some(notice) = held {
                return Some((notice, (listener, None, false)));
            }
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => match serde_json::from_str::<Notice>(n.payload()) {
                        Ok(notice) if lost => {
                            let reconnected = Notice { from: String::new(), kind: NoticeKind::Reconnected };
                            return Some((reconnected, (listener, Some(notice), false)));
                        }
                        Ok(notice) => return Some((notice, (listener, None, false))),
                        Err(e) => tracing::warn!("an unreadable notice: {e}"),
                    },
                    // The connection was lost; the next call reconnects.
                    Ok(None) => {
                        tracing::warn!("the database connection for notices was lost; reconnecting");
                        lost = true;
                    }
                    Err(e) => {
                        tracing::warn!("listening for notices: {e}; retrying");
                        lost = true;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    Ok(Box::pin(stream))
}

impl NoticeStore for PostgresStore {
    fn shared(&self) -> bool {
        true
    }

    fn announce(&self, notice: Notice, preview: Option<String>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(announce(&self.pool, notice, preview))
    }

    fn notices(&self) -> BoxFuture<'_, StoreResult<Option<BoxStream<'static, Notice>>>> {
        Box::pin(async move { Ok(Some(listen(&self.pool).await?)) })
    }

    fn preview(&self, id: String) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(async move { preview(&self.pool, &id).await })
    }
}
