//! `archway inspect REF`: what a reference holds (`crate::inspect`). `--format json` for
//! scripts; `--raw` prints the stored bytes exactly.

use std::io::Write as _;

use crate::cli::InspectArgs;
use crate::error::UserError;
use crate::inputs::Invocation;

pub async fn run(args: &InspectArgs, inv: &Invocation) -> anyhow::Result<String> {
    let req = inv.inspect(args)?;
    let client = req.registry.client();
    let r = &req.reference;
    let m = client.manifest_get(r).await.map_err(|e| {
        let hint = if e.is_not_found() {
            "check the tag; `docker buildx imagetools inspect` reads the same"
        } else {
            "check the registry and credentials"
        };
        UserError::failure(format!("cannot read {r}")).hint(hint).caused_by(e)
    })?;
    if req.raw {
        std::io::stdout().write_all(&m.bytes)?;
        return Ok(String::new());
    }
    let inspected = crate::inspect::inspect(&client, r, &m).await?;
    print!("{}", crate::inspect::render(&inspected, req.format)?);
    Ok(String::new())
}
