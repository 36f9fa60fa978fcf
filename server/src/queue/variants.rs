//! Variants in the queue: one request becomes a group of jobs (seeds, one parameter's values,
//! or models), all or none of them queued.

use super::defaults::Given;
use super::{Jobs, Picture, SubmitError};
use app::types::JobParams;
use app::variants::{VariantGroup, Variants};

impl Jobs {
    /// Queues every variant of `base` with one new group id (in each job's `params.group`).
    /// What the request did not give (`given`) takes each variant's model's defaults, the varied
    /// value aside. When one is refused (a bad value, a full queue), those already queued are
    /// cancelled and the refusal is returned.
    pub async fn submit_variants(
        &self,
        owner: &str,
        base: JobParams,
        picture: Option<Picture>,
        variants: &Variants,
        given: &Given,
    ) -> Result<VariantGroup, SubmitError> {
        let varied = if !variants.models.is_empty() {
            "model"
        } else if !variants.param.is_empty() {
            variants.param.as_str()
        } else {
            "seed"
        };
        let given = given.with(varied);
        let requests = variants.expand(&base, crate::ids::random_seed).map_err(SubmitError::Invalid)?;
        let group = crate::ids::new_id();
        let mut jobs = Vec::with_capacity(requests.len());
        for mut params in requests {
            params.group = group.clone();
            match self.submit_given(owner, params, picture.clone(), &given).await {
                Ok(job) => jobs.push(job),
                Err(e) => {
                    for job in &jobs {
                        // The request's own jobs, taken back.
                        let _ = self.cancel(&job.id, &app::people::Viewer::everyone()).await;
                    }
                    return Err(match e {
                        SubmitError::Invalid(why) => SubmitError::Invalid(format!("variant {}: {why}", jobs.len() + 1)),
                        other => other,
                    });
                }
            }
        }
        Ok(VariantGroup { group, jobs })
    }
}
