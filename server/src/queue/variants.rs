//! Variants in the queue: one request becomes a group of jobs (seeds, one parameter's values,
//! or models; or several pictures, each animated alike), all or none of them queued.

use super::defaults::Given;
use super::{Jobs, Picture, Pictures, SubmitError, Upload};
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
        pictures: Pictures,
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
        self.submit_group(
            owner,
            requests.into_iter().map(|params| (params, pictures.clone())).collect(),
            &given,
            "variant",
        )
        .await
    }

    /// Animate many: one job per picture, each with `base`'s settings (and the same last frame,
    /// when one is given), as one group (compared side by side afterwards). All or none are
    /// queued, as for variants.
    pub async fn submit_pictures(
        &self,
        owner: &str,
        base: JobParams,
        pictures: Vec<Picture>,
        last: Option<Upload>,
        given: &Given,
    ) -> Result<VariantGroup, SubmitError> {
        let requests = pictures
            .into_iter()
            .map(|picture| (base.clone(), Pictures { first: Some(picture), last: last.clone() }))
            .collect();
        self.submit_group(owner, requests, given, "picture").await
    }

    /// Queues `requests` as one new group (in each job's `params.group`); on a refusal, takes
    /// back those already queued and says which `what` (variant, picture) was refused.
    async fn submit_group(
        &self,
        owner: &str,
        requests: Vec<(JobParams, Pictures)>,
        given: &Given,
        what: &str,
    ) -> Result<VariantGroup, SubmitError> {
        let group = crate::ids::new_id();
        let mut jobs = Vec::with_capacity(requests.len());
        for (mut params, picture) in requests {
            params.group = group.clone();
            match self.submit_given(owner, params, picture, given).await {
                Ok(job) => jobs.push(job),
                Err(e) => {
                    for job in &jobs {
                        // The request's own jobs, taken back.
                        let _ = self.cancel(&job.id, &app::people::Viewer::everyone()).await;
                    }
                    return Err(match e {
                        SubmitError::Invalid(why) => SubmitError::Invalid(format!("{what} {}: {why}", jobs.len() + 1)),
                        other => other,
                    });
                }
            }
        }
        Ok(VariantGroup { group, jobs })
    }
}
