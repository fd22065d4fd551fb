//! Shared test support: spawning archway with a cleared environment, a scripted registry, the
//! OCI schemas; and, with the `lab` feature, the lab (engine, registry, base image), its
//! fault-injecting proxy, remote nodes, the machine-state lock, and the reading of OCI layouts
//! into root filesystems that the assembler's conformance test compares.
#![allow(dead_code)]

#[cfg(feature = "lab")]
pub mod auth_registry;
#[cfg(feature = "lab")]
pub mod authz;
pub mod ci_fixture;
pub mod dialect;
#[cfg(feature = "lab")]
pub mod lab;
#[cfg(feature = "lab")]
pub mod layout;
#[cfg(feature = "lab")]
pub mod machine;
#[cfg(feature = "lab")]
pub mod node;
#[cfg(feature = "lab")]
pub mod proxy;
#[cfg(feature = "lab")]
pub mod pty;
pub mod reqresp;
#[cfg(feature = "lab")]
pub mod rootfs;
pub mod schema;
pub mod spawn;
