//! Trains the built-in instruction editor. Resumable: rerun with the same `--dir`.
//!
//! cargo run -p model --release --features train --bin train_edit -- --dir checkpoints/edit --steps 2000 \
//!     --export model/weights/edit.safetensors

use burn::module::Module;
use clap::Parser;
use model::builtin::edit::net::EditConfig;
use model::builtin::edit::training::{EditTrainState, EditTrainer};
use model::device::{self, DeviceChoice};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "checkpoints/edit")]
    dir: PathBuf,
    /// Train until this many steps in total.
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    #[arg(long, default_value_t = 24)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 2718)]
    data_seed: u64,
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
    let args = Args::parse();
    let opened = device::open(args.device)?;
    let fresh = EditTrainState {
        config: EditConfig::default_small(),
        data_seed: args.data_seed,
        batch: args.batch,
        step: 0,
        log: Vec::new(),
        seconds: 0.0,
        device: opened.description.clone(),
    };
    let mut trainer = EditTrainer::open(&args.dir, fresh, args.lr, &opened.device)?;
    println!(
        "training {:?}, {} parameters, batch {}, on {}",
        trainer.state.config,
        trainer.net.num_params(),
        trainer.state.batch,
        opened.description
    );
    let (mut window, mut window_start) = (Vec::new(), Instant::now());
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
