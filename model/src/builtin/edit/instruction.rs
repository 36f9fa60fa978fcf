//! What the built-in editor can be asked: one change of the toy world per instruction, read
//! from free text ("make it red", "turn it into a star", "add snow", "move it left", "make it
//! bigger"), and the phrasings it is trained on and measured with.

use crate::builtin::vocab::{Color, Setting, Subject, Weather};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Left,
    Right,
    Up,
    Down,
}

impl Direction {
    pub const ALL: [Direction; 4] = [Direction::Left, Direction::Right, Direction::Up, Direction::Down];

    pub fn word(self) -> &'static str {
        match self {
            Direction::Left => "left",
            Direction::Right => "right",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// One edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Edit {
    /// The subject's colour.
    Recolor(Color),
    /// The subject becomes another shape.
    Reshape(Subject),
    /// The setting behind the subject.
    Setting(Setting),
    /// Rain or snow added (or changed to).
    AddWeather(Weather),
    /// Rain or snow taken away.
    ClearWeather,
    Move(Direction),
    /// Bigger (`true`) or smaller.
    Resize(bool),
}

/// Length of [`Edit::vector`].
pub const EDIT_DIM: usize = 7 + Color::ALL.len() + Subject::ALL.len() + Setting::ALL.len() + 3 + 4 + 2;

impl Edit {
    /// The editor's conditioning: the kind of edit, one-hot, then its argument, one-hot.
    pub fn vector(self) -> Vec<f32> {
        let mut v = vec![0.0; EDIT_DIM];
        let (kind, arg) = match self {
            Edit::Recolor(c) => (0, 7 + c.index()),
            Edit::Reshape(s) => (1, 14 + s.index()),
            Edit::Setting(s) => (2, 18 + s.index()),
            Edit::AddWeather(w) => (3, 24 + w.index()),
            Edit::ClearWeather => (4, 26),
            Edit::Move(d) => (5, 27 + d as usize),
            Edit::Resize(bigger) => (6, if bigger { 31 } else { 32 }),
        };
        v[kind] = 1.0;
        v[arg] = 1.0;
        v
    }

    /// What the edit is called in results.
    pub fn kind(self) -> &'static str {
        match self {
            Edit::Recolor(_) => "colour",
            Edit::Reshape(_) => "shape",
            Edit::Setting(_) => "setting",
            Edit::AddWeather(_) | Edit::ClearWeather => "weather",
            Edit::Move(_) => "position",
            Edit::Resize(_) => "size",
        }
    }

