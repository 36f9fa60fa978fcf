//! Faithfulness to the prompt by the built-in model's own reading of it: each concept it
//! understands that can be seen in pixels (colour, direction of travel, growth, bouncing,
//! weather, camera) is checked against the frames.

use super::motion::MotionMeasures;
use app::scores::{ConceptCheck, Faithfulness};
use image::RgbImage;
use model::builtin::analysis;
use model::builtin::evaluation::{backdrop_colors, dominant_color_excluding};
use model::builtin::prompt::parse;
use model::builtin::vocab::{Action, Camera, Setting};

/// Weather specks over this share of pixels count as rain or snow.
const WEATHER_SPECKS: f32 = 0.006;

/// The built-in model's own resolution: 32 pixels wide.
const MODEL_WIDTH: u32 = 32;

fn at_model_scale(frames: &[RgbImage]) -> Vec<RgbImage> {
    let (w, h) = frames[0].dimensions();
    if w <= MODEL_WIDTH {
        return frames.to_vec();
    }
    let nh = ((h as f32 * MODEL_WIDTH as f32 / w as f32).round() as u32).max(9);
    frames.iter().map(|f| image::imageops::resize(f, MODEL_WIDTH, nh, image::imageops::FilterType::Triangle)).collect()
}

/// The concepts of `prompt` checked against `frames` (scaled to the model's 32 pixels wide);
/// `None` when the prompt names nothing that can be checked.
pub fn concepts(frames: &[RgbImage], prompt: &str, motion: &MotionMeasures) -> Option<Faithfulness> {
    let p = parse(prompt);
    // At the model's own scale, where its measures were made (and cost little).
    let small = at_model_scale(frames);
    let frames = &small[..];
    let (w, h) = (frames[0].width() as f32, frames[0].height() as f32);
    let mut checks = Vec::new();
    let mut check = |concept: &str, shown: bool, measured: String| {
        checks.push(ConceptCheck { concept: concept.into(), shown, measured })
    };
    if let Some(color) = p.color {
        let got = dominant_color_excluding(frames, backdrop_colors(p.setting.unwrap_or(Setting::Plain)));
        check(
            color.phrase(),
            got == Some(color),
            match got {
                Some(c) => format!("most of the subject's colour is {}", c.phrase()),
                None => "no palette colour found".into(),
            },
        );
    }
    if let (Some(action), Some(color)) = (p.action, p.color) {
        match action {
            Action::MovingLeft | Action::MovingRight | Action::MovingUp | Action::MovingDown => {
                let d = analysis::displacement(frames, color);
                let shown = d.is_some_and(|(dx, dy)| match action {
                    Action::MovingLeft => dx < -0.05 * w && dx.abs() > dy.abs(),
                    Action::MovingRight => dx > 0.05 * w && dx.abs() > dy.abs(),
                    Action::MovingUp => dy < -0.05 * h && dy.abs() > dx.abs(),
                    _ => dy > 0.05 * h && dy.abs() > dx.abs(),
                });
                check(
                    action.phrase(),
                    shown,
                    match d {
                        Some((dx, dy)) => {
                            format!("the subject moved {dx:+.0} px across and {dy:+.0} px down (at 32 px wide)")
                        }
                        None => "the subject was not found".into(),
                    },
                );
            }
            Action::Growing | Action::Shrinking => {
                let g = analysis::growth(frames, color);
                let shown = g.is_some_and(|g| if action == Action::Growing { g > 1.25 } else { g < 0.8 });
                check(
                    action.phrase(),
                    shown,
                    g.map_or("the subject was not found".into(), |g| format!("its area changed {g:.2}x")),
                );
            }
            Action::Bouncing => {
                let r = analysis::vertical_range(frames, color);
                check(action.phrase(), r > 0.08 * h, format!("it travelled {r:.0} px up and down (at 32 px wide)"));
            }
            Action::Spinning => {}
        }
    }
    if let Some(weather) = p.weather {
        let specks = analysis::speck_density(frames);
        check(
            weather.phrase(),
            specks > WEATHER_SPECKS,
            format!("{:.1}% of pixels are falling specks", 100.0 * specks),
        );
    }
    if let Some(camera) = p.camera {
        let c = motion.camera;
        // Pans as the built-in model's evaluation measures them: the whole picture's shift
        // between frames at the model's own scale (its backdrops have little texture for flow).
        let pan = analysis::horizontal_pan(frames);
        let (shown, measured) = match camera {
            Camera::Static => (
                motion.camera_motion < 0.3,
                format!("camera motion {:.2}% of the width per frame", motion.camera_motion),
            ),
            // The camera panning left moves the content right.
            Camera::PanLeft => (pan >= 2.0, format!("the picture shifted {pan:+.0} px (at 32 px wide) over the clip")),
            Camera::PanRight => {
                (pan <= -2.0, format!("the picture shifted {pan:+.0} px (at 32 px wide) over the clip"))
            }
            Camera::ZoomIn => (c.zoom > 0.2, format!("zoom {:+.2}% per frame", c.zoom)),
            Camera::ZoomOut => (c.zoom < -0.2, format!("zoom {:+.2}% per frame", c.zoom)),
        };
        check(camera.phrase(), shown, measured);
    }
    if checks.is_empty() {
        return None;
    }
    let score = checks.iter().filter(|c| c.shown).count() as f32 / checks.len() as f32;
    Some(Faithfulness { method: "concepts".into(), score, concepts: checks })
}

