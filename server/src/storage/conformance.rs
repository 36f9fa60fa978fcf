//! The behaviour every [`Store`] must have, as one suite each implementation's tests run.

use super::{CRASHED_TWICE, Claim, Lease, Recovered, Store, lost_too_often};
use app::results::ResultMeta;
use app::scores::{GallerySort, SCORES_VERSION, ScoreFlag, Scores};
use app::types::{Job, JobParams, JobState, Mode, Video, VideoPage, VideoQuery, WarmUp, WorkerStatus};
use app::votes::{Comparison, GroupBy, Vote, VoteAxis};
use futures_util::future::BoxFuture;

/// Runs every check, each on a fresh, empty store made by `fresh` (given a name for it).
/// Panics on the first failure.
pub async fn run(fresh: &dyn Fn(&str) -> BoxFuture<'static, Box<dyn Store>>) {
    queue_limit_order_and_recovery(fresh("queue").await.as_ref()).await;
    a_job_that_crashed_twice_is_failed_and_a_finished_one_is_done(fresh("crashes").await.as_ref()).await;
    gallery_search_filters_and_pages(fresh("gallery").await.as_ref()).await;
    scores_sort_filter_and_backfill(fresh("scores").await.as_ref()).await;
    votes_are_kept_newest_first(fresh("votes").await.as_ref()).await;
    votes_add_up_to_pairwise_wins(fresh("pairs").await.as_ref()).await;
    embeddings_per_model_and_video(fresh("embeddings").await.as_ref()).await;
    search_order_equals_a_reference(fresh("reference").await.as_ref()).await;
    workers_claim_what_they_run_and_lose_what_they_stop_renewing(fresh("leases").await.as_ref()).await;
    workers_report_themselves(fresh("workers").await.as_ref()).await;
    owners_take_turns_and_have_their_own_limit(fresh("owners").await.as_ref()).await;
    jobs_moved_in_keep_their_state(fresh("imports").await.as_ref()).await;
    a_failed_decode_is_retried_once_per_ask(fresh("decodes").await.as_ref()).await;
    a_result_is_decided_once_and_only_by_the_worker_holding_the_job(fresh("results").await.as_ref()).await;
}

/// A queued job, as tests make them.
pub fn job(id: &str, ms: i64, prompt: &str) -> Job {
    Job {
        id: id.into(),
        state: JobState::Queued,
        mode: Mode::TextToVideo,
        params: JobParams { prompt: prompt.into(), seed: Some(7), ..Default::default() },
        created_ms: ms,
        started_ms: None,
        finished_ms: None,
        step: 0,
        total: 24,
        message: None,
        video_id: None,
        owner: String::new(),
        input: None,
        decode_retries: None,
    }
}

/// A video, as tests make them.
pub fn video(id: &str, ms: i64, prompt: &str, mode: Mode) -> Video {
    Video {
        id: id.into(),
        mode,
        params: JobParams { prompt: prompt.into(), seed: Some(1), ..Default::default() },
        created_ms: ms,
        favorite: false,
        owner: String::new(),
        metadata: ResultMeta {
            seed: 1,
            details: [("note".to_string(), "kept".into())].into_iter().collect(),
            ..ResultMeta::default()
        },
        scores: None,
    }
}

/// Scores with the values the gallery sorts and filters by.
pub fn scores(motion: f32, sharpness: f32, still: bool, camera_only: bool) -> Scores {
    Scores {
        version: SCORES_VERSION,
        motion,
        sharpness,
        smoothness: 1.0 - motion / 100.0,
        consistency: 0.9,
        still,
        camera_only,
        ..Scores::default()
    }
}

