//! The leaderboard: win rates from side-by-side votes, per model or per setting, for quality
//! and for faithfulness apart, with 95% confidence intervals; also as CSV.

use crate::calls::leaderboard;
use crate::votes::{GroupBy, Standing, VoteAxis};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LeaderboardPage() -> impl IntoView {
    let query = use_query_map();
    let by = move || query.with(|q| GroupBy::parse(&q.get("by").unwrap_or_default()).unwrap_or_default());
    let board = Resource::new(move || by().as_str().to_string(), leaderboard);
    view! {
        <Title text="Leaderboard"/>
        <h1>"Leaderboard"</h1>
        <p class="hint">"Win rates from your own side-by-side votes: each vote is a win of the chosen clip over every other clip in the comparison. "
            <A href="/gallery">"Pick clips in the gallery"</A>" to compare more."</p>
        <form method="get" action="/leaderboard" class="search">
            <label for="by">"Group by"</label>
            <select id="by" name="by">
                {GroupBy::ALL.into_iter().map(|g| view! { <option value=g.as_str() selected=move || by() == g>{g.as_str()}</option> }).collect_view()}
            </select>
            <button type="submit">"Show"</button>
            <a class="button" href=move || format!("/api/leaderboard?by={}&format=csv", by().as_str())>"Download CSV"</a>
        </form>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match board.await {
                    Err(e) => view! { <p class="error" role="alert">{format!("The leaderboard cannot be read: {e}")}</p> }.into_any(),
                    Ok(b) if b.standings.is_empty() => view! {
                        <section class="empty"><p>"No votes yet."</p></section>
                    }.into_any(),
                    Ok(b) => view! {
                        <p class="meta">{format!("{} votes", b.votes)}</p>
                        {VoteAxis::ALL.into_iter().map(|axis| {
                            let rows: Vec<Standing> = b.standings.iter().filter(|s| s.axis == axis).cloned().collect();
                            view! { <StandingsTable axis rows by=b.by/> }
                        }).collect_view()}
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn StandingsTable(axis: VoteAxis, rows: Vec<Standing>, by: GroupBy) -> impl IntoView {
    view! {
        <section class="standings" data-axis=axis.as_str()>
            <h2>{axis.label()}</h2>
            {if rows.is_empty() {
                view! { <p class="hint">"No votes on this yet."</p> }.into_any()
            } else {
                view! {
                    <table class="leaderboard">
                        <thead><tr><th scope="col">{by.as_str()}</th><th scope="col">"Win rate"</th><th scope="col">"95% interval"</th><th scope="col">"Wins"</th><th scope="col">"Comparisons"</th></tr></thead>
                        <tbody>
                            {rows.into_iter().map(|s| view! {
                                <tr>
                                    <th scope="row">{s.group}</th>
                                    <td class="num">{format!("{:.0}%", 100.0 * s.win_rate)}</td>
                                    <td class="num">{format!("{:.0}–{:.0}%", 100.0 * s.low, 100.0 * s.high)}</td>
                                    <td class="num">{s.wins}</td>
                                    <td class="num">{s.comparisons}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}
