//! Running archway in a pseudo-terminal, as a user at a terminal does, and reading the screen
//! it leaves through a terminal emulator (`vt100`): what a person sees once it is done, every
//! redraw and erased line applied.

use std::io::Read as _;
use std::path::Path;

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// What a run in a terminal left.
pub struct Screen {
    pub status: u32,
    /// Every byte archway wrote to the terminal.
    pub raw: Vec<u8>,
    /// The screen's final text, trailing blank lines dropped.
    pub text: String,
}

/// Runs archway in `cwd` in a `cols`×`rows` terminal, with the lab's variables
/// ([`super::spawn::LAB_ENV`]) and `env`, nothing else of the test's environment.
pub fn archway(cwd: &Path, args: &[&str], env: &[(&str, &str)], cols: u16, rows: u16) -> Screen {
    let pair = native_pty_system()
        .openpty(PtySize { rows, cols, pixel_width: 0, pixel_height: 0 })
        .expect("a pseudo-terminal");
    let mut cmd = CommandBuilder::new(super::spawn::ARCHWAY);
    cmd.env_clear();
    for k in super::spawn::LAB_ENV {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args);
    cmd.cwd(cwd);
    let mut child = pair.slave.spawn_command(cmd).expect("archway starts in the terminal");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("the terminal's output");
    let reading = std::thread::spawn(move || {
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        // Linux answers EIO once the last writer is gone: that is the end.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        raw
    });
    let status = child.wait().expect("archway ends").exit_code();
    drop(pair.master);
    let raw = reading.join().unwrap();
    let mut parser = vt100::Parser::new(rows.try_into().expect("rows"), cols.try_into().expect("columns"), 0);
    parser.process(&raw);
    let text = parser.screen().contents().trim_end().to_string();
    Screen { status, raw, text }
}
