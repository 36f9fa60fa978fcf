//! What the flow-matching schedulers ([`super::flow_match_euler`], [`super::unipc`]) share:
//! reading their configs, checking shifts and step counts, the shift of a sigma, the stretch to
//! a terminal sigma, and numpy's f64 `linspace`.

use crate::diffusers::common::weights::LoadError;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Parses a scheduler config; nulls stand for the defaults. Errors name the file.
pub(crate) fn parse_config<T: DeserializeOwned>(path: &Path, raw: &serde_json::Value) -> Result<T, LoadError> {
    let mut raw = raw.clone();
    if let Some(map) = raw.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    serde_json::from_value(raw)
        .map_err(|e| LoadError::File { path: path.into(), message: format!("bad scheduler config: {e}") })
}

pub(crate) fn check_steps(steps: usize) -> Result<(), String> {
    if steps == 0 {
        return Err("0 inference steps: at least 1 is needed".into());
    }
    Ok(())
}

pub(crate) fn check_train_timesteps(path: &Path, n: usize) -> Result<(), LoadError> {
    if n == 0 {
        return Err(LoadError::config(path, "num_train_timesteps", n, "must be at least 1"));
    }
    Ok(())
}

pub(crate) fn check_shift(path: &Path, key: &str, shift: f64) -> Result<(), LoadError> {
    if !(shift.is_finite() && shift > 0.0) {
        return Err(LoadError::config(path, key, shift, "must be a positive number"));
    }
    Ok(())
}

pub(crate) fn check_shift_terminal(path: &Path, terminal: Option<f64>) -> Result<(), LoadError> {
    match terminal {
        Some(t) if !(0.0..1.0).contains(&t) => {
            Err(LoadError::config(path, "shift_terminal", t, "must be in [0, 1) (0 or null: no stretching)"))
        }
        _ => Ok(()),
    }
}

/// The static timestep shift `shift s / (1 + (shift - 1) s)`, in f64 as numpy evaluates it.
pub(crate) fn shift_sigma(s: f64, shift: f64) -> f64 {
    shift * s / (1.0 + (shift - 1.0) * s)
}

/// diffusers' `stretch_shift_to_terminal`: rescales `1 - s` so the last sigma becomes
/// `terminal` (nothing for `None` or 0, which diffusers reads as off). A schedule ending at
/// sigma 1 (one step) cannot be stretched: diffusers' sigmas would be NaN.
pub(crate) fn stretch_to_terminal(sigmas: &mut [f64], terminal: Option<f64>) -> Result<(), String> {
    let (Some(terminal), Some(&last)) = (terminal.filter(|&t| t != 0.0), sigmas.last()) else { return Ok(()) };
    if last == 1.0 {
        return Err(format!(
            "shift_terminal {terminal} cannot stretch a schedule that ends at sigma 1 (use more steps)"
        ));
    }
    let scale = (1.0 - last) / (1.0 - terminal);
    for s in sigmas {
        *s = 1.0 - (1.0 - *s) / scale;
    }
    Ok(())
}

/// `np.linspace(start, stop, num)` in f64: `i * step + start`, the last value exactly `stop`.
pub(crate) fn np_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut out: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    out[num - 1] = stop;
    out
}
