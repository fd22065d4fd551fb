//! commands: one file per subcommand, each a short list of stage calls (DESIGN.md: "Subcommands
//! wire the same stages differently, and do nothing else"). Settings come from
//! `inputs::Invocation`; the work lives in the stages.

pub mod binfmt_register;
pub mod build;
pub mod inspect;
pub mod merge;
pub mod plan;
pub mod promote;
