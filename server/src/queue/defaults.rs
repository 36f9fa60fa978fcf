//! A job's missing parameters take its model's defaults (`ModelInfo`): a JSON job that names
//! Wan and only a prompt runs with Wan's frames, size, steps and guidance, not another model's.

use crate::engines::task_of;
use app::models::{ModelInfo, set_value};
use app::types::{JobParams, Mode};
use std::collections::HashSet;

/// Which of a request's parameters it gave.
#[derive(Debug, Clone)]
pub enum Given {
    /// All of them (a job made in code, a stored job run again).
    All,
    /// Only these names (the keys of a JSON request, the fields of a form).
    Only(HashSet<String>),
}

impl Given {
    pub fn has(&self, name: &str) -> bool {
        match self {
            Given::All => true,
            Given::Only(names) => names.contains(name),
        }
    }

    /// These and `name` as well (what a variant sets).
    pub fn with(&self, name: &str) -> Given {
        match self {
            Given::All => Given::All,
            Given::Only(names) => {
                let mut names = names.clone();
                names.insert(name.to_string());
                Given::Only(names)
            }
        }
    }
}

/// Sets every parameter of `info`'s task that the request did not give to the model's default.
/// The task is the one the engine will pick (an edit; image-to-video with a picture, which
/// continuing a clip starts from too; else the first text task); a request no task fits is left
/// as it is, for validation to refuse with its message.
pub fn fill(info: &ModelInfo, params: &mut JobParams, given: &Given, has_picture: bool) {
    let task = if params.task == app::params::EDIT_TASK {
        Mode::Edit
    } else {
        match task_of(info, has_picture) {
            Ok(task) => task,
            Err(_) => return,
        }
    };
    for spec in info.params_for(task) {
        if !given.has(&spec.name) {
            set_value(params, &spec.name, &spec.default);
        }
    }
}
