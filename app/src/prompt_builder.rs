//! Assembling a prompt from chips: pure text editing, shared by the page and its tests.

/// Whether `phrase` occurs in `text` as whole words (case-insensitive).
pub fn contains_phrase(text: &str, phrase: &str) -> bool {
    find_phrase(text, phrase).is_some()
}

fn find_phrase(text: &str, phrase: &str) -> Option<usize> {
    let lower = text.to_lowercase();
    let phrase = phrase.to_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&phrase) {
        let start = from + i;
        let end = start + phrase.len();
        let before_ok = lower[..start].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after_ok = lower[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok && text.is_char_boundary(start) && text.is_char_boundary(end) {
            return Some(start);
        }
        from = end;
    }
    None
}

/// Applies a chip to the prompt text. Clicking a chip that is present removes it; clicking
/// another chip of the same group replaces that group's phrase; otherwise the phrase is added
/// where it reads naturally (colours before the subject, the rest at the end).
pub fn apply_chip(text: &str, group: &[String], phrase: &str) -> String {
    if let Some(start) = find_phrase(text, phrase) {
        let end = start + phrase.len();
        return tidy(&format!("{}{}", &text[..start], &text[end..]));
    }
    for other in group {
        if let Some(start) = find_phrase(text, other) {
            let end = start + other.len();
            return tidy(&format!("{}{}{}", &text[..start], phrase, &text[end..]));
        }
    }
    let trimmed = text.trim_end().trim_end_matches(',');
    if trimmed.trim().is_empty() {
        return phrase.to_string();
    }
    trimmed.to_string() + separator(phrase) + phrase
}

fn separator(phrase: &str) -> &'static str {
    if phrase.starts_with("camera") || phrase == "static camera" || phrase == "rain" || phrase == "snow" {
        ", "
    } else {
        " "
    }
}

/// Collapses the doubled spaces and stray commas that removing a phrase leaves.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if word == "," {
            if !out.is_empty() && !out.ends_with(',') {
                out.push(',');
            }
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    let out = out.replace(",,", ",").replace(" ,", ",");
    out.trim_matches(|c: char| c == ',' || c.is_whitespace()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colors() -> Vec<String> {
        ["red", "blue", "green"].map(String::from).to_vec()
    }

    #[test]
    fn chips_add_replace_and_remove() {
        let p = apply_chip("", &colors(), "red");
        assert_eq!(p, "red");
        let p = apply_chip("a red ball bouncing", &colors(), "blue");
        assert_eq!(p, "a blue ball bouncing");
        let p = apply_chip("a blue ball bouncing", &colors(), "blue");
        assert_eq!(p, "a ball bouncing");
        let cams = ["camera pans left".to_string(), "camera pans right".to_string()];
        let p = apply_chip("a ball bouncing", &cams, "camera pans left");
        assert_eq!(p, "a ball bouncing, camera pans left");
        let p = apply_chip(&p, &cams, "camera pans left");
        assert_eq!(p, "a ball bouncing");
    }

    #[test]
    fn phrases_match_whole_words_only() {
        assert!(contains_phrase("A Red ball", "red"));
        assert!(!contains_phrase("a reddish ball", "red"));
        assert!(!contains_phrase("shredded", "red"));
        assert!(contains_phrase("snow, camera pans left", "camera pans left"));
    }
}
