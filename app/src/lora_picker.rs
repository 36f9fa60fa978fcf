//! The Create form's LoRA rows, for a model that takes LoRAs: a file of the server's LoRA folder
//! and a scale each. The form sends each row as a `lora` field followed by its `lora_scale`.

use crate::calls::list_loras;
use crate::params::{LoraChoice, MAX_LORA_SCALE};
use leptos::prelude::*;

/// LoRA rows the form offers (the API takes up to `MAX_LORAS`).
const ROWS: usize = 2;

#[component]
pub fn LoraPicker(
    /// The LoRAs a remixed result was made with, chosen at first.
    start: Vec<LoraChoice>,
) -> impl IntoView {
    let files = Resource::new(|| (), |_| list_loras());
    let start = StoredValue::new(start);
    view! {
        <fieldset class="loras">
            <legend>"LoRAs"</legend>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let files = files.await.unwrap_or_default();
                    if files.is_empty() {
                        return view! {
                            <p class="hint">"Put LoRA files (.safetensors) in the models folder's loras/ to merge them into this model."</p>
                        }.into_any();
                    }
                    (0..ROWS).map(|row| {
                        let chosen = start.with_value(|s| s.get(row).cloned());
                        let scale = chosen.as_ref().map_or(1.0, |c| c.scale);
                        let files = files.clone();
                        view! {
                            <div class="lora-row">
                                <label>{format!("LoRA {}", row + 1)}
                                    <select name="lora">
                                        <option value="">"None"</option>
                                        {files.into_iter().map(|f| {
                                            let selected = chosen.as_ref().is_some_and(|c| c.file == f);
                                            view! { <option value=f.clone() selected=selected>{f.clone()}</option> }
                                        }).collect_view()}
                                    </select>
                                </label>
                                <label>"Scale"
                                    <input type="number" name="lora_scale" step="0.05" min=(-MAX_LORA_SCALE).to_string()
                                        max=MAX_LORA_SCALE.to_string() value=scale.to_string()/>
                                </label>
                            </div>
                        }
                    }).collect_view().into_any()
                })}
            </Suspense>
        </fieldset>
    }
}
