//! Free-text prompt -> the toy world's concepts.
//!
//! Tolerant by design: word order does not matter, plurals and common synonyms are understood,
//! filler words are skipped silently, and every other word is reported back as ignored so the UI
//! can flag it.

use crate::builtin::vocab::*;
use serde::{Deserialize, Serialize};

/// What a prompt asks for. `None` means "not said": the model then picks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub subject: Option<Subject>,
    pub color: Option<Color>,
    pub action: Option<Action>,
    pub setting: Option<Setting>,
    pub weather: Option<Weather>,
    pub camera: Option<Camera>,
    /// Words (or phrases) the model does not use: unknown words, and a second subject, colour,
    /// ... where only one is drawn.
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Concept {
    Subject(Subject),
    Color(Color),
    Action(Action),
    Setting(Setting),
    Weather(Weather),
    Camera(Camera),
}

/// Phrases understood, as space-separated singular words.
const PHRASES: &[(&str, Concept)] = {
    use Concept as C;
    &[
        ("ball", C::Subject(Subject::Ball)),
        ("circle", C::Subject(Subject::Ball)),
        ("sphere", C::Subject(Subject::Ball)),
        ("orb", C::Subject(Subject::Ball)),
        ("disc", C::Subject(Subject::Ball)),
        ("disk", C::Subject(Subject::Ball)),
        ("dot", C::Subject(Subject::Ball)),
        ("square", C::Subject(Subject::Square)),
        ("box", C::Subject(Subject::Square)),
        ("cube", C::Subject(Subject::Square)),
        ("block", C::Subject(Subject::Square)),
        ("rectangle", C::Subject(Subject::Square)),
        ("triangle", C::Subject(Subject::Triangle)),
        ("pyramid", C::Subject(Subject::Triangle)),
        ("star", C::Subject(Subject::Star)),
        ("red", C::Color(Color::Red)),
        ("crimson", C::Color(Color::Red)),
        ("scarlet", C::Color(Color::Red)),
        ("orange", C::Color(Color::Orange)),
        ("yellow", C::Color(Color::Yellow)),
        ("golden", C::Color(Color::Yellow)),
        ("gold", C::Color(Color::Yellow)),
        ("green", C::Color(Color::Green)),
        ("blue", C::Color(Color::Blue)),
        ("purple", C::Color(Color::Purple)),
        ("violet", C::Color(Color::Purple)),
        ("magenta", C::Color(Color::Purple)),
        ("white", C::Color(Color::White)),
        ("move left", C::Action(Action::MovingLeft)),
        ("moving left", C::Action(Action::MovingLeft)),
        ("going left", C::Action(Action::MovingLeft)),
        ("to the left", C::Action(Action::MovingLeft)),
        ("left", C::Action(Action::MovingLeft)),
        ("leftward", C::Action(Action::MovingLeft)),
        ("leftwards", C::Action(Action::MovingLeft)),
        ("move right", C::Action(Action::MovingRight)),
        ("moving right", C::Action(Action::MovingRight)),
        ("going right", C::Action(Action::MovingRight)),
        ("to the right", C::Action(Action::MovingRight)),
        ("right", C::Action(Action::MovingRight)),
        ("rightward", C::Action(Action::MovingRight)),
        ("rightwards", C::Action(Action::MovingRight)),
        ("move up", C::Action(Action::MovingUp)),
        ("moving up", C::Action(Action::MovingUp)),
        ("going up", C::Action(Action::MovingUp)),
        ("up", C::Action(Action::MovingUp)),
        ("upward", C::Action(Action::MovingUp)),
        ("upwards", C::Action(Action::MovingUp)),
        ("rising", C::Action(Action::MovingUp)),
        ("rise", C::Action(Action::MovingUp)),
        ("ascending", C::Action(Action::MovingUp)),
        ("floating up", C::Action(Action::MovingUp)),
        ("move down", C::Action(Action::MovingDown)),
        ("moving down", C::Action(Action::MovingDown)),
        ("going down", C::Action(Action::MovingDown)),
        ("down", C::Action(Action::MovingDown)),
        ("downward", C::Action(Action::MovingDown)),
        ("downwards", C::Action(Action::MovingDown)),
        ("falling", C::Action(Action::MovingDown)),
        ("fall", C::Action(Action::MovingDown)),
        ("sinking", C::Action(Action::MovingDown)),
        ("descending", C::Action(Action::MovingDown)),
        ("dropping", C::Action(Action::MovingDown)),
        ("bouncing", C::Action(Action::Bouncing)),
        ("up and down", C::Action(Action::Bouncing)),
        ("bounce", C::Action(Action::Bouncing)),
        ("bouncy", C::Action(Action::Bouncing)),
        ("jumping", C::Action(Action::Bouncing)),
        ("hopping", C::Action(Action::Bouncing)),
        ("spinning", C::Action(Action::Spinning)),
        ("spin", C::Action(Action::Spinning)),
        ("rotating", C::Action(Action::Spinning)),
        ("rotate", C::Action(Action::Spinning)),
        ("turning", C::Action(Action::Spinning)),
        ("twirling", C::Action(Action::Spinning)),
        ("growing", C::Action(Action::Growing)),
        ("grow", C::Action(Action::Growing)),
        ("expanding", C::Action(Action::Growing)),
        ("getting bigger", C::Action(Action::Growing)),
        ("enlarging", C::Action(Action::Growing)),
        ("inflating", C::Action(Action::Growing)),
        ("shrinking", C::Action(Action::Shrinking)),
        ("shrink", C::Action(Action::Shrinking)),
        ("getting smaller", C::Action(Action::Shrinking)),
        ("contracting", C::Action(Action::Shrinking)),
        ("deflating", C::Action(Action::Shrinking)),
        ("night sky", C::Setting(Setting::NightSky)),
        ("night", C::Setting(Setting::NightSky)),
        ("starry sky", C::Setting(Setting::NightSky)),
        ("starry night", C::Setting(Setting::NightSky)),
        ("space", C::Setting(Setting::NightSky)),
        ("grass field", C::Setting(Setting::GrassField)),
        ("grassy field", C::Setting(Setting::GrassField)),
        ("grass", C::Setting(Setting::GrassField)),
        ("field", C::Setting(Setting::GrassField)),
        ("meadow", C::Setting(Setting::GrassField)),
        ("lawn", C::Setting(Setting::GrassField)),
        ("grassland", C::Setting(Setting::GrassField)),
        ("ocean", C::Setting(Setting::Ocean)),
        ("sea", C::Setting(Setting::Ocean)),
        ("water", C::Setting(Setting::Ocean)),
        ("wave", C::Setting(Setting::Ocean)),
        ("desert", C::Setting(Setting::Desert)),
        ("sand", C::Setting(Setting::Desert)),
        ("sandy", C::Setting(Setting::Desert)),
        ("dune", C::Setting(Setting::Desert)),
        ("snowfield", C::Setting(Setting::Snowfield)),
        ("snow field", C::Setting(Setting::Snowfield)),
        ("snowy field", C::Setting(Setting::Snowfield)),
        ("tundra", C::Setting(Setting::Snowfield)),
        ("plain background", C::Setting(Setting::Plain)),
        ("plain", C::Setting(Setting::Plain)),
        ("blank background", C::Setting(Setting::Plain)),
        ("empty background", C::Setting(Setting::Plain)),
        ("simple background", C::Setting(Setting::Plain)),
        ("rain", C::Weather(Weather::Rain)),
        ("raining", C::Weather(Weather::Rain)),
        ("rainy", C::Weather(Weather::Rain)),
        ("rainfall", C::Weather(Weather::Rain)),
        ("rainstorm", C::Weather(Weather::Rain)),
        ("drizzle", C::Weather(Weather::Rain)),
        ("snow", C::Weather(Weather::Snow)),
        ("snowing", C::Weather(Weather::Snow)),
        ("snowy", C::Weather(Weather::Snow)),
        ("snowfall", C::Weather(Weather::Snow)),
        ("snowflake", C::Weather(Weather::Snow)),
        ("static camera", C::Camera(Camera::Static)),
        ("still camera", C::Camera(Camera::Static)),
        ("fixed camera", C::Camera(Camera::Static)),
        ("camera static", C::Camera(Camera::Static)),
        ("camera still", C::Camera(Camera::Static)),
        ("static", C::Camera(Camera::Static)),
        ("pan left", C::Camera(Camera::PanLeft)),
        ("pans left", C::Camera(Camera::PanLeft)),
        ("panning left", C::Camera(Camera::PanLeft)),
        ("camera move left", C::Camera(Camera::PanLeft)),
        ("camera moving left", C::Camera(Camera::PanLeft)),
        ("camera turn left", C::Camera(Camera::PanLeft)),
        ("camera turning left", C::Camera(Camera::PanLeft)),
        ("pan right", C::Camera(Camera::PanRight)),
        ("pans right", C::Camera(Camera::PanRight)),
        ("panning right", C::Camera(Camera::PanRight)),
        ("camera move right", C::Camera(Camera::PanRight)),
        ("camera moving right", C::Camera(Camera::PanRight)),
        ("camera turn right", C::Camera(Camera::PanRight)),
        ("camera turning right", C::Camera(Camera::PanRight)),
        ("zoom in", C::Camera(Camera::ZoomIn)),
        ("zooms in", C::Camera(Camera::ZoomIn)),
        ("zooming in", C::Camera(Camera::ZoomIn)),
        ("push in", C::Camera(Camera::ZoomIn)),
        ("dolly in", C::Camera(Camera::ZoomIn)),
        ("zoom out", C::Camera(Camera::ZoomOut)),
        ("zooms out", C::Camera(Camera::ZoomOut)),
        ("zooming out", C::Camera(Camera::ZoomOut)),
        ("pull out", C::Camera(Camera::ZoomOut)),
        ("pull back", C::Camera(Camera::ZoomOut)),
        ("dolly out", C::Camera(Camera::ZoomOut)),
    ]
};

