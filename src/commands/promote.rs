//! `archway promote SRC DST…`: copies a multi-platform image to new tags without pulling it to
//! disk (`copy::promote`); `--platform` keeps a subset.

use std::sync::Arc;

use crate::cli::PromoteArgs;
use crate::inputs::Invocation;
use crate::report::Log;

pub async fn run(args: &PromoteArgs, inv: &Invocation, log: Arc<Log>) -> anyhow::Result<String> {
    let req = inv.promote(args)?;
    crate::copy::promote(&req.registry.client(), &req, &log).await
}
