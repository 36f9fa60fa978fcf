//! The Create form's LoRA rows, for a model that takes LoRAs: a file of the server's LoRA folder
//! and a scale each. The form sends each row as a `lora` field followed by its `lora_scale`.

use crate::calls::list_loras;
use crate::params::{LoraChoice, MAX_LORA_SCALE};
use leptos::prelude::*;
use std::collections::HashMap;

/// LoRA rows the form offers (the API takes up to `MAX_LORAS`).
const ROWS: usize = 2;

/// Step-distillation LoRAs, recognised by a word in their file name, and the settings they were
/// trained for: Wan's Lightning and lightx2v LoRAs sample in 4 steps without guidance.
const PRESETS: [(&str, &str, u32, f32); 2] = [("lightx2v", "lightx2v", 4, 1.0), ("lightning", "Lightning", 4, 1.0)];

/// The preset of a LoRA file, if it is a known distillation: (its name, steps, guidance).
pub fn preset_of(file: &str) -> Option<(&'static str, u32, f32)> {
    let lower = file.to_ascii_lowercase();
    PRESETS.iter().find(|(word, ..)| lower.contains(word)).map(|&(_, name, steps, guidance)| (name, steps, guidance))
}

#[component]
pub fn LoraPicker(
    /// The LoRAs a remixed result was made with, chosen at first.
    start: Vec<LoraChoice>,
    /// The form's parameter values, which a distillation preset sets.
    values: RwSignal<HashMap<String, String>>,
) -> impl IntoView {
    let files = Resource::new(|| (), |_| list_loras());
    let start = StoredValue::new(start);
    // The file chosen in each row.
    let chosen: Vec<RwSignal<String>> = (0..ROWS)
        .map(|row| RwSignal::new(start.with_value(|s| s.get(row).map(|c| c.file.clone()).unwrap_or_default())))
        .collect();
    let chosen = StoredValue::new(chosen);
    let preset = move || chosen.with_value(|rows| rows.iter().find_map(|r| preset_of(&r.get())));
    let apply = move |_| {
        if let Some((_, steps, guidance)) = preset() {
            values.update(|v| {
                v.insert("steps".into(), steps.to_string());
                v.insert("guidance".into(), guidance.to_string());
                // Both experts of a two-expert model (Wan 2.2 A14B) sample without guidance.
                v.insert("guidance_2".into(), guidance.to_string());
            });
        }
    };
    view! {
        <fieldset class="loras">
            <legend>"LoRAs"</legend>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let files = files.await.unwrap_or_default();
                    if files.is_empty() {
                        return view! {
                            <p class="hint">"Put LoRA files (.safetensors) in the models folder's loras/, or download a LoRA repo into the Hugging Face cache, to merge them into this model."</p>
                        }.into_any();
                    }
                    (0..ROWS).map(|row| {
                        let picked = start.with_value(|s| s.get(row).cloned());
                        let scale = picked.as_ref().map_or(1.0, |c| c.scale);
                        let files = files.clone();
                        view! {
                            <div class="lora-row">
                                <label>{format!("LoRA {}", row + 1)}
                                    <select name="lora" on:change:target=move |ev| {
                                        chosen.with_value(|rows| rows[row].set(ev.target().value()))
                                    }>
                                        <option value="">"None"</option>
                                        {files.into_iter().map(|f| {
                                            let selected = picked.as_ref().is_some_and(|c| c.file == f);
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
            {move || preset().map(|(name, steps, guidance)| view! {
                <p class="hint">
                    {format!("A {name} distillation: it was trained for {steps} steps at guidance {guidance}. ")}
                    <button type="button" class="secondary" on:click=apply>"Use its settings"</button>
                </p>
            })}
        </fieldset>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn distillations_are_known_by_name() {
        assert_eq!(super::preset_of("Wan2.2-Lightning_I2V-A14B-4steps.safetensors"), Some(("Lightning", 4, 1.0)));
        assert_eq!(super::preset_of("lightx2v_I2V_14B_480p_cfg_step_distill_rank64.safetensors").map(|p| p.1), Some(4));
        assert_eq!(super::preset_of("style.safetensors"), None);
    }
}
