//! Writes a contact sheet of toy-world training clips: one row per clip, one column per frame.
//! cargo run -p model --release --example preview_world -- OUT.png [ROWS] [SEED]

use model::builtin::prompt::Prompt;
use model::builtin::world::Scene;
use model::rng::Rng;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).map_or("world.png", |s| s.as_str());
    let rows: usize = args.get(2).map_or(Ok(8), |s| s.parse())?;
    let seed: u64 = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let (frames, size, scale) = (8usize, 32usize, 3u32);
    let mut sheet = image::RgbImage::new((frames * size) as u32 * scale, (rows * size) as u32 * scale);
    let mut rng = Rng::new(seed);
    for r in 0..rows {
        let scene = Scene::sample(&mut rng, &Prompt::default(), 0.3);
        println!("row {r}: {}", scene.caption(&mut rng));
        let clip = scene.render(frames, size);
        let plane = size * size;
        for f in 0..frames {
            for y in 0..size {
                for x in 0..size {
                    let px = image::Rgb(std::array::from_fn(|c| {
                        (clip[f * 3 * plane + c * plane + y * size + x] * 255.0) as u8
                    }));
                    for dy in 0..scale {
                        for dx in 0..scale {
                            sheet.put_pixel(
                                ((f * size + x) as u32) * scale + dx,
                                ((r * size + y) as u32) * scale + dy,
                                px,
                            );
                        }
                    }
                }
            }
        }
    }
    sheet.save(out)?;
    Ok(())
}
