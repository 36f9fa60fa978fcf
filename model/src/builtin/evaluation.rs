//! `vidplay eval`: how faithful the built-in model is to prompts it was never trained on.
//!
//! Prompts are built from the (subject, colour, action, setting) combinations the trainer holds
//! out (see `crate::builtin::world::is_held_out`), phrased with synonyms the training captions do not use.
//! Each clip is measured with [`crate::builtin::analysis`] at the model's own resolution.

use crate::builtin::analysis;
use crate::builtin::pipeline::{BuiltinModel, GenerationRequest};
use crate::builtin::prompt::parse;
use crate::builtin::vocab::*;
use crate::builtin::world::is_held_out;
use image::RgbImage;
use serde::Serialize;

pub use crate::builtin::analysis::Tally;

#[derive(Debug, Default, Clone, Serialize)]
pub struct EvalReport {
    pub color: Tally,
    pub direction: Tally,
    pub growth: Tally,
    pub bounce: Tally,
    pub weather: Tally,
    pub camera_pan: Tally,
    /// Image-to-video (the motion model), see [`crate::builtin::motion::evaluation`].
    pub i2v: crate::builtin::motion::evaluation::MotionReport,
    /// Clips that asked for motion but came out still.
    pub still_clips: usize,
    pub clips: usize,
    pub seconds: f64,
    /// Every clip: prompt, seed and the measured values, for inspection.
    pub details: Vec<String>,
}

impl EvalReport {
    pub fn meets_targets(&self) -> bool {
        self.color.rate() >= 0.9 && self.direction.rate() >= 0.85 && self.still_clips == 0 && self.i2v.meets_targets()
    }

    pub fn table(&self) -> String {
        let row = |name: &str, t: &Tally, target: &str| {
            format!("| {name:<34} | {:>3}/{:<3} {:>5.1}% | {target:<8} |\n", t.passed, t.total, 100.0 * t.rate())
        };
        let mut s = String::new();
        s.push_str("| measure (held-out prompts)         | result          | target   |\n");
        s.push_str("|------------------------------------|-----------------|----------|\n");
        s.push_str(&row("object colour", &self.color, ">= 90%"));
        s.push_str(&row("motion direction (centroid)", &self.direction, ">= 85%"));
        s.push_str(&row("growing / shrinking (area)", &self.growth, ""));
        s.push_str(&row("bouncing (vertical travel)", &self.bounce, ""));
        s.push_str(&row("weather present (specks)", &self.weather, ""));
        s.push_str(&row("camera pan direction", &self.camera_pan, ""));
        s.push_str(&format!(
            "| {:<34} | {:>15} | 0        |\n",
            "still clips where motion was asked",
            format!("{} of {}", self.still_clips, self.clips)
        ));
        s.push('\n');
        s.push_str(&self.i2v.table());
        s
    }
}

/// Colours that a setting's own backdrop contains, which the colour measure cannot separate.
pub fn backdrop_colors(setting: Setting) -> &'static [Color] {
    match setting {
        Setting::GrassField => &[Color::Green],
        Setting::Ocean => &[Color::Blue],
        Setting::Snowfield => &[Color::White],
        Setting::NightSky => &[Color::White],
        Setting::Desert => &[Color::Orange, Color::Yellow, Color::White],
        Setting::Plain => &[],
    }
}

/// Phrasings that differ from the training captions.
fn subject_word(s: Subject, k: usize) -> &'static str {
    match s {
        Subject::Ball => ["circle", "sphere", "ball"][k % 3],
        Subject::Square => ["box", "cube", "block"][k % 3],
        Subject::Triangle => ["triangle", "pyramid"][k % 2],
        Subject::Star => ["star", "star shape"][k % 2],
    }
}

fn action_words(a: Action, k: usize) -> &'static str {
    match a {
        Action::MovingLeft => ["heading leftward", "travelling to the left"][k % 2],
        Action::MovingRight => ["heading rightward", "travelling to the right"][k % 2],
        Action::MovingUp => ["ascending", "going upward"][k % 2],
        Action::MovingDown => ["descending", "dropping down"][k % 2],
        Action::Bouncing => ["hopping", "bouncing up and down"][k % 2],
        Action::Spinning => ["rotating", "twirling"][k % 2],
        Action::Growing => ["expanding", "getting bigger"][k % 2],
        Action::Shrinking => ["getting smaller", "contracting"][k % 2],
    }
}

