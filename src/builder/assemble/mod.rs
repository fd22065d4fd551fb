//! assemble: the `assembled` strategy — archway writes an OCI image itself from the base
//! image's registry manifest, the build context and the Dockerfile's instructions, with no
//! engine, no buildx and no emulation. BuildKit's `dockerfile2llb` is the reference for what
//! every instruction does; where this code and buildx disagree, buildx is right.

pub mod archive;
pub mod base;
pub mod config;
pub mod context;
pub mod copy;
pub mod glob;
pub mod ignore;
pub mod layer;
pub mod tree;
