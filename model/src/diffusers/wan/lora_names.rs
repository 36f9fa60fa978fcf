//! The diffusers names of the original Wan code's modules, as ComfyUI's Wan LoRAs (Lightning,
//! lightx2v) name them: the map diffusers' `_convert_non_diffusers_wan_lora_to_diffusers` applies.

/// Block-level renames: an original module path ending (after `blocks.N`) and diffusers' one.
const IN_BLOCKS: [(&str, &str); 12] = [
    (".self_attn.q", ".attn1.to_q"),
    (".self_attn.k", ".attn1.to_k"),
    (".self_attn.v", ".attn1.to_v"),
    (".self_attn.o", ".attn1.to_out.0"),
    (".cross_attn.q", ".attn2.to_q"),
    (".cross_attn.k", ".attn2.to_k"),
    (".cross_attn.v", ".attn2.to_v"),
    (".cross_attn.o", ".attn2.to_out.0"),
    (".cross_attn.k_img", ".attn2.add_k_proj"),
    (".cross_attn.v_img", ".attn2.add_v_proj"),
    (".ffn.0", ".ffn.net.0.proj"),
    (".ffn.2", ".ffn.net.2"),
];

/// Top-level renames.
const TOP: [(&str, &str); 9] = [
    ("head.head", "proj_out"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("patch_embedding", "patch_embedding"),
    // Wan 2.1 image-to-video's image embedder (its feed-forward).
    ("img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"),
    ("img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"),
];

/// diffusers' path of the original module `original` (`blocks.3.self_attn.q` ->
/// `blocks.3.attn1.to_q`); `None` for a module diffusers' Wan does not have.
pub fn diffusers_module(original: &str) -> Option<String> {
    if original.starts_with("blocks.") {
        return IN_BLOCKS.iter().find_map(|(from, to)| original.strip_suffix(from).map(|stem| format!("{stem}{to}")));
    }
    TOP.iter().find(|(from, _)| *from == original).map(|(_, to)| to.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_names_map_to_diffusers() {
        assert_eq!(diffusers_module("blocks.3.self_attn.q").as_deref(), Some("blocks.3.attn1.to_q"));
        assert_eq!(diffusers_module("blocks.0.cross_attn.k_img").as_deref(), Some("blocks.0.attn2.add_k_proj"));
        assert_eq!(diffusers_module("blocks.12.ffn.2").as_deref(), Some("blocks.12.ffn.net.2"));
        assert_eq!(diffusers_module("head.head").as_deref(), Some("proj_out"));
        assert_eq!(diffusers_module("img_emb.proj.3").as_deref(), Some("condition_embedder.image_embedder.ff.net.2"));
        assert_eq!(diffusers_module("blocks.1.modulation"), None);
        assert_eq!(diffusers_module("nowhere"), None);
    }
}
