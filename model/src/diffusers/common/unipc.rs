//! diffusers' `UniPCMultistepScheduler` in its flow-matching setting (`use_flow_sigmas`,
//! `prediction_type = "flow_prediction"`, data prediction), as Wan 2.1 ships it: the UniPC
//! predictor (UniP) of up to `solver_order` with the corrector (UniC) applied at the start of
//! each later step, B(h) of kind bh1 or bh2.
//!
//! The sigma table is computed as diffusers computes it (numpy f64, stored in f32; timesteps
//! truncated to integers). Each update's scalars (log-SNRs, h, r_k, B(h), the order conditions
//! and their solution) are f32 like the 0-dimensional float32 tensors diffusers computes them
//! with, and the sample arithmetic is f32 in the same order of operations.

use crate::diffusers::common::config::check_unsupported;
use crate::diffusers::common::flow_sigmas::{
    check_shift, check_shift_terminal, check_steps, check_train_timesteps, np_linspace, parse_config, shift_sigma,
    stretch_to_terminal,
};
use crate::diffusers::common::weights::LoadError;
use burn::prelude::*;
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::Path;

/// The B(h) of the UniPC update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverType {
    /// B(h) = h (recommended by the paper for unconditional sampling). Only with
    /// [`FinalSigma::SigmaMin`]: into sigma 0, h is infinite.
    Bh1,
    /// B(h) = e^h - 1 (diffusers' default; Wan's).
    Bh2,
}

/// Where the last step ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalSigma {
    /// At sigma 0: the last step returns the model's data prediction (Wan's).
    Zero,
    /// At the schedule's last sigma: the last step leaves the sample where it is.
    SigmaMin,
}

/// The UniPC options this port implements. [`UniPCConfig::from_json`] refuses every other
/// setting diffusers has (Karras/exponential/beta sigmas, thresholding, noise or v prediction,
/// dynamic shifting, `solver_p`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct UniPCConfig {
    pub num_train_timesteps: usize,
    /// The highest order of the predictor (the corrector is one higher); 2 in diffusers and Wan.
    pub solver_order: usize,
    pub solver_type: SolverType,
    /// Lower the order on the last steps (min(solver_order, steps left)).
    pub lower_order_final: bool,
    /// Steps whose prediction is not corrected: for each `i` listed, step `i + 1` skips the
    /// corrector that would refine the sample step `i` predicted.
    pub disable_corrector: Vec<usize>,
    /// The timestep shift `s' = flow_shift s / (1 + (flow_shift - 1) s)`.
    pub flow_shift: f64,
    pub final_sigma: FinalSigma,
    /// Where the shifted schedule is stretched to end (`None` or 0: not stretched).
    pub shift_terminal: Option<f64>,
}

/// `scheduler_config.json` as diffusers' `__init__` reads it, with its defaults.
#[derive(Deserialize)]
#[serde(default)]
struct RawConfig {
    num_train_timesteps: usize,
    solver_order: usize,
    prediction_type: String,
    predict_x0: bool,
    solver_type: String,
    lower_order_final: bool,
    disable_corrector: Vec<usize>,
    use_flow_sigmas: bool,
    flow_shift: f64,
    timestep_spacing: String,
    final_sigmas_type: String,
    shift_terminal: Option<f64>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            solver_order: 2,
            prediction_type: "epsilon".into(),
            predict_x0: true,
            solver_type: "bh2".into(),
            lower_order_final: true,
            disable_corrector: vec![],
            use_flow_sigmas: false,
            flow_shift: 1.0,
            timestep_spacing: "linspace".into(),
            final_sigmas_type: "zero".into(),
            shift_terminal: None,
        }
    }
}

/// Keys whose other values this port does not implement.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("use_karras_sigmas", "false"),
    ("use_exponential_sigmas", "false"),
    ("use_beta_sigmas", "false"),
    ("thresholding", "false"),
    // Needs a resolution-dependent `mu` per call, which the Wan pipelines do not pass.
    ("use_dynamic_shifting", "false"),
    ("time_shift_type", "\"exponential\""),
    ("solver_p", "null"),
];

