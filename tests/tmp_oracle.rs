use archway::builder::assemble::{AssembleOptions, Assembler};
use archway::builder::{BuildSpec, Builder as _};
use archway::registry::{Client, CredentialSource};
use std::sync::Arc;
#[tokio::test(flavor = "multi_thread")]
async fn oracle() {
    let ctx = std::path::PathBuf::from(std::env::var("CTX").unwrap());
    let out = std::path::PathBuf::from(std::env::var("OUT").unwrap());
    let df = std::env::var("DF").unwrap_or("Dockerfile".into());
    let spec = BuildSpec {
        context: ctx.clone(),
        dockerfile: ctx.join(df),
        build_args: vec![],
        target: None,
        provenance: None,
        sbom: None,
        labels: vec![],
        annotations: vec![],
    };
    let asm = Assembler::new(Client::new(CredentialSource::default(), vec![]), AssembleOptions::default());
    let b = asm
        .build(&spec, &std::env::var("PLAT").unwrap().parse().unwrap(), &out, Arc::new(|_, l| eprintln!("{l}")))
        .await;
    if let Err(e) = b {
        panic!("{e}")
    }
}
