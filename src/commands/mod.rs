//! commands: one file per subcommand, each wiring the stages of DESIGN.md in its own order.

pub mod build;