/// Words that carry no meaning for the toy world and are skipped without a report.
const FILLERS: &[&str] = &[
    "a",
    "an",
    "the",
    "on",
    "in",
    "over",
    "above",
    "across",
    "through",
    "while",
    "it",
    "its",
    "is",
    "are",
    "and",
    "with",
    "of",
    "to",
    "at",
    "as",
    "under",
    "into",
    "onto",
    "from",
    "by",
    "there",
    "that",
    "which",
    "this",
    "some",
    "one",
    "camera",
    "shot",
    "scene",
    "video",
    "clip",
    "background",
    "moving",
    "moves",
    "move",
    "going",
    "goes",
    "slowly",
    "quickly",
    "fast",
    "slow",
    "very",
    "big",
    "small",
    "little",
    "large",
    "shape",
    "object",
    "ground",
    "sky",
    "then",
    "around",
    "toward",
    "towards",
    "along",
    "gently",
    "frame",
    "view",
    "of",
    "during",
    "where",
    "under",
    "beneath",
    "below",
    "against",
    "bright",
    "colored",
    "coloured",
    "its",
    "itself",
    "pans",
    "pan",
    "panning",
    "zoom",
    "zooms",
    "zooming",
    "please",
    "make",
    "show",
    "showing",
    "heading",
    "travelling",
    "traveling",
    "among",
    "drifting",
    "floating",
    "flying",
    "across",
];

