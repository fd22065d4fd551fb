//! `archway inspect REF`: what a reference holds (`crate::inspect`). `--format json` for
//! scripts; `--raw` prints the stored bytes exactly.

use std::io::Write as _;

use crate::cli::InspectArgs;
use crate::error::UserError;
use crate::inputs::Invocation;
use crate::registry::RegistryError;

pub async fn run(args: &InspectArgs, inv: &Invocation) -> anyhow::Result<String> {
    let req = inv.inspect(args)?;
    let client = req.registry.client();
    let r = &req.reference;
    let m = client.manifest_get(r).await.map_err(|e| {
        let hint = if e.is_not_found() {
            "check the tag; `docker buildx imagetools inspect` reads the same".to_string()
        } else {
            // Not the login hint: `ARCHWAY_REGISTRY_*` are for the registry pushed to.
            match &e {
                RegistryError::InsecureRealm { .. }
                | RegistryError::HeaderDigest { .. }
                | RegistryError::DigestMismatch { .. } => e.hint(),
                _ => None,
            }
            .unwrap_or_else(|| "check the registry and credentials".into())
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
