//! Shared test support: spawning archway with a cleared environment, a scripted registry, the
//! OCI schemas; and, with the `lab` feature, the lab (engine, registry, base image), its
//! fault-injecting proxy, remote nodes and the machine-state lock.
#![allow(dead_code)]

#[cfg(feature = "lab")]
pub mod auth_registry;
#[cfg(feature = "lab")]
pub mod lab;
#[cfg(feature = "lab")]
pub mod machine;
#[cfg(feature = "lab")]
pub mod node;
#[cfg(feature = "lab")]
pub mod proxy;
pub mod reqresp;
pub mod schema;
pub mod spawn;
