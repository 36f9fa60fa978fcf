//! Trains the built-in toy-world model. Resumable: rerun with the same `--dir` to continue.
//!
//! cargo run -p model --release --features train --bin train -- --dir checkpoints/toy --steps 4000 \
//!     --export model/weights/toy.safetensors

use burn::module::Module;
use clap::Parser;
use model::builtin::net::NetConfig;
use model::builtin::training::{TrainState, Trainer};
use model::device::{self, DeviceChoice};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
struct Args {
    /// Checkpoint directory (created, or resumed from).
    #[arg(long, default_value = "checkpoints/toy")]
    dir: PathBuf,
    /// Train until this many steps in total.
    #[arg(long, default_value_t = 4000)]
    steps: u64,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[arg(long, default_value_t = 4e-4)]
    lr: f64,
    #[arg(long, default_value_t = 1234)]
    data_seed: u64,
    /// Compute device: cpu (Burn flex), wgpu, wgpu:cpu, wgpu:discrete:N, ...
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    #[arg(long, default_value_t = 16)]
    frames: usize,
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Channels at 1/2, 1/4, 1/8 resolution, comma separated.
    #[arg(long, default_value = "64,96,128")]
    channels: String,
    #[arg(long, default_value_t = 192)]
    cond_dim: usize,
    /// Save a checkpoint every N steps.
    #[arg(long, default_value_t = 100)]
    save_every: u64,
    #[arg(long, default_value_t = 10)]
    log_every: u64,
    /// Start a new run from these exported weights (e.g. the shipped ones) instead of random.
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Step a new run starts counting at (with --init-from: the step the weights were at, so the
    /// data stream continues rather than repeats).
    #[arg(long, default_value_t = 0)]
    start_step: u64,
    /// Also export f16 inference weights here at every checkpoint.
    #[arg(long)]
    export: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let channels: Vec<usize> = args.channels.split(',').map(|c| c.trim().parse()).collect::<Result<_, _>>()?;
    anyhow::ensure!(channels.len() == 3, "--channels takes three numbers");
    let opened = device::open(args.device)?;
    let fresh = TrainState {
        config: NetConfig {
            frames: args.frames,
            size: args.size,
            channels: [channels[0], channels[1], channels[2]],
            cond_dim: args.cond_dim,
        },
        data_seed: args.data_seed,
        batch: args.batch,
        step: args.start_step,
        log: Vec::new(),
        seconds: 0.0,
        device: opened.description.clone(),
    };
    let mut trainer = Trainer::open(&args.dir, fresh, args.init_from.as_deref(), args.lr, &opened.device)?;
    let params = trainer.net.num_params();
    println!(
        "training {:?}, {params} parameters, batch {}, on {}",
        trainer.state.config, trainer.state.batch, opened.description
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
            println!("checkpoint at step {step}");
        }
    }
    Ok(())
}