impl UniPCConfig {
    /// Reads `scheduler_config.json`.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        Self::from_json(path, &crate::diffusers::common::config::read_json(path)?)
    }

    /// The config from parsed JSON; `path` names it in errors. The beta schedule
    /// (`beta_*`, `trained_betas`, `rescale_betas_zero_snr`), `steps_offset`, the Karras bounds
    /// (`sigma_min`, `sigma_max`) and the thresholding values do not enter diffusers' flow
    /// setting, so they are not read; `timestep_spacing` is only checked to be one diffusers knows.
    pub fn from_json(path: &Path, raw: &serde_json::Value) -> Result<Self, LoadError> {
        check_unsupported(path, raw, UNSUPPORTED)?;
        let c: RawConfig = parse_config(path, raw)?;
        if !c.use_flow_sigmas {
            return Err(LoadError::config(
                path,
                "use_flow_sigmas",
                c.use_flow_sigmas,
                "this port implements the flow setting (true) only",
            ));
        }
        if c.prediction_type != "flow_prediction" {
            return Err(LoadError::config(
                path,
                "prediction_type",
                &c.prediction_type,
                "this port implements flow_prediction only",
            ));
        }
        if !c.predict_x0 {
            return Err(LoadError::config(
                path,
                "predict_x0",
                c.predict_x0,
                "flow_prediction needs true (data prediction)",
            ));
        }
        let solver_type = match c.solver_type.as_str() {
            "bh1" => SolverType::Bh1,
            "bh2" => SolverType::Bh2,
            other => return Err(LoadError::config(path, "solver_type", other, "supported: bh1, bh2")),
        };
        let final_sigma = match c.final_sigmas_type.as_str() {
            "zero" => FinalSigma::Zero,
            "sigma_min" => FinalSigma::SigmaMin,
            other => return Err(LoadError::config(path, "final_sigmas_type", other, "supported: zero, sigma_min")),
        };
        if !matches!(c.timestep_spacing.as_str(), "linspace" | "leading" | "trailing") {
            return Err(LoadError::config(
                path,
                "timestep_spacing",
                &c.timestep_spacing,
                "supported: linspace, leading, trailing",
            ));
        }
        if c.solver_order == 0 {
            return Err(LoadError::config(path, "solver_order", c.solver_order, "must be at least 1"));
        }
        if solver_type == SolverType::Bh1 && final_sigma == FinalSigma::Zero {
            // B(h) = h is infinite on the step into sigma 0, and diffusers' last sample NaN.
            return Err(LoadError::config(
                path,
                "solver_type",
                "bh1",
                "ending at sigma zero needs bh2 (or final_sigmas_type sigma_min)",
            ));
        }
        // Full order on the last step: into sigma 0 diffusers divides by r_k = 0 (infinities);
        // to sigma_min h is 0 and order 3 and above solve for NaN.
        let max_last_order = match final_sigma {
            FinalSigma::Zero => 1,
            FinalSigma::SigmaMin => 2,
        };
        if !c.lower_order_final && c.solver_order > max_last_order {
            return Err(LoadError::config(
                path,
                "lower_order_final",
                c.lower_order_final,
                &format!(
                    "with final_sigmas_type {} and solver_order {} diffusers' last step is not finite: needs true",
                    c.final_sigmas_type, c.solver_order
                ),
            ));
        }
        check_train_timesteps(path, c.num_train_timesteps)?;
        check_shift(path, "flow_shift", c.flow_shift)?;
        check_shift_terminal(path, c.shift_terminal)?;
        Ok(Self {
            num_train_timesteps: c.num_train_timesteps,
            solver_order: c.solver_order,
            solver_type,
            lower_order_final: c.lower_order_final,
            disable_corrector: c.disable_corrector,
            flow_shift: c.flow_shift,
            final_sigma,
            shift_terminal: c.shift_terminal,
        })
    }
}

/// `UniPCMultistepScheduler` set up for a number of inference steps, with the state its
/// multistep updates keep between steps.
#[derive(Debug, Clone)]
pub struct UniPC {
    config: UniPCConfig,
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    /// The data predictions of the latest steps (at most `solver_order`), oldest first.
    outputs: VecDeque<Tensor<5>>,
    /// The sample the last predictor started from, which the next corrector refines.
    last_sample: Option<Tensor<5>>,
    /// The last predictor's order, which the next corrector uses.
    last_order: usize,
    /// The step expected next.
    next_step: usize,
}

