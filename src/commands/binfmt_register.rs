//! `archway binfmt-register` (hidden): registers QEMU handlers for the given platforms from the
//! qemu-user-static binaries next to archway. Runs inside archway's own image as a privileged
//! helper container when the step itself is not privileged but the engine allows it.

use crate::builder::schedule;
use crate::cli::BinfmtRegisterArgs;
use crate::inputs::Invocation;
use crate::report::Log;

pub fn run(args: &BinfmtRegisterArgs, inv: &Invocation, log: &Log) -> anyhow::Result<String> {
    for line in schedule::register_here(&inv.binfmt_register(args)?)? {
        log.line(&line);
    }
    Ok(String::new())
}