/// Singular forms worth trying for a word (the word itself first).
fn forms(word: &str) -> impl Iterator<Item = &str> {
    let es = word.strip_suffix("es").filter(|s| s.len() > 2);
    let s = word.strip_suffix('s').filter(|s| s.len() > 2);
    std::iter::once(word).chain(es).chain(s)
}

fn word_matches(phrase_word: &str, input: &str) -> bool {
    forms(input).any(|f| f == phrase_word)
}

/// Parses a prompt. Never fails: what it does not understand ends up in `ignored`.
pub fn parse(text: &str) -> Prompt {
    let lowered = text.to_lowercase();
    let words: Vec<&str> = lowered
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = Prompt::default();
    let mut i = 0;
    while i < words.len() {
        let best = PHRASES
            .iter()
            .filter_map(|(phrase, concept)| {
                let parts: Vec<&str> = phrase.split(' ').collect();
                let fits =
                    i + parts.len() <= words.len() && parts.iter().zip(&words[i..]).all(|(p, w)| word_matches(p, w));
                fits.then_some((parts.len(), *concept))
            })
            .max_by_key(|(len, _)| *len);
        match best {
            Some((len, concept)) => {
                let said = words[i..i + len].join(" ");
                if !out.set(concept) {
                    out.ignored.push(said);
                }
                i += len;
            }
            None => {
                let w = words[i];
                if !FILLERS.iter().any(|f| forms(w).any(|x| x == *f)) && !w.chars().all(|c| c.is_ascii_digit()) {
                    out.ignored.push(w.to_string());
                }
                i += 1;
            }
        }
    }
    out
}

impl Prompt {
    /// Sets a concept unless its slot is already taken by a different value; returns whether
    /// the concept is used.
    fn set(&mut self, concept: Concept) -> bool {
        fn put<T: PartialEq>(slot: &mut Option<T>, v: T) -> bool {
            match slot {
                Some(old) => *old == v,
                None => {
                    *slot = Some(v);
                    true
                }
            }
        }
        match concept {
            Concept::Subject(v) => put(&mut self.subject, v),
            Concept::Color(v) => put(&mut self.color, v),
            Concept::Action(v) => put(&mut self.action, v),
            Concept::Setting(v) => put(&mut self.setting, v),
            Concept::Weather(v) => put(&mut self.weather, v),
            Concept::Camera(v) => put(&mut self.camera, v),
        }
    }

