//! How a clip's scores look on the pages: badges for its flags (gallery cards, job cards) and
//! the full table with one-line explanations (the video page).

use crate::scores::Scores;
use leptos::prelude::*;

/// "Still" or "Camera only" badges, or none.
#[component]
pub fn ScoreBadges(scores: Option<Scores>) -> impl IntoView {
    let (text, title) = match &scores {
        Some(s) if s.still => ("Still", "Nothing moves in this clip"),
        Some(s) if s.camera_only => ("Camera only", "The camera moves; nothing in the scene does"),
        _ => return None,
    };
    Some(view! { <span class="badge warn" title=title>{text}</span> })
}

/// The table's rows: name, value, what it means.
fn rows(s: &Scores) -> Vec<(&'static str, String, &'static str)> {
    let c = s.camera;
    let mut rows = vec![
        ("Motion", format!("{:.2}", s.motion), "How much moves: mean optical flow, % of the width per frame"),
        ("Motion peak", format!("{:.2}", s.motion_p95), "The fastest 5% of the picture, same unit"),
        ("Camera motion", format!("{:.2}", s.camera_motion), "The part a camera move (pan, zoom, rotation) explains"),
        ("Scene motion", format!("{:.2}", s.object_motion), "The part it does not: things moving in the scene"),
        (
            "Camera",
            format!("pan {:+.1}, {:+.1} px · zoom {:+.2}% · rotate {:+.2}°", c.pan_x, c.pan_y, c.zoom, c.rotation),
            "The fitted camera move per frame (content moving right, down, growing, clockwise)",
        ),
        (
            "Smoothness",
            format!("{:.3}", s.smoothness),
            "How well each frame is predicted from its neighbours (1: perfectly smooth; still clips score 1 too)",
        ),
        (
            "Flicker",
            format!("{:.2}%", s.flicker),
            "Brightness and colour jumps between frames that motion does not explain",
        ),
        (
            "Sharpness",
            format!("{:.0}", s.sharpness),
            "Detail: variance of the Laplacian of the luma, higher is sharper",
        ),
        (
            "Sharpness drop",
            format!("{:.0}%", 100.0 * s.sharpness_drop),
            "How much sharpness the end has lost against the start",
        ),
        (
            "Consistency",
            format!("{:.3}", s.consistency),
            "Each frame against the first after following the motion (1: the scene stays itself)",
        ),
    ];
    if let Some(f) = s.fidelity {
        rows.push((
            "Fidelity to the image",
            format!("{:.1} dB · SSIM {:.3}", f.psnr, f.ssim),
            "The first frame against the picture it animates",
        ));
    }
    match &s.faithfulness {
        Some(f) if f.method == "clip" => rows.push((
            "Faithfulness (CLIP)",
            format!("{:.3}", f.score),
            "Similarity of the frames and the prompt by the installed CLIP model (cosine)",
        )),
        Some(f) => rows.push((
            "Faithfulness",
            format!("{:.0}%", 100.0 * f.score),
            "The prompt's concepts the clip shows (the built-in model's own reading)",
        )),
        None => {}
    }
    rows
}

/// Every score of a clip, each with a line saying what it measures.
#[component]
pub fn ScoresPanel(scores: Option<Scores>) -> impl IntoView {
    let badges = scores.clone();
    let body = scores.map(|s| {
        let concepts: Vec<(String, String)> = s
            .faithfulness
            .iter()
            .flat_map(|f| f.concepts.iter())
            .map(|c| {
                (
                    if c.shown { "shown" } else { "missing" }.to_string(),
                    format!("{} {}: {}", if c.shown { "✓" } else { "✗" }, c.concept, c.measured),
                )
            })
            .collect();
        view! {
            {s.warnings().into_iter().map(|w| view! { <p class="warning" role="note">{w}</p> }).collect_view()}
            <table>
                <tbody>
                    {rows(&s).into_iter().map(|(name, value, meaning)| view! {
                        <tr><th scope="row">{name}</th><td class="num">{value}</td><td>{meaning}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
            <ul class="concepts">
                {concepts.into_iter().map(|(class, text)| view! { <li class=class>{text}</li> }).collect_view()}
            </ul>
        }
    });
    let unmeasured = body.is_none();
    view! {
        <section class="scores" aria-labelledby="scores-h">
            <h2 id="scores-h">"Scores " <ScoreBadges scores=badges/></h2>
            {unmeasured.then(|| view! { <p class="hint">"Not measured yet: stored clips are measured while the queue is idle."</p> })}
            {body}
        </section>
    }
}
