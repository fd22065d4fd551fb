//! `archway merge`: stitches platforms that matrix legs pushed by digest into one
//! multi-platform image. Starts at publish: resolves each leg, builds the index, pushes it by
//! digest, then tags. A missing leg moves no tag unless `--allow-partial`. In CI it reads the
//! CI's environment as `build` does (computed tags, credentials, masks, log dialect) and writes
//! the same outputs.

use std::sync::Arc;

use crate::cli::MergeArgs;
use crate::inputs::Invocation;
use crate::publish::{self, merge};
use crate::report::{self, Log};

pub async fn run(args: &MergeArgs, inv: &Invocation, log: Arc<Log>) -> anyhow::Result<String> {
    let req = inv.merge(args)?;
    for n in &req.notes {
        log.line(&format!("note: {n}"));
    }
    let legs = merge::legs(&req.sources, &req.repo)?;
    let client = req.registry.client();
    log.line(&format!("==> checking push access to {}", req.repo.name()));
    publish::check_access(&client, &req.repo).await?;

    let gathered = merge::gather(&client, &req, &legs, &log).await?;
    let index = publish::index_of(gathered.per_platform(), req.annotations.clone())?;
    let published =
        publish::to_registry(&client, &req.repo, &index, &req.tags).await.map_err(|e| publish::failed(&req.repo, e))?;
    report::merged(&req, &gathered, &published, &*inv.ci, &inv.env, &log)
}