    /// An instruction for the edit in one of its phrasings: training ones, or (with
    /// `held_out`) ones training never shows.
    pub fn phrase(self, rng: &mut Rng, held_out: bool) -> String {
        let pick = |rng: &mut Rng, train: &[&str], held: &[&str]| -> String {
            (*rng.pick(if held_out { held } else { train })).to_string()
        };
        match self {
            Edit::Recolor(c) => pick(
                rng,
                &["make it {}", "turn it {}", "change the colour to {}", "paint it {}", "{}"],
                &["recolour it {}", "make the shape {}"],
            )
            .replace("{}", c.phrase()),
            Edit::Reshape(s) => pick(
                rng,
                &["turn it into a {}", "make it a {}", "change it to a {}", "replace it with a {}"],
                &["transform it into a {}", "swap it for a {}"],
            )
            .replace("{}", s.phrase()),
            Edit::Setting(s) => {
                let place = match s {
                    Setting::NightSky => "the night sky",
                    Setting::GrassField => "a grass field",
                    Setting::Ocean => "the ocean",
                    Setting::Desert => "the desert",
                    Setting::Snowfield => "a snowfield",
                    Setting::Plain => "a plain background",
                };
                pick(
                    rng,
                    &["put it in {}", "move it to {}", "change the background to {}", "set it in {}"],
                    &["place it in {}", "make the setting {}"],
                )
                .replace("{}", place)
            }
            Edit::AddWeather(w) => {
                let (noun, verb) = match w {
                    Weather::Rain => ("rain", "rain"),
                    Weather::Snow => ("snow", "snow"),
                };
                pick(
                    rng,
                    &["add {n}", "make it {v}", "let it {v}", "add some {n}"],
                    &["put {n} in it", "it should {v}"],
                )
                .replace("{n}", noun)
                .replace("{v}", verb)
            }
            Edit::ClearWeather => pick(
                rng,
                &["remove the weather", "stop the rain and snow", "make it clear", "no more weather"],
                &["clear the sky of weather", "take the weather away"],
            ),
            Edit::Move(d) => pick(
                rng,
                &["move it {}", "shift it {}", "move it to the {}", "push it {}"],
                &["nudge it {}", "slide it {}"],
            )
            .replace("{}", d.word())
            .replace("to the up", "up")
            .replace("to the down", "down"),
            Edit::Resize(true) => pick(
                rng,
                &["make it bigger", "enlarge it", "make it larger", "scale it up"],
                &["increase its size", "grow it"],
            ),
            Edit::Resize(false) => pick(
                rng,
                &["make it smaller", "shrink it", "scale it down", "make it tiny"],
                &["reduce its size", "decrease its size"],
            ),
        }
    }
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// Reads an instruction. `Err` says, for the person, what the editor can do instead.
pub fn parse(text: &str) -> Result<Edit, String> {
    let w = words(text);
    let has = |x: &str| w.iter().any(|v| v == x);
    let any = |xs: &[&str]| xs.iter().any(|x| has(x));
    let joined = format!(" {} ", w.join(" "));
    if w.is_empty() {
        return Err("the instruction is empty: say what to change (\"add snow\")".into());
    }
    // Weather first: "snow" is also a setting word ("snowfield" is the setting).
    let rain = any(&["rain", "raining", "rainy", "drizzle"]);
    let snow = any(&["snow", "snowing", "snowy", "snowfall"]);
    if any(&["remove", "stop", "clear", "no", "without", "away", "off"]) && (rain || snow || has("weather"))
        || joined.contains(" make it clear ")
    {
        return Ok(Edit::ClearWeather);
    }
    if rain {
        return Ok(Edit::AddWeather(Weather::Rain));
    }
    if snow && !has("snowfield") {
        return Ok(Edit::AddWeather(Weather::Snow));
    }
    let setting = if joined.contains(" night sky ") || any(&["night", "stars", "starry", "space"]) {
        Some(Setting::NightSky)
    } else if any(&["grass", "field", "meadow", "grassy"]) && !has("snowfield") {
        Some(Setting::GrassField)
    } else if any(&["ocean", "sea", "water"]) {
        Some(Setting::Ocean)
    } else if any(&["desert", "dunes", "sand"]) {
        Some(Setting::Desert)
    } else if any(&["snowfield"]) || joined.contains(" snowy field ") {
        Some(Setting::Snowfield)
    } else if joined.contains(" plain background ") || joined.contains(" blank background ") {
        Some(Setting::Plain)
    } else {
        None
    };
    if let Some(s) = setting {
        return Ok(Edit::Setting(s));
    }
    let shape = [
        (Subject::Ball, &["ball", "circle", "sphere", "disc", "dot"][..]),
        (Subject::Square, &["square", "box", "cube", "block"][..]),
        (Subject::Triangle, &["triangle", "pyramid"][..]),
        (Subject::Star, &["star"][..]),
    ]
    .into_iter()
    .find(|(_, names)| any(names))
    .map(|(s, _)| s);
    if let Some(s) = shape {
        return Ok(Edit::Reshape(s));
    }
    let colour = Color::ALL.iter().copied().find(|c| has(c.phrase())).or_else(|| {
        if any(&["violet"]) {
            Some(Color::Purple)
        } else if any(&["grey", "gray", "silver"]) {
            Some(Color::White)
        } else {
            None
        }
    });
    if let Some(c) = colour {
        return Ok(Edit::Recolor(c));
    }
    if any(&["bigger", "larger", "enlarge", "grow", "increase", "up"])
        && any(&["bigger", "larger", "enlarge", "grow", "size", "scale"])
    {
        return Ok(Edit::Resize(true));
    }
    if any(&["smaller", "shrink", "tiny", "reduce", "decrease", "down"])
        && any(&["smaller", "shrink", "tiny", "size", "scale"])
    {
        return Ok(Edit::Resize(false));
    }
    if let Some(d) = Direction::ALL.into_iter().find(|d| has(d.word())) {
        return Ok(Edit::Move(d));
    }
    Err(format!(
        "the built-in editor does not know how to {:?}: it changes the colour (\"make it red\"), the shape (\"turn it into a star\"), \
         the setting (\"put it in the desert\"), the weather (\"add snow\", \"remove the rain\"), the position (\"move it left\") or \
         the size (\"make it bigger\")",
        text.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phrasing_reads_back_as_its_edit() {
        let mut edits = Vec::new();
        edits.extend(Color::ALL.iter().map(|&c| Edit::Recolor(c)));
        edits.extend(Subject::ALL.iter().map(|&s| Edit::Reshape(s)));
        edits.extend(Setting::ALL.iter().map(|&s| Edit::Setting(s)));
        edits.extend(Weather::ALL.iter().map(|&w| Edit::AddWeather(w)));
        edits.push(Edit::ClearWeather);
        edits.extend(Direction::ALL.iter().map(|&d| Edit::Move(d)));
        edits.extend([Edit::Resize(true), Edit::Resize(false)]);
        let mut rng = Rng::new(3);
        for edit in edits {
            for held_out in [false, true] {
                for _ in 0..12 {
                    let text = edit.phrase(&mut rng, held_out);
                    assert_eq!(parse(&text), Ok(edit), "{text:?}");
                }
            }
            assert_eq!(edit.vector().iter().filter(|&&v| v == 1.0).count(), 2);
        }
        assert_eq!(parse("Make it RED!"), Ok(Edit::Recolor(Color::Red)));
        assert!(parse("  ").unwrap_err().contains("empty"));
        assert!(parse("make it a fireman").unwrap_err().contains("does not know"));
    }
}