fn setting_words(s: Setting, k: usize) -> &'static str {
    match s {
        Setting::NightSky => ["at night", "under a starry sky"][k % 2],
        Setting::GrassField => ["on a lawn", "in a meadow"][k % 2],
        Setting::Ocean => ["above the waves", "over the sea"][k % 2],
        Setting::Desert => ["among sand dunes", "on the sand"][k % 2],
        Setting::Snowfield => ["across the tundra", "on a snow field"][k % 2],
        Setting::Plain => ["against a simple background", "on an empty background"][k % 2],
    }
}

/// Held-out (subject, colour, action, setting) combinations, in a fixed order.
pub fn held_out_combos() -> Vec<(Subject, Color, Action, Setting)> {
    let mut out = Vec::new();
    for &s in Subject::ALL {
        for &c in Color::ALL {
            for &a in Action::ALL {
                for &g in Setting::ALL {
                    if is_held_out(s, c, a, g) {
                        out.push((s, c, a, g));
                    }
                }
            }
        }
    }
    out
}

pub struct EvalOptions {
    /// Clips per category (colour/motion prompts use up to 3x this).
    pub per_category: usize,
    pub steps: usize,
    pub seed: u64,
    /// Pictures to animate besides the held-out textures (name, picture).
    pub examples: Vec<(String, RgbImage)>,
}

fn native(model: &BuiltinModel, req: &GenerationRequest, image: Option<&RgbImage>) -> anyhow::Result<Vec<RgbImage>> {
    Ok(model.generate(req, image, &mut |_| {}, &|| false)?.native_frames)
}

