//! Visual search's scan: a query's CLIP embedding against every stored clip's (brute-force
//! cosine), at 1,000 to 100,000 clips of 768 dimensions (clip-vit-large-patch14's width).
//! `cargo bench -p server --bench visual_search`; prints milliseconds per search (median of 21).

use server::visual::nearest;
use std::time::Instant;

fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn main() {
    let dim = 768;
    println!("| stored clips | search, median of 21 | memory of the embeddings |\n|---|---|---|");
    for n in [1_000usize, 10_000, 100_000] {
        let index: Vec<(String, Vec<f32>)> = (0..n as u64).map(|i| (format!("{i:016x}"), vector(i, dim))).collect();
        let mut times: Vec<f64> = (0..21)
            .map(|q| {
                let query = vector(1_000_000 + q, dim);
                let t = Instant::now();
                let hits = nearest(&index, &query, 0.0, 24);
                std::hint::black_box(hits);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("| {n} | {:.2} ms | {:.0} MiB |", times[10], (n * dim * 4) as f64 / (1024.0 * 1024.0));
    }
}