impl UniPC {
    /// The schedule of `steps` steps: `linspace(1, 1/N, steps + 1)` without its end, shifted
    /// (and stretched to `shift_terminal`), the first sigma moved 1e-6 below 1, then the final
    /// sigma. Timesteps are `N sigma` truncated to integers, as diffusers casts them to int64.
    ///
    /// From 334 steps (Wan's shift 3) the first two timesteps coincide and diffusers,
    /// which finds its first step by timestep, starts at the second and fails at the end; steps
    /// here are numbered by the caller, so such schedules simply run.
    pub fn new(config: &UniPCConfig, steps: usize) -> Result<Self, String> {
        check_steps(steps)?;
        let n = config.num_train_timesteps as f64;
        let mut sigmas: Vec<f64> =
            np_linspace(1.0, 1.0 / n, steps + 1)[..steps].iter().map(|&s| shift_sigma(s, config.flow_shift)).collect();
        stretch_to_terminal(&mut sigmas, config.shift_terminal)?;
        if (sigmas[0] - 1.0).abs() < 1e-6 {
            sigmas[0] -= 1e-6;
        }
        let timesteps = sigmas.iter().map(|s| (s * n).trunc() as f32).collect();
        let last = match config.final_sigma {
            FinalSigma::Zero => 0.0,
            FinalSigma::SigmaMin => sigmas[steps - 1],
        };
        sigmas.push(last);
        Ok(Self {
            config: config.clone(),
            timesteps,
            sigmas: sigmas.into_iter().map(|s| s as f32).collect(),
            outputs: VecDeque::with_capacity(config.solver_order),
            last_sample: None,
            last_order: 0,
            next_step: 0,
        })
    }

    /// The transformer's timestep input per step (integers).
    pub fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// One sigma per step, then the final one (0, or the last step's for `sigma_min`).
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// Step `i` from `sample` with the model's velocity at step `i`: corrects `sample` with
    /// this output (from step 1 on, unless disabled), then predicts the sample at the next
    /// sigma. Steps must come in order 0, 1, 2, ...; step 0 starts a new trajectory.
    ///
    /// # Panics
    /// When `i` is neither 0 nor the step after the previous one, or is past the schedule.
    pub fn step(&mut self, model_output: Tensor<5>, i: usize, sample: Tensor<5>) -> Tensor<5> {
        let steps = self.timesteps.len();
        assert!(i < steps, "UniPC step {i} of a {steps}-step schedule");
        if i == 0 {
            self.outputs.clear();
            self.last_sample = None;
        } else {
            assert_eq!(i, self.next_step, "UniPC steps must come in order");
        }
        // The data prediction x0 = x - sigma v.
        let x0 = sample.clone() - model_output * self.sigmas[i];
        let sample = match self.last_sample.take() {
            Some(last) if !self.config.disable_corrector.contains(&(i - 1)) => self.correct(last, x0.clone(), i),
            _ => sample,
        };
        if self.outputs.len() == self.config.solver_order {
            self.outputs.pop_front();
        }
        self.outputs.push_back(x0);
        let order = if self.config.lower_order_final {
            self.config.solver_order.min(steps - i)
        } else {
            self.config.solver_order
        };
        // Warm-up: only as many earlier outputs as there are.
        let order = order.min(i + 1);
        let next = self.predict(sample.clone(), i, order);
        self.last_sample = Some(sample);
        self.last_order = order;
        self.next_step = i + 1;
        next
    }

    /// UniP (diffusers' `multistep_uni_p_bh_update`): from `x` at step `i`, whose data
    /// prediction is the newest output, to the sigma of step `i + 1`.
    fn predict(&self, x: Tensor<5>, i: usize, order: usize) -> Tensor<5> {
        let c = self.coefficients(i, order);
        let m0 = self.outputs[self.outputs.len() - 1].clone();
        let x_t = x * c.ratio - m0.clone() * c.alpha_phi;
        if order == 1 {
            return x_t;
        }
        let rhos = if order == 2 { vec![0.5] } else { solve(&c.r[..order - 1], &c.b[..order - 1]) };
        let pred_res = self.weighted_differences(&m0, &c.rks, &rhos);
        x_t - pred_res * c.alpha_b
    }

    /// UniC (diffusers' `multistep_uni_c_bh_update`): the sample at step `i` recomputed from
    /// `last_sample` (the one at step `i - 1`, whose data prediction is the newest output) with
    /// the help of `x0`, the data prediction at step `i`, which is not among the outputs yet.
    fn correct(&self, last_sample: Tensor<5>, x0: Tensor<5>, i: usize) -> Tensor<5> {
        let order = self.last_order;
        let c = self.coefficients(i - 1, order);
        let m0 = self.outputs[self.outputs.len() - 1].clone();
        let rhos = if order == 1 { vec![0.5] } else { solve(&c.r, &c.b) };
        let x_t = last_sample * c.ratio - m0.clone() * c.alpha_phi;
        let mut correction = (x0 - m0.clone()) * rhos[order - 1];
        if order > 1 {
            correction = self.weighted_differences(&m0, &c.rks, &rhos[..order - 1]) + correction;
        }
        x_t - correction * c.alpha_b
    }

