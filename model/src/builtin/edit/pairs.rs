//! Training and evaluation pairs the toy world renders exactly: a scene, one edit of it, and
//! the scene as edited (everything else the same: the subject's place and pose, the backdrop's
//! texture, the weather's particles), each drawn as one picture.

use super::instruction::{Direction, Edit};
use crate::builtin::prompt::Prompt;
use crate::builtin::vocab::{Action, Camera, Color, Setting, Subject, Weather};
use crate::builtin::world::{Backdrop, Scene, is_held_out};
use crate::rng::Rng;

/// How far a move takes the subject, in frames.
pub const MOVE_BY: f32 = 0.2;
/// How much bigger (or smaller) a resize makes it.
pub const RESIZE_BY: f32 = 1.5;
/// A pixel is "changed" when a channel moves by more than this.
pub const CHANGED: f32 = 0.03;
/// Where added rain and snow fall: one pattern, so the editor can learn it (the pattern of a
/// scene's own seed cannot be seen in a dry picture).
pub const ADDED_WEATHER_SEED: u64 = 0x05A0_ED17;

/// One edit of one picture.
#[derive(Debug, Clone)]
pub struct Pair {
    pub edit: Edit,
    pub instruction: String,
    /// Planar `[3, size, size]` in [0, 1].
    pub before: Vec<f32>,
    pub after: Vec<f32>,
    /// `[size, size]`: 1 where the edit changes the picture.
    pub changed: Vec<f32>,
    pub scene: Scene,
}

/// The scene with the edit applied, or `None` when the edit does not apply to it (no subject
/// to recolour, the setting it already has, a move off the frame, ...).
pub fn apply(scene: &Scene, edit: Edit) -> Option<Scene> {
    let mut s = scene.clone();
    let subject = scene.subject.is_some();
    match edit {
        Edit::Recolor(c) if subject && c != scene.color => s.color = c,
        Edit::Reshape(x) if subject && Some(x) != scene.subject => {
            // Upright: the new shape's turn cannot be read from the old one (a ball has none).
            s.subject = Some(x);
            s.angle0 = 0.0;
        }
        Edit::Setting(x) if scene.backdrop != Backdrop::Setting(x) => s.backdrop = Backdrop::Setting(x),
        Edit::AddWeather(w) if scene.weather != Some(w) => {
            s.weather = Some(w);
            s.weather_seed = Some(ADDED_WEATHER_SEED);
        }
        Edit::ClearWeather if scene.weather.is_some() => s.weather = None,
        Edit::Move(d) if subject => {
            let (dx, dy) = match d {
                Direction::Left => (-MOVE_BY, 0.0),
                Direction::Right => (MOVE_BY, 0.0),
                Direction::Up => (0.0, -MOVE_BY),
                Direction::Down => (0.0, MOVE_BY),
            };
            s.x0 += dx;
            s.y0 += dy;
            let margin = scene.size * 1.2;
            if !(margin..=1.0 - margin).contains(&s.x0) || !(margin..=1.0 - margin).contains(&s.y0) {
                return None;
            }
        }
        Edit::Resize(bigger) if subject => {
            s.size = if bigger { scene.size * RESIZE_BY } else { scene.size / RESIZE_BY };
            let margin = s.size * 1.1;
            if !(margin..=1.0 - margin).contains(&s.x0) || !(margin..=1.0 - margin).contains(&s.y0) {
                return None;
            }
        }
        _ => return None,
    }
    Some(s)
}

/// A random edit (each kind equally likely).
pub fn random_edit(rng: &mut Rng) -> Edit {
    match rng.below(7) {
        0 => Edit::Recolor(*rng.pick(Color::ALL)),
        1 => Edit::Reshape(*rng.pick(Subject::ALL)),
        2 => Edit::Setting(*rng.pick(Setting::ALL)),
        3 => Edit::AddWeather(*rng.pick(Weather::ALL)),
        4 => Edit::ClearWeather,
        5 => Edit::Move(*rng.pick(&Direction::ALL)),
        _ => Edit::Resize(rng.chance(0.5)),
    }
}

/// A scene to edit: one still picture (static camera). With `held_out`, a subject, colour,
/// action and setting combination that training never draws.
pub fn scene(rng: &mut Rng, held_out: bool) -> Scene {
    let mut scene = if held_out {
        loop {
            let wish = Prompt {
                subject: Some(*rng.pick(Subject::ALL)),
                color: Some(*rng.pick(Color::ALL)),
                action: Some(*rng.pick(Action::ALL)),
                setting: Some(*rng.pick(Setting::ALL)),
                ..Prompt::default()
            };
            if is_held_out(wish.subject.unwrap(), wish.color.unwrap(), wish.action.unwrap(), wish.setting.unwrap()) {
                break Scene::sample(rng, &wish, 0.0);
            }
        }
    } else {
        Scene::sample(rng, &Prompt::default(), 0.3)
    };
    scene.camera = Camera::Static;
    scene
}

/// One pair at `size` x `size`: a scene, an edit that applies to it, and both pictures.
pub fn sample(rng: &mut Rng, size: usize, held_out: bool) -> Pair {
    let scene = scene(rng, held_out);
    let (edit, after_scene) = loop {
        let edit = random_edit(rng);
        if let Some(s) = apply(&scene, edit) {
            break (edit, s);
        }
    };
    let instruction = edit.phrase(rng, held_out);
    let before = scene.render(1, size);
    let after = after_scene.render(1, size);
    let plane = size * size;
    let changed = (0..plane)
        .map(|i| {
            let d = (0..3).map(|c| (before[c * plane + i] - after[c * plane + i]).abs()).fold(0.0, f32::max);
            if d > CHANGED { 1.0 } else { 0.0 }
        })
        .collect();
    Pair { edit, instruction, before, after, changed, scene }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_change_only_what_the_edit_names() {
        let mut rng = Rng::new(9);
        let mut kinds = std::collections::HashSet::new();
        for _ in 0..60 {
            let p = sample(&mut rng, 32, false);
            kinds.insert(p.edit.kind());
            let changed: f32 = p.changed.iter().sum();
            assert!(changed > 0.0, "{:?} changed nothing", p.edit);
            if matches!(p.edit, super::Edit::Recolor(_) | super::Edit::Reshape(_) | super::Edit::Resize(_)) {
                assert!(changed < 0.5 * 32.0 * 32.0, "{:?} changed {changed} pixels", p.edit);
            }
            assert_eq!(super::super::instruction::parse(&p.instruction), Ok(p.edit), "{}", p.instruction);
        }
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        let held = sample(&mut Rng::new(1), 16, true).scene;
        let (s, c) = (held.subject.unwrap(), held.color);
        let Backdrop::Setting(setting) = held.backdrop else { panic!("a held-out scene has a setting") };
        assert!(is_held_out(s, c, held.action, setting));
    }
}