async fn queue_limit_order_and_recovery(store: &dyn Store) {
    assert!(store.enqueue(job("aaaa0001", 1, "a"), 2).await.unwrap());
    // The image a job starts from is kept with it.
    let from_image = Job { input: Some("uploads/aaaa0002.png".into()), ..job("aaaa0002", 2, "b") };
    assert!(store.enqueue(from_image, 2).await.unwrap());
    assert!(!store.enqueue(job("aaaa0003", 3, "c"), 2).await.unwrap(), "queue full");
    let mut first = store.claim_next(100).await.unwrap().unwrap();
    assert_eq!((first.id.as_str(), first.state, first.started_ms), ("aaaa0001", JobState::Running, Some(100)));
    first.step = 5;
    store.update_job(first).await.unwrap();
    assert!(store.enqueue(job("aaaa0003", 3, "c"), 2).await.unwrap(), "room again");
    assert!(store.cancel_queued("aaaa0003".into(), 101).await.unwrap());
    assert!(!store.cancel_queued("aaaa0003".into(), 102).await.unwrap(), "only once");
    assert!(!store.cancel_queued("aaaa0001".into(), 102).await.unwrap(), "running jobs are not");
    assert_eq!(store.job("aaaa0003".into()).await.unwrap().unwrap().state, JobState::Cancelled);
    // A restart: the running job is queued again, with a note, and nothing is lost.
    let recovered = store.recover_interrupted(150).await.unwrap();
    assert_eq!(recovered, Recovered { requeued: vec!["aaaa0001".to_string()], ..Default::default() });
    let j = store.job("aaaa0001".into()).await.unwrap().unwrap();
    assert_eq!((j.state, j.step), (JobState::Queued, 0));
    assert!(j.message.unwrap().contains("restart"));
    assert_eq!(j.params.prompt, "a");
    assert_eq!(store.jobs(10).await.unwrap().len(), 3);
    assert_eq!(store.claim_next(200).await.unwrap().unwrap().id, "aaaa0001", "oldest first");
    let second = store.claim_next(201).await.unwrap().unwrap();
    assert_eq!((second.id.as_str(), second.input.as_deref()), ("aaaa0002", Some("uploads/aaaa0002.png")));
    assert!(store.claim_next(202).await.unwrap().is_none());
    assert!(store.job("ffff0000".into()).await.unwrap().is_none());
}
async fn a_job_that_crashed_twice_is_failed_and_a_finished_one_is_done(store: &dyn Store) {
    assert!(store.enqueue(job("eeee0001", 1, "a"), 10).await.unwrap());
    // First crash: queued again.
    assert_eq!(store.claim_next(2).await.unwrap().unwrap().id, "eeee0001");
    assert_eq!(store.recover_interrupted(3).await.unwrap().requeued, ["eeee0001"]);
    // Put back on purpose (a shutdown): that does not count as a crash.
    let mut j = store.claim_next(4).await.unwrap().unwrap();
    j.state = JobState::Queued;
    store.update_job(j).await.unwrap();
    assert_eq!(store.claim_next(5).await.unwrap().unwrap().id, "eeee0001");
    assert_eq!(store.recover_interrupted(6).await.unwrap().requeued, ["eeee0001"]);
    // Second crash while it runs: failed, not queued a third time.
    assert_eq!(store.claim_next(7).await.unwrap().unwrap().id, "eeee0001");
    let r = store.recover_interrupted(8).await.unwrap();
    assert_eq!((r.failed.as_slice(), r.requeued.len()), (["eeee0001".to_string()].as_slice(), 0));
    let j = store.job("eeee0001".into()).await.unwrap().unwrap();
    assert_eq!((j.state, j.message.as_deref()), (JobState::Failed, Some(CRASHED_TWICE)));
    assert!(store.claim_next(9).await.unwrap().is_none());

    // A crash after the gallery insert but before the job update: the job is done.
    assert!(store.enqueue(job("eeee0002", 10, "b"), 10).await.unwrap());
    assert_eq!(store.claim_next(11).await.unwrap().unwrap().id, "eeee0002");
    store.insert_video(video("eeee0002", 12, "b", Mode::TextToVideo)).await.unwrap();
    assert_eq!(store.recover_interrupted(13).await.unwrap().done, ["eeee0002"]);
    let j = store.job("eeee0002".into()).await.unwrap().unwrap();
    assert_eq!((j.state, j.video_id.as_deref()), (JobState::Done, Some("eeee0002")));
    assert_eq!(store.queued_count().await.unwrap(), 0);
    assert!(store.video_exists("eeee0002".into()).await.unwrap());
    assert!(!store.video_exists("eeee0003".into()).await.unwrap());
    assert_eq!(store.recent_prompts(5).await.unwrap(), ["b", "a"]);
}
async fn jobs_moved_in_keep_their_state(store: &dyn Store) {
    let done = Job {
        state: JobState::Done,
        started_ms: Some(2),
        finished_ms: Some(3),
        step: 24,
        video_id: Some("dddd0001".into()),
        owner: "alice".into(),
        input: Some("uploads/dddd0001.png".into()),
        ..job("dddd0001", 1, "a")
    };
    let failed = Job { state: JobState::Failed, message: Some("out of memory".into()), ..job("dddd0002", 4, "b") };
    for j in [&done, &failed] {
        assert!(store.import_job(j.clone()).await.unwrap());
        assert_eq!(store.job(j.id.clone()).await.unwrap().as_ref(), Some(j), "stored as it was");
    }
    // Nothing finished is ever a worker's to take, nor counted as waiting.
    assert!(store.claim_next(5).await.unwrap().is_none());
    assert_eq!(store.queued_count().await.unwrap(), 0);
    // Again: already here, left as it is.
    assert!(!store.import_job(Job { state: JobState::Queued, ..done.clone() }).await.unwrap());
    assert_eq!(store.job(done.id.clone()).await.unwrap(), Some(done));
    assert!(store.import_job(job("dddd0003", 6, "c")).await.unwrap());
    assert_eq!(store.claim_next(7).await.unwrap().unwrap().id, "dddd0003", "a waiting one waits");
}
async fn gallery_search_filters_and_pages(store: &dyn Store) {
    store.insert_video(video("b0000001", 10, "a red ball bouncing on grass", Mode::TextToVideo)).await.unwrap();
    store.insert_video(video("b0000002", 20, "a blue star moving left", Mode::TextToVideo)).await.unwrap();
    store.insert_video(video("b0000003", 30, "camera pans left", Mode::ImageToVideo)).await.unwrap();
    let ids = |p: &VideoPage| p.videos.iter().map(|v| v.id.clone()).collect::<Vec<_>>();
    let q = |q: &str| VideoQuery { q: q.into(), limit: 10, ..Default::default() };

    assert_eq!(ids(&store.videos(q("")).await.unwrap()), ["b0000003", "b0000002", "b0000001"]);
    assert_eq!(ids(&store.videos(q("left")).await.unwrap()), ["b0000003", "b0000002"]);
    assert_eq!(ids(&store.videos(q("RED bou")).await.unwrap()), ["b0000001"]);
    assert!(store.videos(q("purple")).await.unwrap().videos.is_empty());
    // FTS syntax in a search is just text.
    assert!(store.videos(q("\"red* OR (NEAR")).await.unwrap().videos.is_empty());
    assert_eq!(ids(&store.videos(q("red)*")).await.unwrap()), ["b0000001"]);

    let i2v = VideoQuery { mode: Some(Mode::ImageToVideo), limit: 10, ..Default::default() };
    assert_eq!(ids(&store.videos(i2v).await.unwrap()), ["b0000003"]);

    assert!(store.set_favorite(String::new(), "b0000001".into(), true).await.unwrap());
    assert!(!store.set_favorite(String::new(), "ffffffff".into(), true).await.unwrap());
    let favs = VideoQuery { favorites: true, limit: 10, ..Default::default() };
    assert_eq!(ids(&store.videos(favs.clone()).await.unwrap()), ["b0000001"]);
    // Each person has favourites of their own.
    assert!(store.set_favorite("ann".into(), "b0000002".into(), true).await.unwrap());
    assert!(store.set_favorite("ann".into(), "b0000002".into(), true).await.unwrap(), "again: no change");
    let anns = VideoQuery { favorites_of: "ann".into(), ..favs.clone() };
    assert_eq!(ids(&store.videos(anns.clone()).await.unwrap()), ["b0000002"]);
    assert_eq!(ids(&store.videos(VideoQuery { favorites_of: "bob".into(), ..favs.clone() }).await.unwrap()), [""; 0]);
    let mut page = store.videos(VideoQuery { limit: 10, ..Default::default() }).await.unwrap().videos;
    assert!(page.iter().all(|v| !v.favorite), "the store leaves favourites to who asks");
    super::mark_favorites(store, "ann", &mut page).await.unwrap();
    assert_eq!(page.iter().filter(|v| v.favorite).map(|v| v.id.as_str()).collect::<Vec<_>>(), ["b0000002"]);
    assert!(store.set_favorite("ann".into(), "b0000002".into(), false).await.unwrap());
    assert!(store.videos(anns).await.unwrap().videos.is_empty());

    let page1 = store.videos(VideoQuery { limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(ids(&page1), ["b0000003", "b0000002"]);
    let page2 = store.videos(VideoQuery { limit: 2, before: page1.next.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(ids(&page2), ["b0000001"]);
    assert_eq!(page2.next, None);

    assert!(store.delete_video("b0000002".into()).await.unwrap());
    assert!(!store.delete_video("b0000002".into()).await.unwrap());
    assert!(store.videos(q("star")).await.unwrap().videos.is_empty(), "the index forgets deleted videos");
    assert_eq!(store.count_videos().await.unwrap(), 2);
    let mut v = store.video("b0000001".into()).await.unwrap().unwrap();
    super::mark_favorites(store, "", std::slice::from_mut(&mut v)).await.unwrap();
    assert!(v.favorite);
    assert_eq!(v.metadata.seed, 1);
    assert_eq!(v.metadata.details["note"], "kept");
    // A video keeps who made it; inserted as a favourite, it is its owner's.
    let anns = Video { owner: "ann".into(), favorite: true, ..video("b0000009", 9, "ann's", Mode::TextToVideo) };
    store.insert_video(anns).await.unwrap();
    assert_eq!(store.video("b0000009".into()).await.unwrap().unwrap().owner, "ann");
    assert_eq!(store.favorites_among("ann".into(), vec!["b0000009".into()]).await.unwrap(), ["b0000009"]);
    assert!(store.set_favorite("bob".into(), "b0000009".into(), true).await.unwrap());
    assert_eq!(store.favorited_by("b0000009".into()).await.unwrap(), ["ann", "bob"]);
}

async fn scores_sort_filter_and_backfill(store: &dyn Store) {
    let ids = |p: &VideoPage| p.videos.iter().map(|v| v.id.clone()).collect::<Vec<_>>();
    // Stored with scores, given scores later, never scored, and a still image.
    let mut scored = video("c0000001", 10, "a red ball moving left", Mode::TextToVideo);
    scored.scores = Some(scores(2.0, 50.0, false, false));
    store.insert_video(scored.clone()).await.unwrap();
    store.insert_video(video("c0000002", 20, "camera pans left over grass", Mode::ImageToVideo)).await.unwrap();
    store.insert_video(video("c0000003", 30, "a still red square", Mode::TextToVideo)).await.unwrap();
    store.insert_video(video("c0000004", 40, "a red keyframe", Mode::TextToImage)).await.unwrap();
    store.insert_video(video("c0000005", 50, "a red ball, again", Mode::TextToVideo)).await.unwrap();
    assert_eq!(store.video("c0000001".into()).await.unwrap().unwrap().scores, scored.scores);

    // The backfill's list: clips without scores, in id order, in pages.
    assert_eq!(store.unscored_clips(None, 10).await.unwrap(), ["c0000002", "c0000003", "c0000005"]);
    assert_eq!(store.unscored_clips(Some("c0000002".into()), 1).await.unwrap(), ["c0000003"]);
    assert!(store.set_scores("c0000002".into(), scores(1.0, 80.0, false, true)).await.unwrap());
    assert!(store.set_scores("c0000003".into(), scores(0.01, 20.0, true, false)).await.unwrap());
    assert!(!store.set_scores("ffffffff".into(), scores(1.0, 1.0, false, false)).await.unwrap());
    assert_eq!(store.unscored_clips(None, 10).await.unwrap(), ["c0000005"]);
    // Scores of an older version are measured again.
    let old = Scores { version: 0, ..scores(3.0, 10.0, false, false) };
    assert!(store.set_scores("c0000005".into(), old).await.unwrap());
    assert_eq!(store.unscored_clips(None, 10).await.unwrap(), ["c0000005"]);
    assert!(store.set_scores("c0000005".into(), scores(3.0, 10.0, false, false)).await.unwrap());
    assert!(store.unscored_clips(None, 10).await.unwrap().is_empty());

    let q = |sort: GallerySort, flag: Option<ScoreFlag>, text: &str| VideoQuery {
        q: text.into(),
        sort,
        flag,
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(&store.videos(q(GallerySort::MostMotion, None, "")).await.unwrap()),
        ["c0000005", "c0000001", "c0000002", "c0000003"]
    );
    assert_eq!(
        ids(&store.videos(q(GallerySort::LeastMotion, None, "")).await.unwrap()),
        ["c0000003", "c0000002", "c0000001", "c0000005"]
    );
    assert_eq!(
        ids(&store.videos(q(GallerySort::Sharpest, None, "")).await.unwrap()),
        ["c0000002", "c0000001", "c0000003", "c0000005"]
    );
    assert_eq!(
        ids(&store.videos(q(GallerySort::MostMotion, None, "red")).await.unwrap()),
        ["c0000005", "c0000001", "c0000003"]
    );
    assert_eq!(ids(&store.videos(q(GallerySort::Newest, Some(ScoreFlag::Still), "")).await.unwrap()), ["c0000003"]);
    assert_eq!(
        ids(&store.videos(q(GallerySort::Newest, Some(ScoreFlag::CameraOnly), "pans")).await.unwrap()),
        ["c0000002"]
    );
    assert_eq!(
        ids(&store.videos(q(GallerySort::Sharpest, Some(ScoreFlag::ObjectMotion), "")).await.unwrap()),
        ["c0000001", "c0000005"]
    );
    // A variants group.
    let mut grouped = video("c0000006", 60, "a red ball, variant", Mode::TextToVideo);
    grouped.params.group = "a0a0a0a0".into();
    store.insert_video(grouped).await.unwrap();
    let group = VideoQuery { group: Some("a0a0a0a0".into()), limit: 10, ..Default::default() };
    assert_eq!(ids(&store.videos(group).await.unwrap()), ["c0000006"]);
    assert!(store.delete_video("c0000006".into()).await.unwrap());
    // Pages of a sorted gallery, both directions.
    for (sort, all) in [
        (GallerySort::MostMotion, ["c0000005", "c0000001", "c0000002", "c0000003"]),
        (GallerySort::LeastMotion, ["c0000003", "c0000002", "c0000001", "c0000005"]),
    ] {
        let first = store.videos(VideoQuery { sort, limit: 3, ..Default::default() }).await.unwrap();
        assert_eq!(ids(&first), all[..3]);
        let second = store
            .videos(VideoQuery { sort, limit: 3, before: first.next.clone(), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(ids(&second), all[3..]);
        assert_eq!(second.next, None);
    }
}

async fn votes_are_kept_newest_first(store: &dyn Store) {
    let vote = |id: &str, ms: i64, axis: VoteAxis| Vote {
        id: id.into(),
        created_ms: ms,
        comparison: None,
        voter: String::new(),
        axis,
        winner: "d0000001".into(),
        candidates: vec!["d0000001".into(), "d0000002".into(), "d0000003".into()],
        reasons: vec!["sharper".into(), "more motion".into()],
        blind: ms % 2 == 0,
    };
    assert!(store.votes(10).await.unwrap().is_empty());
    store.cast_vote(vote("e0000001", 1, VoteAxis::Quality)).await.unwrap();
    store.cast_vote(vote("e0000002", 2, VoteAxis::Faithfulness)).await.unwrap();
    store.cast_vote(vote("e0000003", 3, VoteAxis::Quality)).await.unwrap();
    let votes = store.votes(10).await.unwrap();
    assert_eq!(votes.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["e0000003", "e0000002", "e0000001"]);
    assert_eq!(votes[1], vote("e0000002", 2, VoteAxis::Faithfulness));
    assert_eq!(store.votes(1).await.unwrap().len(), 1);
    assert!(store.cast_vote(vote("e0000001", 9, VoteAxis::Quality)).await.is_err(), "ids are unique");

    // A comparison is kept once: a second issue of its id is the first.
    let first =
        Comparison { id: "c0c00001".into(), created_ms: 5, candidates: vec!["d1".into(), "d2".into()], blind: true };
    assert_eq!(store.open_comparison(first.clone()).await.unwrap(), first);
    let again = Comparison { created_ms: 6, candidates: vec!["d2".into(), "d1".into()], ..first.clone() };
    assert_eq!(store.open_comparison(again).await.unwrap(), first);
    assert_eq!(store.comparison(first.id.clone()).await.unwrap(), Some(first.clone()));
    assert_eq!(store.comparison("c0c00009".into()).await.unwrap(), None);
    // One vote per voter, comparison and axis: a new one replaces the earlier (keeping its id).
    let on = |id: &str, ms: i64, voter: &str, winner: &str| Vote {
        comparison: Some(first.id.clone()),
        voter: voter.into(),
        winner: winner.into(),
        candidates: first.candidates.clone(),
        blind: true,
        ..vote(id, ms, VoteAxis::Quality)
    };
    assert_eq!(store.cast_vote(on("e0000011", 11, "token ann", "d1")).await.unwrap().id, "e0000011");
    assert_eq!(store.cast_vote(on("e0000012", 12, "token ann", "d2")).await.unwrap().id, "e0000011");
    store.cast_vote(on("e0000013", 13, "token bob", "d1")).await.unwrap();
    store.cast_vote(Vote { axis: VoteAxis::Faithfulness, ..on("e0000014", 14, "token ann", "d1") }).await.unwrap();
    let anns: Vec<Vote> = store.votes(100).await.unwrap().into_iter().filter(|v| v.voter == "token ann").collect();
    assert_eq!(anns.len(), 2, "one per axis: {anns:?}");
    let quality = anns.iter().find(|v| v.axis == VoteAxis::Quality).unwrap();
    assert_eq!((quality.id.as_str(), quality.winner.as_str(), quality.created_ms), ("e0000011", "d2", 12));
    // The voter cookies' key: the first kept.
    assert_eq!(store.voter_key(vec![1; 32]).await.unwrap(), vec![1; 32]);
    assert_eq!(store.voter_key(vec![2; 32]).await.unwrap(), vec![1; 32]);
}

/// The leaderboard's sums: pairwise wins between groups, added up by the database.
async fn votes_add_up_to_pairwise_wins(store: &dyn Store) {
    let made = |id: &str, model: &str, steps: u32, guidance: f32| Video {
        params: JobParams { model: model.into(), steps, guidance, ..video(id, 1, "p", Mode::TextToVideo).params },
        ..video(id, 1, "p", Mode::TextToVideo)
    };
    for v in [
        made("a1a1a1a1", "a", 10, 3.0),
        made("a2a2a2a2", "a", 20, 3.0),
        made("b1b1b1b1", "b", 10, 7.5),
        made("c1c1c1c1", "c", 20, 7.5),
    ] {
        store.insert_video(v).await.unwrap();
    }
    let mut n = 0;
    let mut vote = |axis, winner: &str, candidates: &[&str]| {
        n += 1;
        Vote {
            id: format!("f00d{n:04x}"),
            created_ms: n as i64,
            comparison: None,
            voter: String::new(),
            axis,
            winner: winner.into(),
            candidates: candidates.iter().map(|s| s.to_string()).collect(),
            reasons: vec![],
            blind: true,
        }
    };
    let votes = [
        vote(VoteAxis::Quality, "a1a1a1a1", &["a1a1a1a1", "b1b1b1b1"]),
        vote(VoteAxis::Quality, "a2a2a2a2", &["a2a2a2a2", "b1b1b1b1", "c1c1c1c1"]),
        vote(VoteAxis::Quality, "b1b1b1b1", &["a1a1a1a1", "b1b1b1b1"]),
        // Within one model: nothing to count by model.
        vote(VoteAxis::Quality, "a1a1a1a1", &["a1a1a1a1", "a2a2a2a2"]),
        vote(VoteAxis::Faithfulness, "c1c1c1c1", &["c1c1c1c1", "b1b1b1b1"]),
        // A deleted result.
        vote(VoteAxis::Quality, "99999999", &["99999999", "a1a1a1a1"]),
    ];
    for v in votes {
        store.cast_vote(v).await.unwrap();
    }
    let board = crate::compare::standings(store, GroupBy::Model).await.unwrap();
    assert_eq!(board.votes, 4);
    let get = |board: &app::votes::Leaderboard, axis, g: &str| {
        board.standings.iter().find(|s| s.axis == axis && s.group == g).map(|s| (s.wins, s.comparisons))
    };
    assert_eq!(get(&board, VoteAxis::Quality, "a"), Some((3, 4)));
    assert_eq!(get(&board, VoteAxis::Quality, "b"), Some((1, 3)));
    assert_eq!(get(&board, VoteAxis::Quality, "c"), Some((0, 1)));
    assert_eq!(get(&board, VoteAxis::Faithfulness, "c"), Some((1, 1)));
    assert_eq!(board.standings[0].group, "a", "best first");
    // By steps, a1 (10) over a2 (20) counts, a1 over b1 (both 10) does not.
    let by_steps = crate::compare::standings(store, GroupBy::Steps).await.unwrap();
    assert_eq!(get(&by_steps, VoteAxis::Quality, "steps 10"), Some((1, 2)));
    assert_eq!(get(&by_steps, VoteAxis::Quality, "steps 20"), Some((1, 2)));
    let by_guidance = crate::compare::standings(store, GroupBy::Guidance).await.unwrap();
    assert_eq!(get(&by_guidance, VoteAxis::Quality, "guidance 3"), Some((3, 4)), "{by_guidance:?}");
    assert_eq!(get(&by_guidance, VoteAxis::Faithfulness, "guidance 7.5"), None, "c1 and b1 share 7.5");
}

async fn embeddings_per_model_and_video(store: &dyn Store) {
    store.insert_video(video("f0000001", 1, "a cat", Mode::TextToVideo)).await.unwrap();
    store.insert_video(video("f0000002", 2, "snow at night", Mode::ImageToVideo)).await.unwrap();
    store.insert_video(video("f0000003", 3, "a keyframe", Mode::TextToImage)).await.unwrap();
    assert_eq!(store.unembedded_clips("clip".into(), None, 10).await.unwrap(), ["f0000001", "f0000002"]);
    assert!(store.set_embedding("f0000001".into(), "clip".into(), vec![0.5, -0.25, 1.0]).await.unwrap());
    assert!(!store.set_embedding("ffffffff".into(), "clip".into(), vec![1.0]).await.unwrap(), "no such video");
    // Written again: replaced.
    assert!(store.set_embedding("f0000001".into(), "clip".into(), vec![0.5, -0.25, 2.0]).await.unwrap());
    assert!(store.set_embedding("f0000002".into(), "other".into(), vec![3.0]).await.unwrap());
    assert_eq!(store.embeddings("clip".into()).await.unwrap(), [("f0000001".to_string(), vec![0.5, -0.25, 2.0])]);
    assert_eq!(store.unembedded_clips("clip".into(), None, 10).await.unwrap(), ["f0000002"]);
    assert_eq!(store.unembedded_clips("other".into(), None, 10).await.unwrap(), ["f0000001"]);
    // A deleted video's embedding goes with it.
    assert!(store.delete_video("f0000001".into()).await.unwrap());
    assert!(store.embeddings("clip".into()).await.unwrap().is_empty());
}

/// Videos for the order tests: prompts of 1-4 words from a small vocabulary, random ids and
/// modes, some favorites, and times that mostly grow with `i` but are often older than
/// earlier videos, or equal to another video's (ties are ordered by id).
pub fn mixed_videos(seed: u64, n: u64) -> Vec<Video> {
    const WORDS: [&str; 10] = ["red", "blue", "ball", "balloon", "star", "left", "bouncing", "bounce", "rare", "zebra"];
    (0..n)
        .map(|i| {
            let r = model::rng::mix(seed.wrapping_mul(1_000_003) + i);
            let words = 1 + r % 4;
            let prompt = (0..words).map(|w| WORDS[((r >> (8 + 4 * w)) % 10) as usize]);
            let created_ms = match (r >> 32) % 10 {
                0..=2 => ((r >> 40) % 40) as i64,
                3 => 100 + i as i64 / 2,
                _ => 100 + i as i64,
            };
            let mode = [Mode::TextToVideo, Mode::ImageToVideo, Mode::TextToImage][((r >> 50) % 3) as usize];
            let mut v = video(
                &format!("{:08x}{i:04x}", (r >> 20) as u32),
                created_ms,
                &prompt.collect::<Vec<_>>().join(" "),
                mode,
            );
            v.favorite = (r >> 60).is_multiple_of(3);
            // Most by one model, a few by another.
            v.params.model = if (r >> 56).is_multiple_of(5) { "sd1".into() } else { "vidplay-toy-1".into() };
            v
        })
        .collect()
}

/// Pages through every query built from `texts`, modes, favorites and page sizes and checks
/// the ids, in order, against `all` filtered in Rust and sorted by (created_ms, id), newest
/// first; and that `next` is given exactly when more follow.
pub async fn check_against_reference(store: &dyn Store, all: &[Video], texts: &[&str]) {
    let words = |s: &str| {
        s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect::<Vec<_>>()
    };
    for text in texts {
        for (mode, model) in [
            (None, None),
            (Some(Mode::TextToVideo), None),
            (Some(Mode::ImageToVideo), None),
            (None, Some("sd1")),
            (None, Some("vidplay-toy-1")),
            (Some(Mode::TextToVideo), Some("sd1")),
            (None, Some("no-such-model")),
        ] {
            for favorites in [false, true] {
                let mut expected: Vec<&Video> = all
                    .iter()
                    .filter(|v| {
                        let prompt = words(&v.params.prompt);
                        words(text).iter().all(|w| prompt.iter().any(|p| p.starts_with(w.as_str())))
                            && mode.is_none_or(|m| v.mode == m)
                            && model.is_none_or(|m| v.params.model == m)
                            && (!favorites || v.favorite)
                    })
                    .collect();
                expected.sort_by(|a, b| (b.created_ms, &b.id).cmp(&(a.created_ms, &a.id)));
                let expected: Vec<&str> = expected.iter().map(|v| v.id.as_str()).collect();
                for limit in [1, 7, 100] {
                    let model = model.map(str::to_string);
                    let query = VideoQuery { q: text.to_string(), mode, model, favorites, limit, ..Default::default() };
                    let mut got = Vec::new();
                    let mut before = None;
                    for _ in 0..=expected.len() {
                        let page = store.videos(VideoQuery { before: before.clone(), ..query.clone() }).await.unwrap();
                        assert!(page.videos.len() <= limit as usize);
                        got.extend(page.videos.iter().map(|v| v.id.clone()));
                        assert_eq!(page.next.is_some(), got.len() < expected.len(), "{query:?} after {}", got.len());
                        before = page.next;
                        if before.is_none() {
                            break;
                        }
                    }
                    assert_eq!(got, expected, "{query:?}");
                }
            }
        }
    }
}

pub const SEARCHES: [&str; 12] =
    ["", "red", "RE", "b", "ball", "ball red", "bounc", "bounce", "rare", "zebra ball", "left-star", "purple"];

/// Many videos (with equal times, deletions and changed favorites): every search, filter and
/// page size gives the reference's ids in the reference's order.
async fn search_order_equals_a_reference(store: &dyn Store) {
    let mut all = mixed_videos(1, 300);
    for v in &all {
        store.insert_video(v.clone()).await.unwrap();
    }
    let deleted: Vec<String> = all.iter().step_by(17).map(|v| v.id.clone()).collect();
    for id in &deleted {
        assert!(store.delete_video(id.clone()).await.unwrap());
    }
    all.retain(|v| !deleted.contains(&v.id));
    for v in all.iter_mut().step_by(5) {
        v.favorite = !v.favorite;
        assert!(store.set_favorite(String::new(), v.id.clone(), v.favorite).await.unwrap());
    }
    for i in 0..20 {
        let v =
            video(&format!("fffe{i:04x}"), 70, if i % 2 == 0 { "red star" } else { "blue ball" }, Mode::ImageToVideo);
        store.insert_video(v.clone()).await.unwrap();
        all.push(v);
    }
    assert_eq!(store.count_videos().await.unwrap(), all.len() as u64);
    check_against_reference(store, &all, &SEARCHES).await;
}

fn job_for(id: &str, ms: i64, model: &str) -> Job {
    let mut j = job(id, ms, "p");
    j.params.model = model.into();
    j
}

fn claim(worker: &str, now_ms: i64, models: &[&str], loaded: &[&str]) -> Claim {
    let list = |l: &[&str]| l.iter().map(|m| m.to_string()).collect();
    Claim { worker: worker.into(), now_ms, lease_ms: Some(1_000), models: list(models), loaded: list(loaded) }
}

async fn workers_claim_what_they_run_and_lose_what_they_stop_renewing(store: &dyn Store) {
    for (id, ms, model) in [("a0000001", 1, "a"), ("a0000002", 2, "b"), ("a0000003", 3, "a"), ("a0000004", 4, "c")] {
        assert!(store.enqueue(job_for(id, ms, model), 10).await.unwrap());
    }
    // Only jobs for the models a worker has; those for its loaded model first.
    assert!(store.claim(claim("w1", 10, &["d"], &[])).await.unwrap().is_none());
    let j2 = store.claim(claim("w1", 10, &["b"], &[])).await.unwrap().unwrap();
    assert_eq!((j2.id.as_str(), j2.state, j2.started_ms), ("a0000002", JobState::Running, Some(10)));
    assert_eq!(store.claim(claim("w2", 10, &[], &["c"])).await.unwrap().unwrap().id, "a0000004");

    // Renewals: only by the holder; a cancel asked for shows in the next one.
    assert_eq!(
        store.renew_lease("a0000002".into(), "w1".into(), 1_500).await.unwrap(),
        Lease::Held { cancel_requested: false }
    );
    assert_eq!(store.renew_lease("a0000002".into(), "w2".into(), 1_500).await.unwrap(), Lease::Lost);
    assert!(store.request_cancel("a0000002".into()).await.unwrap());
    assert!(!store.request_cancel("a0000001".into()).await.unwrap(), "queued jobs are cancelled in the queue");
    assert_eq!(
        store.renew_lease("a0000002".into(), "w1".into(), 1_500).await.unwrap(),
        Lease::Held { cancel_requested: true }
    );

    // Leases end: job 4 (until 1010) goes back to the queue; job 2 was renewed to 1500, then
    // its worker stops answering too: cancelled, as asked.
    let r = store.requeue_expired(1_200, 3).await.unwrap();
    assert_eq!(r, Recovered { requeued: vec!["a0000004".into()], ..Default::default() });
    let j4 = store.job("a0000004".into()).await.unwrap().unwrap();
    assert_eq!((j4.state, j4.step, j4.started_ms), (JobState::Queued, 0, None));
    assert!(j4.message.unwrap().contains("stopped answering"));
    let r = store.requeue_expired(1_600, 3).await.unwrap();
    assert_eq!(r, Recovered { cancelled: vec!["a0000002".into()], ..Default::default() });
    assert_eq!(store.job("a0000002".into()).await.unwrap().unwrap().state, JobState::Cancelled);
    // The worker that lost it can no longer write it.
    assert_eq!(store.renew_lease("a0000002".into(), "w1".into(), 2_000).await.unwrap(), Lease::Lost);
    let stale = Job { state: JobState::Done, ..j2 };
    assert!(!store.finish_job(stale, "w1".into()).await.unwrap());
    assert_eq!(store.job("a0000002".into()).await.unwrap().unwrap().state, JobState::Cancelled);

    // A job whose workers keep dying is failed after the third try.
    for (try_no, now) in [(2, 2_000), (3, 4_000)] {
        assert_eq!(store.claim(claim("w3", now, &["c"], &[])).await.unwrap().unwrap().id, "a0000004", "try {try_no}");
        let r = store.requeue_expired(now + 1_500, 3).await.unwrap();
        if try_no < 3 {
            assert_eq!(r.requeued, ["a0000004"]);
        } else {
            assert_eq!((r.failed.as_slice(), r.requeued.len()), (["a0000004".to_string()].as_slice(), 0));
        }
    }
    let j4 = store.job("a0000004".into()).await.unwrap().unwrap();
    assert_eq!((j4.state, j4.message), (JobState::Failed, Some(lost_too_often(3))));

    // A worker that died after saving the video: the job is done.
    let j1 = store.claim(claim("w1", 5_000, &["a"], &[])).await.unwrap().unwrap();
    assert_eq!(j1.id, "a0000001");
    store.insert_video(video("a0000001", 5_100, "p", Mode::TextToVideo)).await.unwrap();
    assert_eq!(store.requeue_expired(6_100, 3).await.unwrap().done, ["a0000001"]);
    assert_eq!(store.job("a0000001".into()).await.unwrap().unwrap().video_id.as_deref(), Some("a0000001"));

    // The holder finishes its job; a job without a lease (the embedded worker's) never expires.
    let mut j3 = store.claim(claim("w2", 7_000, &[], &[])).await.unwrap().unwrap();
    assert_eq!(j3.id, "a0000003");
    j3.state = JobState::Done;
    j3.step = j3.total;
    assert!(store.finish_job(j3, "w2".into()).await.unwrap());
    assert_eq!(store.job("a0000003".into()).await.unwrap().unwrap().state, JobState::Done);
    assert!(store.enqueue(job_for("a0000005", 8, "a"), 10).await.unwrap());
    assert_eq!(store.claim_next(8_000).await.unwrap().unwrap().id, "a0000005");
    assert_eq!(store.requeue_expired(i64::MAX, 3).await.unwrap(), Recovered::default());
    assert_eq!(
        store.renew_lease("a0000005".into(), "".into(), 9_000).await.unwrap(),
        Lease::Held { cancel_requested: false }
    );
    // A shutdown puts it back; that is not a try.
    let back = Job {
        state: JobState::Queued,
        step: 0,
        started_ms: None,
        ..store.job("a0000005".into()).await.unwrap().unwrap()
    };
    assert!(store.finish_job(back, "".into()).await.unwrap());
    assert_eq!(store.queued_count().await.unwrap(), 1);
}

async fn workers_report_themselves(store: &dyn Store) {
    let status = |id: &str, seen_ms: i64, current: Option<&str>| WorkerStatus {
        id: id.into(),
        name: format!("gpu box {id}"),
        devices: vec!["cuda:0".into()],
        models: vec!["vidplay-toy-1".into(), "wan".into()],
        loaded: vec!["wan".into()],
        current_job: current.map(str::to_string),
        started_ms: 1,
        seen_ms,
        warm_up: (id == "w2").then(|| WarmUp { done: 1, total: 3, current: Some("wan".into()) }),
    };
    assert!(store.workers(0).await.unwrap().is_empty());
    store.worker_seen(status("w1", 100, None)).await.unwrap();
    store.worker_seen(status("w2", 150, Some("b0000001"))).await.unwrap();
    store.worker_seen(status("w1", 200, Some("b0000002"))).await.unwrap();
    assert_eq!(
        store.workers(0).await.unwrap(),
        [status("w1", 200, Some("b0000002")), status("w2", 150, Some("b0000001"))]
    );
    assert_eq!(
        store.workers(160).await.unwrap(),
        [status("w1", 200, Some("b0000002"))],
        "long silent workers are left out"
    );
}

async fn owners_take_turns_and_have_their_own_limit(store: &dyn Store) {
    let owned = |id: &str, ms: i64, owner: &str| Job { owner: owner.into(), ..job(id, ms, "p") };
    for (id, ms, owner) in [
        ("c0000001", 1, "ann"),
        ("c0000002", 2, "ann"),
        ("c0000003", 3, "ann"),
        ("c0000004", 4, "bob"),
        ("c0000005", 5, "bob"),
    ] {
        assert!(store.enqueue(owned(id, ms, owner), 3).await.unwrap(), "{id}");
    }
    assert!(!store.enqueue(owned("c0000006", 6, "ann"), 3).await.unwrap(), "ann has 3 waiting");
    assert!(store.enqueue(owned("c0000007", 7, "cat"), 3).await.unwrap(), "others are not held back by ann");
    assert_eq!((store.queued_count_of("ann".into()).await.unwrap(), store.queued_count().await.unwrap()), (3, 6));
    // Round-robin: whoever was served least recently goes first (never served: first of all).
    let mut order = Vec::new();
    for now in 10..16 {
        let j = store.claim(claim("w", now, &[], &[])).await.unwrap().unwrap();
        order.push(format!("{}:{}", j.owner, j.id));
    }
    assert_eq!(order, ["ann:c0000001", "bob:c0000004", "cat:c0000007", "ann:c0000002", "bob:c0000005", "ann:c0000003"]);
    assert_eq!(store.job("c0000004".into()).await.unwrap().unwrap().owner, "bob");
}

/// A job whose decode failed is stored as such, and queued again (for its decoder alone) once
/// per ask; nothing else is.
async fn a_failed_decode_is_retried_once_per_ask(store: &dyn Store) {
    assert!(store.enqueue(job("ffff0001", 1, "a"), 10).await.unwrap());
    let running = store.claim_next(2).await.unwrap().unwrap();
    assert!(!running.decodes_again());
    assert!(!store.retry_decode("ffff0001".into()).await.unwrap(), "running, not decode-failed");
    let failed = Job {
        state: JobState::DecodeFailed,
        finished_ms: Some(3),
        message: Some("out of memory".into()),
        decode_retries: Some(0),
        ..running
    };
    assert!(store.finish_job(failed.clone(), String::new()).await.unwrap());
    assert_eq!(store.job("ffff0001".into()).await.unwrap(), Some(failed.clone()));
    assert!(store.retry_decode("ffff0001".into()).await.unwrap());
    assert!(!store.retry_decode("ffff0001".into()).await.unwrap(), "queued once");
    let queued = store.job("ffff0001".into()).await.unwrap().unwrap();
    assert_eq!((queued.state, queued.decode_retries, queued.finished_ms), (JobState::Queued, Some(1), None));
    let again = store.claim_next(4).await.unwrap().unwrap();
    assert!(again.decodes_again());
    // Failed again: a second retry counts on.
    assert!(store.finish_job(Job { state: JobState::DecodeFailed, ..again }, String::new()).await.unwrap());
    assert!(store.retry_decode("ffff0001".into()).await.unwrap());
    assert_eq!(store.job("ffff0001".into()).await.unwrap().unwrap().decode_retries, Some(2));
    // A queued decode retry cancelled goes back to decode-failed, its latents still wanted.
    assert!(store.cancel_queued("ffff0001".into(), 5).await.unwrap());
    let cancelled = store.job("ffff0001".into()).await.unwrap().unwrap();
    assert_eq!((cancelled.state, cancelled.decode_retries), (JobState::DecodeFailed, Some(2)));
    // Latents kept, then two crashes while decoding: decode-failed, not failed.
    assert!(store.enqueue(job("ffff0003", 6, "c"), 10).await.unwrap());
    assert_eq!(store.claim_next(7).await.unwrap().unwrap().id, "ffff0003");
    assert!(store.latents_kept("ffff0003".into(), String::new()).await.unwrap());
    assert_eq!(store.recover_interrupted(8).await.unwrap().requeued, ["ffff0003"]);
    assert_eq!(store.claim_next(9).await.unwrap().unwrap().id, "ffff0003");
    assert_eq!(store.recover_interrupted(10).await.unwrap().failed, ["ffff0003"]);
    let crashed = store.job("ffff0003".into()).await.unwrap().unwrap();
    assert_eq!((crashed.state, crashed.decode_retries), (JobState::DecodeFailed, Some(0)));
    assert!(!store.latents_kept("ffff0003".into(), String::new()).await.unwrap(), "not running");
    // A plain failure, and a missing job, are not retried.
    let plain = Job { state: JobState::Failed, message: Some("bad".into()), ..job("ffff0002", 5, "b") };
    assert!(store.import_job(plain.clone()).await.unwrap());
    assert_eq!(store.job("ffff0002".into()).await.unwrap(), Some(plain));
    assert!(!store.retry_decode("ffff0002".into()).await.unwrap());
    assert!(!store.retry_decode("ffff0009".into()).await.unwrap());
}

/// The fence of a job's result: only the worker holding the job decides which run made it, once;
/// a job that does not end done forgets it.
async fn a_result_is_decided_once_and_only_by_the_worker_holding_the_job(store: &dyn Store) {
    let claim = |worker: &str, now_ms| Claim {
        worker: worker.into(),
        now_ms,
        lease_ms: Some(1_000),
        models: Vec::new(),
        loaded: Vec::new(),
    };
    let decide = |worker: &str, attempt: &str| store.decide_result("abab0001".into(), worker.into(), attempt.into());
    assert!(store.enqueue(job("abab0001", 1, "a"), 10).await.unwrap());
    assert_eq!(decide("w1", "a1").await.unwrap(), None, "queued: nobody holds it");
    let running = store.claim(claim("w1", 2)).await.unwrap().unwrap();
    assert_eq!(decide("w2", "a2").await.unwrap(), None, "not w2's");
    assert_eq!(store.decided_result("abab0001".into()).await.unwrap(), None);
    assert_eq!(decide("w1", "a1").await.unwrap().as_deref(), Some("a1"));
    assert_eq!(decide("w1", "a3").await.unwrap().as_deref(), Some("a1"), "decided once");
    let done = Job { state: JobState::Done, video_id: Some(running.id.clone()), ..running };
    assert!(store.finish_job(done, "w1".into()).await.unwrap());
    assert_eq!(store.decided_result("abab0001".into()).await.unwrap().as_deref(), Some("a1"));
    assert_eq!(decide("w1", "a4").await.unwrap(), None, "finished: nobody holds it");

    assert!(store.enqueue(job("abab0002", 3, "b"), 10).await.unwrap());
    let running = store.claim(claim("w1", 4)).await.unwrap().unwrap();
    let decided = store.decide_result("abab0002".into(), "w1".into(), "b1".into()).await.unwrap();
    assert_eq!(decided.as_deref(), Some("b1"));
    let failed = Job { state: JobState::Failed, message: Some("saving failed".into()), ..running };
    assert!(store.finish_job(failed, "w1".into()).await.unwrap());
    assert_eq!(store.decided_result("abab0002".into()).await.unwrap(), None, "not done: forgotten");
    assert_eq!(store.decided_result("abab0009".into()).await.unwrap(), None);
}
