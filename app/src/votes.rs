//! Side-by-side comparisons and their votes, and the leaderboard they add up to: win rates per
//! model or per setting, with 95% confidence intervals (Wilson), like the human study of Emu
//! Video (quality and faithfulness judged apart).

use crate::params::JobParams;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Fewest and most results compared at once.
pub const MIN_CANDIDATES: usize = 2;
pub const MAX_CANDIDATES: usize = 4;

/// Why one result was better, as a voter may say.
pub const REASONS: [&str; 5] = ["sharper", "smoother", "more motion", "more consistent", "follows the prompt"];

/// What a vote judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteAxis {
    /// Pixel sharpness, motion smoothness, amount of motion, consistency.
    Quality,
    /// How well it shows what the prompt asks.
    Faithfulness,
}

impl VoteAxis {
    pub const ALL: [VoteAxis; 2] = [VoteAxis::Quality, VoteAxis::Faithfulness];

    pub fn as_str(self) -> &'static str {
        match self {
            VoteAxis::Quality => "quality",
            VoteAxis::Faithfulness => "faithfulness",
        }
    }

    pub fn parse(s: &str) -> Option<VoteAxis> {
        VoteAxis::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            VoteAxis::Quality => "Quality",
            VoteAxis::Faithfulness => "Faithfulness to the prompt",
        }
    }
}

/// A vote as the API and the compare page send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoteRequest {
    pub axis: VoteAxis,
    /// The better one: one of `candidates`.
    pub winner: String,
    /// Every result that was compared (2 to 4, the winner among them).
    pub candidates: Vec<String>,
    /// Why: distinct words of [`REASONS`].
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The voter did not see which model or setting made which.
    #[serde(default)]
    pub blind: bool,
}

impl VoteRequest {
    /// What can be checked without the gallery: counts, duplicates, ids, reasons.
    pub fn check(&self) -> Result<(), String> {
        let n = self.candidates.len();
        if !(MIN_CANDIDATES..=MAX_CANDIDATES).contains(&n) {
            return Err(format!("a vote compares {MIN_CANDIDATES} to {MAX_CANDIDATES} results, not {n}"));
        }
        if let Some(bad) = self.candidates.iter().find(|c| !crate::types::is_valid_id(c)) {
            return Err(format!("{bad:?} is not a video id"));
        }
        for (i, c) in self.candidates.iter().enumerate() {
            if self.candidates[..i].contains(c) {
                return Err(format!("{c} is compared with itself"));
            }
        }
        if !self.candidates.contains(&self.winner) {
            return Err("the winner must be one of the results compared".into());
        }
        if let Some(bad) = self.reasons.iter().find(|r| !REASONS.contains(&r.as_str())) {
            let bad: String = bad.chars().take(40).collect();
            return Err(format!("unknown reason {bad:?} (reasons: {})", REASONS.join(", ")));
        }
        // Known words, each at most once: so never more than REASONS has.
        for (i, r) in self.reasons.iter().enumerate() {
            if self.reasons[..i].contains(r) {
                return Err(format!("the reason {r:?} is given twice"));
            }
        }
        Ok(())
    }
}

/// A stored vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    pub id: String,
    pub created_ms: i64,
    pub axis: VoteAxis,
    pub winner: String,
    pub candidates: Vec<String>,
    pub reasons: Vec<String>,
    pub blind: bool,
}

/// What the leaderboard groups results by: the model, or one setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    #[default]
    Model,
    Steps,
    Guidance,
    Motion,
    Fps,
    Frames,
    Seed,
}

