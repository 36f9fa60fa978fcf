use burn::prelude::*;
use burn::store::{HalfPrecisionAdapter, ModuleSnapshot, SafetensorsStore};
fn main() {
    let device = Device::flex();
    let cfg: model::net::NetConfig = serde_json::from_str(&std::fs::read_to_string("model/weights/toy.json").unwrap()).unwrap();
    let mut net = cfg.init(&device);
    let mut store = SafetensorsStore::from_file("model/weights/toy.safetensors").with_from_adapter(HalfPrecisionAdapter::new());
    let r = net.load_from(&mut store).unwrap();
    println!("applied {} missing {} unused {} errors {:?} skipped {}", r.applied.len(), r.missing.len(), r.unused.len(), r.errors, r.skipped.len());
    let cfg2 = cfg.clone();
    let hb = model::training::host_batch(999, 3, 4, &cfg2);
    for &s in &[0.2f32, 0.5, 0.8, 0.95] {
        let mut hb2 = model::training::host_batch(999, 3, 4, &cfg2);
        hb2.times = vec![s; 4];
        let l = model::training::loss(&net, &hb2, &cfg2, &device).into_scalar::<f32>();
        // Baseline: predict v = mean(data) - noise is impossible; compare with v = -noise... report the loss only.
        println!("s={s} loss {l:.4}");
    }
    let _ = hb;
}
