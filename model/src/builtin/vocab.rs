//! The toy world's vocabulary: what the built-in model knows how to draw.
//!
//! Each concept is one canonical token; the model is conditioned on the set of tokens a prompt
//! names (see [`crate::builtin::prompt`]). The token order here is part of the shipped weights' format.

use serde::{Deserialize, Serialize};

macro_rules! concept {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical phrase, as the UI's chips and the captions use it.
            pub fn phrase(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn index(self) -> usize {
                Self::ALL.iter().position(|v| *v == self).unwrap_or(0)
            }
        }
    };
}

concept!(Subject {
    Ball => "ball",
    Square => "square",
    Triangle => "triangle",
    Star => "star",
});

concept!(Color {
    Red => "red",
    Orange => "orange",
    Yellow => "yellow",
    Green => "green",
    Blue => "blue",
    Purple => "purple",
    White => "white",
});

concept!(Action {
    MovingLeft => "moving left",
    MovingRight => "moving right",
    MovingUp => "moving up",
    MovingDown => "moving down",
    Bouncing => "bouncing",
    Spinning => "spinning",
    Growing => "growing",
    Shrinking => "shrinking",
});

concept!(Setting {
    NightSky => "night sky",
    GrassField => "grass field",
    Ocean => "ocean",
    Desert => "desert",
    Snowfield => "snowfield",
    Plain => "plain background",
});

concept!(Weather {
    Rain => "rain",
    Snow => "snow",
});

concept!(Camera {
    Static => "static camera",
    PanLeft => "camera pans left",
    PanRight => "camera pans right",
    ZoomIn => "camera zooms in",
    ZoomOut => "camera zooms out",
});

impl Color {
    /// Linear-ish sRGB in [0, 1], as the renderer draws it.
    pub fn rgb(self) -> [f32; 3] {
        match self {
            Color::Red => [0.86, 0.12, 0.10],
            Color::Orange => [0.98, 0.52, 0.08],
            Color::Yellow => [0.97, 0.88, 0.12],
            Color::Green => [0.16, 0.72, 0.22],
            Color::Blue => [0.12, 0.30, 0.92],
            Color::Purple => [0.56, 0.18, 0.78],
            Color::White => [0.97, 0.97, 0.97],
        }
    }
}

/// Offsets of each concept group in the token space.
pub const SUBJECT_BASE: usize = 0;
pub const COLOR_BASE: usize = SUBJECT_BASE + 4;
pub const ACTION_BASE: usize = COLOR_BASE + 7;
pub const SETTING_BASE: usize = ACTION_BASE + 8;
pub const WEATHER_BASE: usize = SETTING_BASE + 6;
pub const CAMERA_BASE: usize = WEATHER_BASE + 2;
/// Number of canonical tokens.
pub const NUM_TOKENS: usize = CAMERA_BASE + 5;

/// One group of chips for a prompt builder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Category {
    pub name: String,
    pub phrases: Vec<String>,
}

/// The vocabulary grouped the way a prompt builder shows it.
pub fn categories() -> Vec<Category> {
    fn cat(name: &str, phrases: impl Iterator<Item = &'static str>) -> Category {
        Category { name: name.into(), phrases: phrases.map(String::from).collect() }
    }
    vec![
        cat("subject", Subject::ALL.iter().map(|s| s.phrase())),
        cat("color", Color::ALL.iter().map(|s| s.phrase())),
        cat("action", Action::ALL.iter().map(|s| s.phrase())),
        cat("setting", Setting::ALL.iter().map(|s| s.phrase())),
        cat("weather", Weather::ALL.iter().map(|s| s.phrase())),
        cat("camera", Camera::ALL.iter().map(|s| s.phrase())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_space_is_contiguous() {
        assert_eq!(COLOR_BASE, Subject::ALL.len());
        assert_eq!(ACTION_BASE - COLOR_BASE, Color::ALL.len());
        assert_eq!(SETTING_BASE - ACTION_BASE, Action::ALL.len());
        assert_eq!(WEATHER_BASE - SETTING_BASE, Setting::ALL.len());
        assert_eq!(CAMERA_BASE - WEATHER_BASE, Weather::ALL.len());
        assert_eq!(NUM_TOKENS - CAMERA_BASE, Camera::ALL.len());
    }
}