    /// `sum_k rhos[k] D1_k` with `D1_k = (m_k - m0) / r_k`, `m0` the newest output and `m_k`
    /// the one `k` steps before it (k from 1).
    fn weighted_differences(&self, m0: &Tensor<5>, rks: &[f32], rhos: &[f32]) -> Tensor<5> {
        let newest = self.outputs.len() - 1;
        rhos.iter()
            .enumerate()
            .map(|(k, &rho)| (self.outputs[newest - k - 1].clone() - m0.clone()) / rks[k] * rho)
            .reduce(|a, b| a + b)
            .expect("at least one earlier output")
    }

    /// The scalars of an update of `order` from the sigma of step `s` to that of step `s + 1`,
    /// in f32 as diffusers' 0-dimensional float32 tensors.
    fn coefficients(&self, s: usize, order: usize) -> Coefficients {
        // Flow sigmas: alpha = 1 - sigma; lambda = log(alpha) - log(sigma).
        let lambda = |sigma: f32| (1.0 - sigma).ln() - sigma.ln();
        let (sigma_t, sigma_s0) = (self.sigmas[s + 1], self.sigmas[s]);
        let alpha_t = 1.0 - sigma_t;
        let lambda_s0 = lambda(sigma_s0);
        let h = lambda(sigma_t) - lambda_s0;
        let mut rks: Vec<f32> = (1..order).map(|k| (lambda(self.sigmas[s - k]) - lambda_s0) / h).collect();
        rks.push(1.0);
        // Data prediction integrates over -h.
        let hh = -h;
        let h_phi_1 = hh.exp_m1();
        let b_h = match self.config.solver_type {
            SolverType::Bh1 => hh,
            SolverType::Bh2 => hh.exp_m1(),
        };
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let mut factorial = 1u64;
        let (mut r, mut b) = (Vec::with_capacity(order), Vec::with_capacity(order));
        for i in 1..=order {
            r.push(rks.iter().map(|rk| rk.powi(i as i32 - 1)).collect());
            b.push(h_phi_k * factorial as f32 / b_h);
            factorial *= i as u64 + 1;
            // Python's 1 / factorial is f64; PyTorch rounds it to f32 to subtract it.
            h_phi_k = h_phi_k / hh - (1.0 / factorial as f64) as f32;
        }
        Coefficients { ratio: sigma_t / sigma_s0, alpha_phi: alpha_t * h_phi_1, alpha_b: alpha_t * b_h, rks, r, b }
    }
}

/// The scalars of one UniPC update to sigma_t from sigma_s0.
struct Coefficients {
    /// sigma_t / sigma_s0, which multiplies the sample.
    ratio: f32,
    /// alpha_t (e^-h - 1), which multiplies the newest data prediction.
    alpha_phi: f32,
    /// alpha_t B(h), which multiplies the higher-order correction.
    alpha_b: f32,
    /// r_k = (lambda_k - lambda_s0) / h of the earlier outputs, then 1.
    rks: Vec<f32>,
    /// The order conditions `R rho = b`: row `i` holds `r_k^i`.
    r: Vec<Vec<f32>>,
    b: Vec<f32>,
}

/// `torch.linalg.solve` of a small system in f32: LU with partial pivoting (the first largest
/// pivot, rows scaled by its reciprocal), then forward and back substitution, as LAPACK's
/// `getrf`/`getrs` do.
fn solve(a: &[Vec<f32>], b: &[f32]) -> Vec<f32> {
    let n = b.len();
    let mut a: Vec<Vec<f32>> = a.iter().map(|row| row[..n].to_vec()).collect();
    let mut x = b.to_vec();
    for col in 0..n {
        let pivot = (col + 1..n).fold(col, |p, r| if a[r][col].abs() > a[p][col].abs() { r } else { p });
        a.swap(col, pivot);
        x.swap(col, pivot);
        let inv = 1.0 / a[col][col];
        let (done, rest) = a.split_at_mut(col + 1);
        let pivot_row = &done[col];
        for (r, row) in rest.iter_mut().enumerate() {
            let l = row[col] * inv;
            for (v, p) in row[col + 1..].iter_mut().zip(&pivot_row[col + 1..]) {
                *v -= l * p;
            }
            x[col + 1 + r] -= l * x[col];
        }
    }
    for col in (0..n).rev() {
        x[col] /= a[col][col];
        for row in 0..col {
            x[row] -= x[col] * a[row][col];
        }
    }
    x
}
