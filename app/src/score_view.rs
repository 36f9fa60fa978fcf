//! How a clip's scores look on the pages: badges for its flags (gallery cards, job cards) and
//! the full table with one-line explanations (the video page).

use crate::scores::Scores;
use leptos::prelude::*;

/// "Still" or "Camera only" badges, or none.
#[component]
pub fn ScoreBadges(scores: Option<Scores>) -> impl IntoView {
    scores.map(|s| {
        view! {
            {s.still.then(|| view! { <span class="badge warn" title="Nothing moves in this clip">"Still"</span> })}
            {s.camera_only.then(|| view! { <span class="badge warn" title="The camera moves; nothing in the scene does">"Camera only"</span> })}
        }
    })
}

/// One row: name, value, what it means.
fn row(name: &'static str, value: String, meaning: &'static str) -> impl IntoView {
    view! {
        <tr><th scope="row">{name}</th><td class="num">{value}</td><td>{meaning}</td></tr>
    }
}

/// Every score of a clip, each with a line saying what it measures.
#[component]
pub fn ScoresPanel(scores: Option<Scores>) -> impl IntoView {
    let Some(s) = scores else {
        return view! {
            <section class="scores" aria-labelledby="scores-h">
                <h2 id="scores-h">"Scores"</h2>
                <p class="hint">"Not measured yet: stored clips are measured while the queue is idle."</p>
            </section>
        }
        .into_any();
    };
    let c = s.camera;
    let warnings: Vec<&'static str> = s.warnings();
    view! {
        <section class="scores" aria-labelledby="scores-h">
            <h2 id="scores-h">"Scores " <ScoreBadges scores=Some(s.clone())/></h2>
            {warnings.into_iter().map(|w| view! { <p class="warning" role="note">{w}</p> }).collect_view()}
            <table>
                <tbody>
                    {row("Motion", format!("{:.2}", s.motion), "How much moves: mean optical flow, % of the width per frame")}
                    <tr><th scope="row">"Motion peak"</th><td class="num">{format!("{:.2}", s.motion_p95)}</td><td>"The fastest 5% of the picture, same unit"</td></tr>
                    {row("Camera motion", format!("{:.2}", s.camera_motion), "The part a camera move (pan, zoom, rotation) explains")}
                    {row("Scene motion", format!("{:.2}", s.object_motion), "The part it does not: things moving in the scene")}
                    {row("Camera", format!("pan {:+.1}, {:+.1} px · zoom {:+.2}% · rotate {:+.2}°", c.pan_x, c.pan_y, c.zoom, c.rotation), "The fitted camera move per frame (content moving right, down, growing, clockwise)")}
                    {row("Smoothness", format!("{:.3}", s.smoothness), "How well each frame is predicted from its neighbours (1: perfectly smooth; still clips score 1 too)")}
                    {row("Flicker", format!("{:.2}%", s.flicker), "Brightness and colour jumps between frames that motion does not explain")}
                    {row("Sharpness", format!("{:.0}", s.sharpness), "Detail: variance of the Laplacian of the luma, higher is sharper")}
                    {row("Sharpness drop", format!("{:.0}%", 100.0 * s.sharpness_drop), "How much sharpness the end has lost against the start")}
                    {row("Consistency", format!("{:.3}", s.consistency), "Each frame against the first after following the motion (1: the scene stays itself)")}
                    {s.fidelity.map(|f| row("Fidelity to the image", format!("{:.1} dB · SSIM {:.3}", f.psnr, f.ssim), "The first frame against the picture it animates"))}
                    {s.faithfulness.clone().map(|f| if f.method == "clip" {
                        row("Faithfulness (CLIP)", format!("{:.3}", f.score), "Similarity of the frames and the prompt by the installed CLIP model (cosine)")
                    } else {
                        row("Faithfulness", format!("{:.0}%", 100.0 * f.score), "The prompt's concepts the clip shows (the built-in model's own reading)")
                    })}
                </tbody>
            </table>
            {s.faithfulness.map(|f| view! {
                <ul class="concepts">
                    {f.concepts.into_iter().map(|c| view! {
                        <li class=if c.shown { "shown" } else { "missing" }>
                            {if c.shown { "✓ " } else { "✗ " }}<strong>{c.concept}</strong>": "{c.measured}
                        </li>
                    }).collect_view()}
                </ul>
            })}
        </section>
    }
    .into_any()
}
