//! Shared test support: the lab (engine, registry, base image) and the OCI schemas.
#![allow(dead_code)]

pub mod auth_registry;
pub mod lab;
pub mod layout;
pub mod machine;
pub mod node;
pub mod proxy;
pub mod rootfs;
pub mod schema;
