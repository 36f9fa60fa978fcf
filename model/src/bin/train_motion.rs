//! Trains the built-in image-to-video motion model. Resumable: rerun with the same `--dir`.
//!
//! cargo run -p model --release --features train --bin train_motion -- --dir checkpoints/motion --steps 3000 \
//!     --export model/weights/motion.safetensors

use burn::module::Module;
use clap::Parser;
use model::builtin::motion::net::MotionConfig;
use model::builtin::motion::training::{MotionTrainState, MotionTrainer};
use model::device::{self, DeviceChoice};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "checkpoints/motion")]
    dir: PathBuf,
    /// Train until this many steps in total.
    #[arg(long, default_value_t = 3000)]
    steps: u64,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 4321)]
    data_seed: u64,
    /// Compute device: cpu (Burn flex), wgpu, wgpu:cpu, ...
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    save_every: u64,
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    log_every: u64,
    /// Also export f16 inference weights here at every checkpoint.
    #[arg(long)]
    export: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let opened = device::open(args.device)?;
    let fresh = MotionTrainState {
        config: MotionConfig::default_small(),
        data_seed: args.data_seed,
        batch: args.batch,
        step: 0,
        log: Vec::new(),
        seconds: 0.0,
        device: opened.description.clone(),
    };
    let mut trainer = MotionTrainer::open(&args.dir, fresh, args.lr, &opened.device)?;
    println!(
        "training {:?}, {} parameters, batch {}, on {}",
        trainer.state.config,
        trainer.model.num_params(),
        trainer.state.batch,
        opened.description
    );
    let mut window = Vec::new();
    let mut window_start = Instant::now();
    while trainer.state.step < args.steps {
        let t0 = Instant::now();
        let loss = trainer.step();
        trainer.state.seconds += t0.elapsed().as_secs_f64();
        window.push(loss);
        let step = trainer.state.step;
        if step % args.log_every == 0 {
            let mean = window.iter().sum::<f32>() / window.len() as f32;
            let per_step = window_start.elapsed().as_secs_f32() / window.len() as f32;
            println!("step {step:6} loss {mean:.4} {per_step:.2} s/step");
            trainer.state.log.push((step, mean, per_step));
            window.clear();
            window_start = Instant::now();
        }
        if step % args.save_every == 0 || step == args.steps {
            trainer.save(&args.dir)?;
            if let Some(path) = &args.export {
                trainer.export(path)?;
            }
        }
    }
    Ok(())
}
