//! `archway binfmt-register` (hidden): registers QEMU handlers for the given platforms from the
//! qemu-user-static binaries next to archway. Runs inside archway's own image as a privileged
//! helper container when the step itself is not privileged but the engine allows it.

use crate::builder::qemu;
use crate::cli::BinfmtRegisterArgs;
use crate::error::UserError;
use crate::report::Log;

pub fn run(args: &BinfmtRegisterArgs, log: &Log) -> anyhow::Result<()> {
    let platforms = crate::platform::parse_list(&args.platforms.join(","))
        .map_err(|e| UserError::input(format!("`--platform`: {e}")))?;
    let dir = std::path::Path::new(qemu::BINFMT_DIR);
    for p in &platforms {
        let interpreter = qemu::find_interpreter(p)
            .ok_or_else(|| UserError::failure(format!("no qemu-user-static interpreter for {p} in this image")))?;
        match qemu::register(p, &interpreter, dir)? {
            qemu::Registered::New(name) => {
                log.line(&format!("registered QEMU handler `{name}` for {p} ({})", interpreter.display()))
            }
            qemu::Registered::Existing(name) => {
                log.line(&format!("QEMU handler `{name}` for {p} is registered on the host already; left as it is"))
            }
        }
    }
    Ok(())
}