#[cfg(test)]
mod tests {
    use crate::scores::{Against, score};
    use image::RgbImage;
    use model::builtin::prompt::parse;
    use model::builtin::world::Scene;
    use model::rng::Rng;

    /// The toy world's own clip of a prompt: what a perfect built-in model would make.
    fn world_clip(prompt: &str, seed: u64) -> Vec<RgbImage> {
        let (t, s) = (16, 64);
        let wish = parse(prompt);
        let mut scene = Scene::sample(&mut Rng::new(seed), &wish, 0.0);
        scene.weather = wish.weather;
        let data: Vec<f32> = scene.render(t, s).iter().map(|v| v * 2.0 - 1.0).collect();
        (0..t)
            .map(|f| model::builtin::frames::from_planar(&data[f * 3 * s * s..(f + 1) * 3 * s * s], s as u32))
            .collect()
    }

    fn faithfulness(frames: &[RgbImage], prompt: &str) -> app::scores::Faithfulness {
        score(frames, Against { input: None, prompt: Some(prompt) }).unwrap().faithfulness.unwrap()
    }

    #[test]
    fn the_worlds_own_clips_show_their_prompts_and_not_others() {
        let prompt = "a red ball moving left on a plain background, static camera";
        let clip = world_clip(prompt, 1);
        let f = faithfulness(&clip, prompt);
        assert_eq!(f.score, 1.0, "{f:?}");
        assert_eq!(f.concepts.len(), 3);
        let wrong = faithfulness(&clip, "a blue ball moving right, camera zooms in");
        assert_eq!(wrong.score, 0.0, "{wrong:?}");

        let prompt = "a yellow star spinning on a grass field, camera pans left";
        let clip = world_clip(prompt, 3);
        let f = faithfulness(&clip, prompt);
        assert!(f.concepts.iter().any(|c| c.concept == "camera pans left" && c.shown), "{f:?}");
        let wrong = faithfulness(&clip, "a yellow star spinning on a grass field, camera pans right");
        assert!(wrong.concepts.iter().any(|c| c.concept == "camera pans right" && !c.shown), "{wrong:?}");
        // A subject on a featureless backdrop moves; the camera does not.
        let s =
            score(&world_clip("a red ball moving left on a plain background, static camera", 1), Against::default())
                .unwrap();
        assert!(s.object_motion > s.camera_motion && s.camera.pan_x.abs() < 0.5, "{s:?}");
        assert!(
            score(&clip, Against { input: None, prompt: Some("a sparkly unicorn") }).unwrap().faithfulness.is_none()
        );
    }
}
