//! archway: build a Dockerfile for several platforms and publish one multi-platform image.
//!
//! The stages of `../shared/DESIGN.md` live here as modules; `main.rs` only parses flags,
//! calls a command and turns its error into an exit code.

pub mod builder;
pub mod ci;
pub mod cli;
pub mod commands;
pub mod copy;
pub mod dockerfile;
pub mod env;
pub mod error;
pub mod files;
pub mod inputs;
pub mod inspect;
pub mod oci;
pub mod plan;
pub mod planning;
pub mod platform;
pub mod probe;
pub mod publish;
pub mod reference;
pub mod registry;
pub mod report;
pub mod scratch;
pub mod secret;