    /// The canonical tokens this prompt names, in token order.
    pub fn tokens(&self) -> Vec<usize> {
        let mut t = Vec::new();
        t.extend(self.subject.map(|v| SUBJECT_BASE + v.index()));
        t.extend(self.color.map(|v| COLOR_BASE + v.index()));
        t.extend(self.action.map(|v| ACTION_BASE + v.index()));
        t.extend(self.setting.map(|v| SETTING_BASE + v.index()));
        t.extend(self.weather.map(|v| WEATHER_BASE + v.index()));
        t.extend(self.camera.map(|v| CAMERA_BASE + v.index()));
        t
    }

    /// Whether the prompt names anything at all.
    pub fn is_empty(&self) -> bool {
        self.tokens().is_empty()
    }

    /// The canonical phrase of what was understood, e.g. "red ball bouncing, grass field".
    pub fn understood(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        parts.extend(self.color.map(|v| v.phrase()));
        parts.extend(self.subject.map(|v| v.phrase()));
        parts.extend(self.action.map(|v| v.phrase()));
        parts.extend(self.setting.map(|v| v.phrase()));
        parts.extend(self.weather.map(|v| v.phrase()));
        parts.extend(self.camera.map(|v| v.phrase()));
        parts.join(", ")
    }
}

/// Multi-hot token vector for a prompt.
pub fn multi_hot(prompt: &Prompt) -> Vec<f32> {
    let mut v = vec![0.0; NUM_TOKENS];
    for t in prompt.tokens() {
        v[t] = 1.0;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_caption() {
        let p = parse("a red ball bouncing on a grass field while it snows, camera pans left");
        assert_eq!(p.subject, Some(Subject::Ball));
        assert_eq!(p.color, Some(Color::Red));
        assert_eq!(p.action, Some(Action::Bouncing));
        assert_eq!(p.setting, Some(Setting::GrassField));
        assert_eq!(p.weather, Some(Weather::Snow));
        assert_eq!(p.camera, Some(Camera::PanLeft));
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    }

    #[test]
    fn order_plurals_synonyms() {
        let a = parse("Zooming in: over the desert, blue boxes spinning");
        assert_eq!(a.subject, Some(Subject::Square));
        assert_eq!(a.color, Some(Color::Blue));
        assert_eq!(a.action, Some(Action::Spinning));
        assert_eq!(a.setting, Some(Setting::Desert));
        assert_eq!(a.camera, Some(Camera::ZoomIn));
        let b = parse("circles moving to the left");
        assert_eq!(b.subject, Some(Subject::Ball));
        assert_eq!(b.action, Some(Action::MovingLeft));
        let c = parse("a cube rises at night");
        assert_eq!(c.subject, Some(Subject::Square));
        assert_eq!(c.action, Some(Action::MovingUp));
        assert_eq!(c.setting, Some(Setting::NightSky));
    }

    #[test]
    fn camera_direction_is_not_object_direction() {
        let p = parse("a star, the camera pans right");
        assert_eq!(p.camera, Some(Camera::PanRight));
        assert_eq!(p.action, None);
        let q = parse("a star moving right, camera pans left");
        assert_eq!(q.action, Some(Action::MovingRight));
        assert_eq!(q.camera, Some(Camera::PanLeft));
    }

    #[test]
    fn snow_setting_versus_weather() {
        let p = parse("a green triangle on a snowy field");
        assert_eq!(p.setting, Some(Setting::Snowfield));
        assert_eq!(p.weather, None);
        let q = parse("a green triangle in the ocean while it is snowing");
        assert_eq!(q.setting, Some(Setting::Ocean));
        assert_eq!(q.weather, Some(Weather::Snow));
    }

    #[test]
    fn unknown_words_are_reported() {
        let p = parse("a red dragon flying over the ocean");
        assert_eq!(p.color, Some(Color::Red));
        assert_eq!(p.setting, Some(Setting::Ocean));
        assert_eq!(p.ignored, vec!["dragon".to_string()]);
        let q = parse("a red and blue ball");
        assert_eq!(q.color, Some(Color::Red));
        assert_eq!(q.ignored, vec!["blue".to_string()]);
    }

    #[test]
    fn empty_and_nonsense() {
        assert!(parse("").is_empty());
        assert!(parse("   ,,, ").is_empty());
        let p = parse("zzz qqq");
        assert!(p.is_empty());
        assert_eq!(p.ignored.len(), 2);
    }

    #[test]
    fn every_canonical_phrase_parses_to_itself() {
        for c in categories() {
            for phrase in c.phrases {
                let p = parse(&phrase);
                assert_eq!(p.tokens().len(), 1, "{phrase}: {p:?}");
                assert!(p.ignored.is_empty(), "{phrase}: {p:?}");
            }
        }
    }
}
