//! The `vidplay` command line: one module per command, each with its own arguments.

pub mod bench;
pub mod common;
pub mod edit;
pub mod engine_run;
pub mod eval;
pub mod extend;
pub mod generate;
pub mod image;
#[cfg(feature = "testkit")]
pub mod load_bench;
pub mod migrate;
pub mod models;
pub mod parity;
pub mod score;
pub mod serve;
pub mod worker;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vidplay", version, about = "A self-hosted video-generation playground")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Generate a clip from a prompt, or animate an image: with the built-in model, or with
    /// Stable Video Diffusion (`--model-dir` or `--model`, image-to-video).
    Generate(generate::GenerateArgs),
    /// Continue a clip from its last frame with the built-in model: one segment per --prompt.
    Extend(extend::ExtendArgs),
    /// Measure the built-in model's faithfulness on held-out prompts.
    Eval(eval::EvalArgs),
    /// Benchmark seconds per clip and peak memory at the default settings.
    Bench(bench::BenchArgs),
    /// Make an image from a prompt with a Stable Diffusion-family model (diffusers layout).
    Image(image::ImageArgs),
    /// Edit an image by an instruction ("add snow") with an InstructPix2Pix-family model.
    Edit(edit::EditArgs),
    /// List installed diffusers models (the models folder and the Hugging Face cache).
    Models(models::ModelsArgs),
    /// List the compute devices (CUDA, Vulkan, wgpu, CPU) with their --device names.
    Devices,
    /// Run diffusers' fixture pipelines on a device and compare with diffusers' own output.
    Parity(parity::ParityArgs),
    /// Measure a clip (MP4, GIF or a folder of frames): motion, camera and scene motion,
    /// smoothness, flicker, sharpness, consistency, fidelity and faithfulness, as JSON.
    Score(score::ScoreArgs),
    /// Start the playground web server.
    Serve(serve::ServeArgs),
    /// Load the web node: many clients reading, searching and following progress while jobs
    /// run, on SQLite and on PostgreSQL with S3; prints latency percentiles. (Builds with the
    /// `testkit` feature: it starts its own throwaway services.)
    #[cfg(feature = "testkit")]
    LoadBench(load_bench::LoadBenchArgs),
    /// Move a single-machine gallery (a data directory) into PostgreSQL and an S3 bucket;
    /// resumable, every video checked.
    Migrate(migrate::MigrateArgs),
    /// Take jobs from a shared queue (PostgreSQL) and run them on this machine's device:
    /// one per GPU, on as many machines as there are.
    Worker(worker::WorkerArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Extend(a) => extend::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(a) => bench::command(a),
        Command::Image(a) => image::run(a),
        Command::Edit(a) => edit::run(a),
        Command::Models(a) => models::run(a),
        Command::Devices => models::devices(),
        Command::Parity(a) => parity::run(a),
        Command::Score(a) => score::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Worker(a) => worker::run(a),
        Command::Migrate(a) => migrate::run(a),
        #[cfg(feature = "testkit")]
        Command::LoadBench(a) => load_bench::run(a),
    }
}