pub fn run(model: &BuiltinModel, opts: &EvalOptions, mut on_clip: impl FnMut(&str)) -> anyhow::Result<EvalReport> {
    let started = std::time::Instant::now();
    let mut report = EvalReport::default();
    let base = GenerationRequest { steps: opts.steps, ..Default::default() };
    let still = |report: &mut EvalReport, frames: &[RgbImage]| {
        report.clips += 1;
        let m = analysis::motion_amount(frames);
        if m < 0.004 {
            report.still_clips += 1;
        }
        m
    };

    // Colour and subject motion, static camera, no weather.
    let combos: Vec<_> =
        held_out_combos().into_iter().filter(|(_, c, _, g)| !backdrop_colors(*g).contains(c)).collect();
    let step = (combos.len() / (3 * opts.per_category)).max(1);
    for (k, &(subject, color, action, setting)) in combos.iter().step_by(step).take(3 * opts.per_category).enumerate() {
        let prompt = format!(
            "{} {} {} {}",
            color.phrase(),
            subject_word(subject, k),
            action_words(action, k),
            setting_words(setting, k)
        );
        let parsed = parse(&prompt);
        debug_assert_eq!(parsed.subject, Some(subject), "{prompt}");
        let req = GenerationRequest {
            prompt: format!("{prompt}, static camera"),
            seed: opts.seed + k as u64,
            ..base.clone()
        };
        let frames = native(model, &req, None)?;
        let m = still(&mut report, &frames);
        let excluded = backdrop_colors(setting);
        let got = dominant_color_excluding(&frames, excluded);
        report.color.add(got == Some(color));
        let mut detail = format!("{:?} seed {} colour {:?} motion {m:.4}", req.prompt, req.seed, got);
        match action {
            Action::MovingLeft | Action::MovingRight | Action::MovingUp | Action::MovingDown => {
                let d = analysis::displacement(&frames, color);
                let ok = d.is_some_and(|(dx, dy)| match action {
                    Action::MovingLeft => dx < -3.0 && dx.abs() > dy.abs(),
                    Action::MovingRight => dx > 3.0 && dx.abs() > dy.abs(),
                    Action::MovingUp => dy < -3.0 && dy.abs() > dx.abs(),
                    _ => dy > 3.0 && dy.abs() > dx.abs(),
                });
                report.direction.add(ok);
                detail += &format!(" displacement {d:?}");
            }
            Action::Growing | Action::Shrinking => {
                let g = analysis::growth(&frames, color);
                report.growth.add(g.is_some_and(|g| if action == Action::Growing { g > 1.25 } else { g < 0.8 }));
                detail += &format!(" growth {g:?}");
            }
            Action::Bouncing => {
                let r = analysis::vertical_range(&frames, color);
                report.bounce.add(r > 3.0);
                detail += &format!(" vertical range {r:.1}");
            }
            Action::Spinning => {}
        }
        on_clip(&detail);
        report.details.push(detail);
    }

    // Weather: the same prompt and seed with and without it.
    let weather_settings = [Setting::Plain, Setting::GrassField, Setting::Desert, Setting::Ocean];
    for k in 0..opts.per_category {
        let weather = Weather::ALL[k % 2];
        let setting = weather_settings[k % weather_settings.len()];
        let subject = Subject::ALL[(k + 1) % 4];
        let color = [Color::Red, Color::Purple, Color::Blue, Color::Orange][k % 4];
        let dry =
            format!("a {} {} rotating {}, static camera", color.phrase(), subject.phrase(), setting_words(setting, k));
        let wet = format!("{dry}, {}", ["during a rainstorm", "in a snowfall"][k % 2]);
        let seed = opts.seed + 100 + k as u64;
        let a = native(model, &GenerationRequest { prompt: dry, seed, ..base.clone() }, None)?;
        let b = native(model, &GenerationRequest { prompt: wet.clone(), seed, ..base.clone() }, None)?;
        still(&mut report, &b);
        let (da, db) = (analysis::speck_density(&a), analysis::speck_density(&b));
        report.weather.add(db > da * 1.5 + 0.005);
        let detail = format!("{wet:?} ({weather:?}) specks {db:.4} vs {da:.4} without");
        on_clip(&detail);
        report.details.push(detail);
    }

    // Camera pans over textured settings.
    let pan_settings = [Setting::GrassField, Setting::Ocean, Setting::Desert, Setting::NightSky];
    for k in 0..opts.per_category {
        let left = k % 2 == 0;
        let setting = pan_settings[k % pan_settings.len()];
        let prompt = format!(
            "a {} {} twirling {}, {}",
            [Color::Red, Color::Yellow, Color::Purple, Color::White][k % 4].phrase(),
            Subject::ALL[k % 4].phrase(),
            setting_words(setting, k + 1),
            if left { "panning left" } else { "panning right" }
        );
        let req = GenerationRequest { prompt: prompt.clone(), seed: opts.seed + 200 + k as u64, ..base.clone() };
        let frames = native(model, &req, None)?;
        still(&mut report, &frames);
        let pan = analysis::horizontal_pan(&frames);
        report.camera_pan.add(if left { pan >= 2.0 } else { pan <= -2.0 });
        let detail = format!("{prompt:?} pan {pan:+.1} px");
        on_clip(&detail);
        report.details.push(detail);
    }

    // Image-to-video: the motion model on pictures it never saw, at display resolution.
    report.i2v = crate::builtin::motion::evaluation::run(
        model,
        opts.per_category,
        opts.seed + 300,
        &opts.examples,
        &mut on_clip,
    )?;
    report.clips += report.i2v.clips;
    report.still_clips += report.i2v.still_clips;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Dominant palette colour, ignoring colours the backdrop itself has.
pub fn dominant_color_excluding(frames: &[RgbImage], excluded: &[Color]) -> Option<Color> {
    let mut best: Option<(Color, usize)> = None;
    for &c in Color::ALL {
        if excluded.contains(&c) {
            continue;
        }
        let n: usize = frames.iter().filter_map(|f| analysis::blob(f, c)).map(|b| b.1).sum();
        if n > 0 && best.is_none_or(|(_, m)| n > m) {
            best = Some((c, n));
        }
    }
    best.map(|b| b.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_prompts_parse_to_their_combination() {
        let combos = held_out_combos();
        assert!(combos.len() > 50, "{}", combos.len());
        for (k, &(s, c, a, g)) in combos.iter().enumerate() {
            let p =
                parse(&format!("{} {} {} {}", c.phrase(), subject_word(s, k), action_words(a, k), setting_words(g, k)));
            assert_eq!((p.subject, p.color, p.action, p.setting), (Some(s), Some(c), Some(a), Some(g)), "{k}");
            assert!(p.ignored.is_empty(), "{:?}", p.ignored);
        }
    }
}
