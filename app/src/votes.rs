//! Side-by-side comparisons and their votes, and the leaderboard they add up to: win rates per
//! model or per setting, with 95% confidence intervals (Wilson), like the human study of Emu
//! Video (quality and faithfulness judged apart).
//!
//! A comparison is issued by the server (the compare page gets one when it shows results, the
//! API with `POST /api/comparisons`): it fixes the results compared and whether the voter was
//! shown which made which, so a vote cannot claim a blindness it did not have. Each voter has
//! one vote per comparison and axis; voting again replaces it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// Results shown side by side, as the server issued them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub id: String,
    pub created_ms: i64,
    /// The results compared (2 to 4), in the order shown.
    pub candidates: Vec<String>,
    /// The voter was not shown which model or setting made which.
    pub blind: bool,
}

/// What the compare page shows: the results found, and the comparison issued for them (none
/// when fewer than two clips were found).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compared {
    pub comparison: Option<Comparison>,
    pub videos: Vec<crate::types::Video>,
}

/// What `POST /api/comparisons` asks for. The API's comparisons are never blind (a script sees
/// what made which); blind ones are issued to the compare page, which hides it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRequest {
    pub candidates: Vec<String>,
}

/// What can be checked of results to compare without the gallery: their count, ids, repeats.
pub fn check_candidates(candidates: &[String]) -> Result<(), String> {
    let n = candidates.len();
    if !(MIN_CANDIDATES..=MAX_CANDIDATES).contains(&n) {
        return Err(format!("a vote compares {MIN_CANDIDATES} to {MAX_CANDIDATES} results, not {n}"));
    }
    if let Some(bad) = candidates.iter().find(|c| !crate::types::is_valid_id(c)) {
        let bad: String = bad.chars().take(40).collect();
        return Err(format!("{bad:?} is not a video id"));
    }
    for (i, c) in candidates.iter().enumerate() {
        if candidates[..i].contains(c) {
            return Err(format!("{c} is compared with itself"));
        }
    }
    Ok(())
}

/// A vote as the API and the compare page send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoteRequest {
    /// The comparison voted on, as the server issued it; without one (scripts of earlier
    /// versions), the vote is on the comparison of `candidates` that is not blind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<String>,
    pub axis: VoteAxis,
    /// The better one: one of the results compared.
    pub winner: String,
    /// The results compared, without a comparison (2 to 4, the winner among them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// Why: distinct words of [`REASONS`].
    #[serde(default)]
    pub reasons: Vec<String>,
}

impl VoteRequest {
    /// What can be checked without the gallery: the comparison's id, or the results compared
    /// (counts, duplicates, ids, the winner among them), and the reasons.
    pub fn check(&self) -> Result<(), String> {
        match &self.comparison {
            Some(id) if !crate::types::is_valid_id(id) => return Err("`comparison` is not a comparison id".into()),
            Some(_) => {}
            None => {
                check_candidates(&self.candidates)?;
                if !self.candidates.contains(&self.winner) {
                    return Err("the winner must be one of the results compared".into());
                }
            }
        }
        self.check_reasons()
    }

    /// The winner is one of `candidates` (those of the comparison voted on).
    pub fn check_winner(&self, candidates: &[String]) -> Result<(), String> {
        if !candidates.contains(&self.winner) {
            return Err("the winner must be one of the results compared".into());
        }
        Ok(())
    }

