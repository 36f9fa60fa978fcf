//! Variants: one request that makes a grid of results, grouped: the same prompt over several
//! seeds, one parameter over several values (like an X/Y plot's axis), or several models.

use crate::params::JobParams;
use crate::types::Job;
use serde::{Deserialize, Serialize};

/// Most results one variants request makes.
pub const MAX_VARIANTS: usize = 8;

/// What varies. Exactly one of: `seeds` (or `count` random seeds), `param` with `values`,
/// `models`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Variants {
    pub seeds: Vec<u64>,
    /// This many random seeds.
    pub count: u32,
    /// A parameter's name in the request (`guidance`, `steps`, `motion`, ...).
    pub param: String,
    /// Its values, numbers or text.
    pub values: Vec<serde_json::Value>,
    pub models: Vec<String>,
}

/// A variants request's answer: the group's id (also each job's `params.group`) and its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantGroup {
    pub group: String,
    pub jobs: Vec<Job>,
}

impl Variants {
    /// Parses the Create form's two fields: `vary` (`seed`, `model`, or a parameter's name)
    /// and `vary_values` (how many seeds; or values or models separated by commas).
    pub fn from_form(vary: &str, values: &str) -> Result<Option<Variants>, String> {
        let list: Vec<&str> = values.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
        Ok(Some(match vary.trim() {
            "" => return Ok(None),
            "seed" | "seeds" => {
                let count = values
                    .trim()
                    .parse()
                    .map_err(|_| format!("the number of seeds must be a number, not {values:?}"))?;
                Variants { count, ..Variants::default() }
            }
            "model" | "models" => {
                Variants { models: list.iter().map(|s| s.to_string()).collect(), ..Variants::default() }
            }
            param => Variants {
                param: param.into(),
                values: list.iter().map(|s| serde_json::Value::String(s.to_string())).collect(),
                ..Variants::default()
            },
        }))
    }

    /// The requests this makes from `base` (the seed of each left as `base` has it unless the
    /// seed varies; `draw_seed` draws the random ones).
    pub fn expand(&self, base: &JobParams, mut draw_seed: impl FnMut() -> u64) -> Result<Vec<JobParams>, String> {
        let kinds = [
            !self.seeds.is_empty() || self.count > 0,
            !self.param.is_empty() || !self.values.is_empty(),
            !self.models.is_empty(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => return Err("variants need seeds (or a count), a param with values, or models".into()),
            1 => {}
            _ => return Err("variants vary one thing: seeds, one param, or models".into()),
        }
        let out: Vec<JobParams> = if kinds[0] {
            if !self.seeds.is_empty() && self.count > 0 {
                return Err("give seeds or a count of seeds, not both".into());
            }
            let seeds: Vec<u64> = if self.seeds.is_empty() {
                (0..self.count.min(MAX_VARIANTS as u32 + 1)).map(|_| draw_seed()).collect()
            } else {
                self.seeds.clone()
            };
            seeds.into_iter().map(|s| JobParams { seed: Some(s), ..base.clone() }).collect()
        } else if kinds[1] {
            if self.param.is_empty() || self.values.is_empty() {
                return Err("a param variant needs the param's name and its values".into());
            }
            if base.value(&self.param).is_none() {
                return Err(format!(
                    "{:?} is not a parameter that can vary (e.g. guidance, steps, motion, fps, frames)",
                    self.param
                ));
            }
            let mut out = Vec::new();
            for v in &self.values {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    other => return Err(format!("a value of {} must be a number or text, not {other}", self.param)),
                };
                let mut p = base.clone();
                if !crate::models::set_value(&mut p, &self.param, &text) {
                    return Err(format!("{} must be a number, not {text:?}", self.param));
                }
                out.push(p);
            }
            out
        } else {
            self.models.iter().map(|m| JobParams { model: m.clone(), ..base.clone() }).collect()
        };
        if out.len() < 2 {
            return Err("variants make at least 2 results".into());
        }
        if out.len() > MAX_VARIANTS {
            return Err(format!("variants make at most {MAX_VARIANTS} results, not {}", out.len()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_expands_and_bad_ones_are_refused() {
        let base = JobParams { prompt: "a red ball".into(), seed: Some(5), ..JobParams::default() };
        let mut n = 100;
        let mut draw = || {
            n += 1;
            n
        };
        let seeds = Variants { count: 3, ..Variants::default() }.expand(&base, &mut draw).unwrap();
        assert_eq!(seeds.iter().map(|p| p.seed.unwrap()).collect::<Vec<_>>(), [101, 102, 103]);
        let guidance: Variants = serde_json::from_str(r#"{"param": "guidance", "values": [1, "2.5", 4]}"#).unwrap();
        let g = guidance.expand(&base, &mut draw).unwrap();
        assert_eq!(g.iter().map(|p| p.guidance).collect::<Vec<_>>(), [1.0, 2.5, 4.0]);
        assert!(g.iter().all(|p| p.seed == Some(5) && p.prompt == "a red ball"));
        let models =
            Variants { models: vec!["a".into(), "b".into()], ..Variants::default() }.expand(&base, &mut draw).unwrap();
        assert_eq!(models[1].model, "b");

        let err = |v: Variants| v.expand(&base, || 1).unwrap_err();
        assert!(err(Variants::default()).contains("need"));
        assert!(err(Variants { count: 2, models: vec!["a".into()], ..Variants::default() }).contains("one thing"));
        assert!(
            err(Variants { param: "volume".into(), values: vec![1.into(), 2.into()], ..Variants::default() })
                .contains("volume")
        );
        assert!(
            err(Variants { param: "steps".into(), values: vec!["many".into(), 2.into()], ..Variants::default() })
                .contains("number")
        );
        assert!(err(Variants { count: 1, ..Variants::default() }).contains("at least 2"));
        assert!(err(Variants { count: 50, ..Variants::default() }).contains("at most"));
        assert!(serde_json::from_str::<Variants>(r#"{"sedes": [1]}"#).is_err());

        assert_eq!(Variants::from_form("", "").unwrap(), None);
        assert_eq!(Variants::from_form("seed", "4").unwrap().unwrap().count, 4);
        assert_eq!(Variants::from_form("guidance", "1, 3,5").unwrap().unwrap().values.len(), 3);
        assert!(Variants::from_form("seed", "four").is_err());
    }
}