impl GroupBy {
    pub const ALL: [GroupBy; 7] = [
        GroupBy::Model,
        GroupBy::Steps,
        GroupBy::Guidance,
        GroupBy::Motion,
        GroupBy::Fps,
        GroupBy::Frames,
        GroupBy::Seed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Steps => "steps",
            GroupBy::Guidance => "guidance",
            GroupBy::Motion => "motion",
            GroupBy::Fps => "fps",
            GroupBy::Frames => "frames",
            GroupBy::Seed => "seed",
        }
    }

    pub fn parse(s: &str) -> Option<GroupBy> {
        GroupBy::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The group a result's settings fall in.
    pub fn group(self, p: &JobParams) -> String {
        match self {
            GroupBy::Model => p.model.clone(),
            GroupBy::Steps => format!("steps {}", p.steps),
            GroupBy::Guidance => format!("guidance {}", p.guidance),
            GroupBy::Motion => format!("motion {}", p.motion),
            GroupBy::Fps => format!("{} fps", p.fps),
            GroupBy::Frames => format!("{} frames", p.frames),
            GroupBy::Seed => format!("seed {}", p.seed.unwrap_or_default()),
        }
    }
}

/// One group's record on one axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    pub axis: VoteAxis,
    pub group: String,
    /// Pairwise wins against results of other groups, of `comparisons`.
    pub wins: u32,
    pub comparisons: u32,
    pub win_rate: f64,
    /// 95% confidence interval of the win rate (Wilson score).
    pub low: f64,
    pub high: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    pub by: GroupBy,
    /// Votes counted (votes whose results were all deleted are not).
    pub votes: u32,
    /// Per axis, best win rate first.
    pub standings: Vec<Standing>,
}