    fn check_reasons(&self) -> Result<(), String> {
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
    /// The comparison voted on (none for votes of earlier versions).
    #[serde(default)]
    pub comparison: Option<String>,
    /// Who voted: `token NAME` for a named token, else `cookie ID`, a random id the server
    /// gave the browser in a signed cookie (empty for votes of earlier versions). Kept by the
    /// store, never sent: who voted for what is nobody else's business.
    #[serde(default, skip_serializing)]
    pub voter: String,
    pub axis: VoteAxis,
    pub winner: String,
    pub candidates: Vec<String>,
    pub reasons: Vec<String>,
    /// As the comparison was issued (what a client said of itself in earlier versions).
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

    /// Its name, which is also the name of the setting in the job parameters
    /// (`app::params::JobParams`) it groups by: what the stores read from a result.
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

    /// The group's name for a result whose setting is `value` (as the stores read it: a model's
    /// name, a number's text; none for a seed left random).
    pub fn label(self, value: Option<&str>) -> String {
        let value = value.unwrap_or_default().trim();
        // Numbers as the Create page shows them (3, not 3.0).
        let number = || value.parse::<f32>().map_or_else(|_| value.to_string(), |n| n.to_string());
        match self {
            GroupBy::Model => value.to_string(),
            GroupBy::Steps => format!("steps {}", number()),
            GroupBy::Guidance => format!("guidance {}", number()),
            GroupBy::Motion => format!("motion {}", number()),
            GroupBy::Fps => format!("{} fps", number()),
            GroupBy::Frames => format!("{} frames", number()),
            GroupBy::Seed => format!("seed {}", value.parse::<u64>().unwrap_or_default()),
        }
    }
}

/// How often results of one group won over results of another, on one axis: what the stores
/// add votes up to (each vote is a win of its winner over every other result compared).
#[derive(Debug, Clone, PartialEq)]
pub struct PairCount {
    pub axis: VoteAxis,
    /// The groups' names ([`GroupBy::label`]).
    pub winner: String,
    pub loser: String,
    pub count: u32,
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

/// The standings of pairwise wins between groups: a win counts for its groups when they differ
/// (a comparison within one group says nothing about it). `votes` is how many votes had such a
/// pair.
pub fn leaderboard(pairs: &[PairCount], votes: u32, by: GroupBy) -> Leaderboard {
    let mut table: BTreeMap<(VoteAxis, String), (u32, u32)> = BTreeMap::new();
    for p in pairs.iter().filter(|p| p.winner != p.loser) {
        let w = table.entry((p.axis, p.winner.clone())).or_default();
        w.0 += p.count;
        w.1 += p.count;
        table.entry((p.axis, p.loser.clone())).or_default().1 += p.count;
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
    Leaderboard { by, votes, standings }
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

    #[test]
    fn pairs_add_up_to_win_rates_per_group() {
        let pair = |axis, winner: &str, loser: &str, count| PairCount {
            axis,
            winner: winner.into(),
            loser: loser.into(),
            count,
        };
        let pairs = [
            pair(VoteAxis::Quality, "a", "b", 2),
            pair(VoteAxis::Quality, "a", "c", 1),
            pair(VoteAxis::Quality, "b", "a", 1),
            // Within one group: says nothing about it.
            pair(VoteAxis::Quality, "a", "a", 5),
            pair(VoteAxis::Faithfulness, "c", "b", 1),
        ];
        let board = leaderboard(&pairs, 4, GroupBy::Model);
        assert_eq!(board.votes, 4);
        let get = |axis, g: &str| {
            board.standings.iter().find(|s| s.axis == axis && s.group == g).map(|s| (s.wins, s.comparisons))
        };
        assert_eq!(get(VoteAxis::Quality, "a"), Some((3, 4)));
        assert_eq!(get(VoteAxis::Quality, "b"), Some((1, 3)));
        assert_eq!(get(VoteAxis::Quality, "c"), Some((0, 1)));
        assert_eq!(get(VoteAxis::Faithfulness, "c"), Some((1, 1)));
        assert_eq!(board.standings[0].group, "a", "best first");
        let csv = board.csv();
        assert!(csv.starts_with("axis,model,wins,comparisons,win_rate,ci95_low,ci95_high\n"));
        assert!(csv.contains("quality,a,3,4,0.7500,"), "{csv}");
    }

    #[test]
    fn groups_are_named_as_the_create_page_shows_settings() {
        assert_eq!(GroupBy::Guidance.label(Some("3.0")), "guidance 3");
        assert_eq!(GroupBy::Guidance.label(Some("7.5")), "guidance 7.5");
        assert_eq!(GroupBy::Steps.label(Some("24")), "steps 24");
        assert_eq!(GroupBy::Fps.label(Some("8")), "8 fps");
        assert_eq!(GroupBy::Seed.label(None), "seed 0");
        assert_eq!(GroupBy::Model.label(Some("sd-turbo")), "sd-turbo");
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
            comparison: None,
            axis: VoteAxis::Quality,
            winner: "aaaaaaaa".into(),
            candidates: vec!["aaaaaaaa".into(), "bbbbbbbb".into()],
            reasons: vec!["sharper".into()],
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
        let id = VoteRequest { candidates: vec!["aaaaaaaa".into(), "../x".into()], ..ok.clone() };
        assert!(id.check().is_err());
        // On an issued comparison the results are the comparison's, checked against it.
        let on = VoteRequest { comparison: Some("cccc0001".into()), candidates: vec![], ..ok.clone() };
        assert!(on.check().is_ok());
        assert!(on.check_winner(&["aaaaaaaa".into(), "bbbbbbbb".into()]).is_ok());
        assert!(on.check_winner(&["bbbbbbbb".into(), "dddddddd".into()]).unwrap_err().contains("winner"));
        let bad = VoteRequest { comparison: Some("../x".into()), ..on };
        assert!(bad.check().unwrap_err().contains("comparison"));
    }
}