/// The 95% Wilson score interval of `wins` out of `n`.
pub fn wilson(wins: u32, n: u32) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, n, p) = (1.96f64, n as f64, wins as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Adds votes up: each vote is a win of its winner over every other result compared, counted
/// for their groups when the groups differ (a comparison within one group says nothing about
/// it). Results missing from `params` (deleted) are left out.
pub fn leaderboard(votes: &[Vote], params: &HashMap<String, JobParams>, by: GroupBy) -> Leaderboard {
    let mut table: BTreeMap<(VoteAxis, String), (u32, u32)> = BTreeMap::new();
    let mut counted = 0;
    for v in votes {
        let Some(winner) = params.get(&v.winner).map(|p| by.group(p)) else { continue };
        let mut any = false;
        for loser in v.candidates.iter().filter(|c| **c != v.winner) {
            let Some(loser) = params.get(loser).map(|p| by.group(p)) else { continue };
            if loser == winner {
                continue;
            }
            any = true;
            let w = table.entry((v.axis, winner.clone())).or_default();
            w.0 += 1;
            w.1 += 1;
            table.entry((v.axis, loser)).or_default().1 += 1;
        }
        counted += any as u32;
    }
    let mut standings: Vec<Standing> = table
        .into_iter()
        .map(|((axis, group), (wins, comparisons))| {
            let (low, high) = wilson(wins, comparisons);
            Standing { axis, group, wins, comparisons, win_rate: wins as f64 / comparisons.max(1) as f64, low, high }
        })
        .collect();
    standings.sort_by(|a, b| {
        a.axis
            .cmp(&b.axis)
            .then(b.win_rate.total_cmp(&a.win_rate))
            .then(b.comparisons.cmp(&a.comparisons))
            .then(a.group.cmp(&b.group))
    });
    Leaderboard { by, votes: counted, standings }
}

impl Leaderboard {
    /// The standings as CSV, one row per group and axis.
    pub fn csv(&self) -> String {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
        };
        let mut out = format!("axis,{},wins,comparisons,win_rate,ci95_low,ci95_high\n", self.by.as_str());
        for s in &self.standings {
            out += &format!(
                "{},{},{},{},{:.4},{:.4},{:.4}\n",
                s.axis.as_str(),
                quote(&s.group),
                s.wins,
                s.comparisons,
                s.win_rate,
                s.low,
                s.high
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(axis: VoteAxis, winner: &str, candidates: &[&str]) -> Vote {
        Vote {
            id: "v".into(),
            created_ms: 0,
            axis,
            winner: winner.into(),
            candidates: candidates.iter().map(|s| s.to_string()).collect(),
            reasons: vec![],
            blind: true,
        }
    }

    #[test]
    fn votes_add_up_to_win_rates_per_group() {
        let p = |model: &str, steps: u32| JobParams { model: model.into(), steps, ..JobParams::default() };
        let params: HashMap<String, JobParams> =
            [("a1", p("a", 10)), ("a2", p("a", 20)), ("b1", p("b", 10)), ("c1", p("c", 20))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        let votes = vec![
            vote(VoteAxis::Quality, "a1", &["a1", "b1"]),
            vote(VoteAxis::Quality, "a2", &["a2", "b1", "c1"]),
            vote(VoteAxis::Quality, "b1", &["a1", "b1"]),
            // Within one model: nothing to count by model.
            vote(VoteAxis::Quality, "a1", &["a1", "a2"]),
            vote(VoteAxis::Faithfulness, "c1", &["c1", "b1"]),
            // A deleted result.
            vote(VoteAxis::Quality, "gone", &["gone", "a1"]),
        ];
        let board = leaderboard(&votes, &params, GroupBy::Model);
        assert_eq!(board.votes, 4);
        let get = |axis, g: &str| {
            board.standings.iter().find(|s| s.axis == axis && s.group == g).map(|s| (s.wins, s.comparisons))
        };
        assert_eq!(get(VoteAxis::Quality, "a"), Some((3, 4)));
        assert_eq!(get(VoteAxis::Quality, "b"), Some((1, 3)));
        assert_eq!(get(VoteAxis::Quality, "c"), Some((0, 1)));
        assert_eq!(get(VoteAxis::Faithfulness, "c"), Some((1, 1)));
        assert_eq!(board.standings[0].group, "a", "best first");
        let by_steps = leaderboard(&votes, &params, GroupBy::Steps);
        // By steps, a1 (10) over a2 (20) counts, a1 over b1 (both 10) does not.
        let steps = |g: &str| {
            by_steps
                .standings
                .iter()
                .find(|s| s.axis == VoteAxis::Quality && s.group == g)
                .map(|s| (s.wins, s.comparisons))
        };
        assert_eq!(steps("steps 10"), Some((1, 2)));
        assert_eq!(steps("steps 20"), Some((1, 2)));
        let csv = board.csv();
        assert!(csv.starts_with("axis,model,wins,comparisons,win_rate,ci95_low,ci95_high\n"));
        assert!(csv.contains("quality,a,3,4,0.7500,"), "{csv}");
    }

    #[test]
    fn wilson_intervals_hold_the_rate() {
        let (lo, hi) = wilson(8, 10);
        assert!(lo < 0.8 && 0.8 < hi && lo > 0.4 && hi < 0.97, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (lo, hi) = wilson(500, 1000);
        assert!((hi - lo) < 0.07);
    }

    #[test]
    fn bad_votes_are_refused_with_reasons() {
        let ok = VoteRequest {
            axis: VoteAxis::Quality,
            winner: "aaaaaaaa".into(),
            candidates: vec!["aaaaaaaa".into(), "bbbbbbbb".into()],
            reasons: vec!["sharper".into()],
            blind: false,
        };
        assert!(ok.check().is_ok());
        let one = VoteRequest { candidates: vec!["aaaaaaaa".into()], ..ok.clone() };
        assert!(one.check().unwrap_err().contains("2 to 4"));
        let dup = VoteRequest { candidates: vec!["aaaaaaaa".into(), "aaaaaaaa".into()], ..ok.clone() };
        assert!(dup.check().unwrap_err().contains("itself"));
        let outsider = VoteRequest { winner: "cccccccc".into(), ..ok.clone() };
        assert!(outsider.check().unwrap_err().contains("winner"));
        let reason = VoteRequest { reasons: vec!["louder".into()], ..ok.clone() };
        assert!(reason.check().unwrap_err().contains("louder"));
        let again = VoteRequest { reasons: vec!["sharper".into(); 200_000], ..ok.clone() };
        assert!(again.check().unwrap_err().contains("twice"));
        let all = VoteRequest { reasons: REASONS.map(String::from).to_vec(), ..ok.clone() };
        assert!(all.check().is_ok());
        let id = VoteRequest { candidates: vec!["aaaaaaaa".into(), "../x".into()], ..ok };
        assert!(id.check().is_err());
    }
}
