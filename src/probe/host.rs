//! host: facts about the machine archway runs on — its platform (`uname`), whether it is
//! itself a container, and what it may do with binfmt_misc (capabilities, mount, `register`).
//!
//! Reads /proc and calls `uname(2)` and `access(2)`; never writes anything. The parsers are pure
//! functions of the text read, tested below.

use std::ffi::{CStr, CString};
use std::path::Path;

use super::Privilege;
use super::binfmt::BINFMT_DIR;
use crate::platform::Platform;

/// The capability that mounting binfmt_misc and writing its `register` file need.
pub const CAP_SYS_ADMIN: u32 = 21;

/// Files container runtimes put in the root of a container.
const CONTAINER_MARKERS: &[&str] = &["/.dockerenv", "/run/.containerenv"];
/// Path fragments in `/proc/1/cgroup` that only containers have (cgroup v1, or v2 without a
/// cgroup namespace).
const CGROUP_HINTS: &[&str] = &["/docker", "/kubepods", "/lxc", "/libpod", "/containerd", "/ecs/", "/actions_job/"];

/// The platform of the running kernel (`uname -m`), normalised; falls back to the platform this
/// binary was built for when the kernel names an architecture archway does not know.
pub fn platform() -> Platform {
    machine().and_then(|m| platform_from_machine(&m)).unwrap_or_else(Platform::host)
}

/// `uname(2)`'s machine field: `x86_64`, `aarch64`, `armv7l`, …
fn machine() -> Option<String> {
    // SAFETY: utsname is plain data; uname fills it and NUL-terminates every field.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let field = unsafe { CStr::from_ptr(u.machine.as_ptr()) };
    Some(field.to_string_lossy().into_owned())
}

/// Normalises a `uname -m` value: `x86_64` → `linux/amd64`, `armv7l` → `linux/arm/v7`.
pub fn platform_from_machine(machine: &str) -> Option<Platform> {
    format!("linux/{}", machine.trim()).parse().ok()
}

/// Whether archway runs inside a container; `container_var` is the `container` variable
/// container runtimes set (read by `inputs`).
pub fn in_container(container_var: Option<&str>) -> bool {
    let marker = CONTAINER_MARKERS.iter().any(|m| Path::new(m).exists());
    let cgroup = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    looks_like_container(marker, container_var, &cgroup)
}

/// Decides from the hints [`in_container`] gathers: a marker file, the `container` variable, or
/// the text of `/proc/1/cgroup`.
pub fn looks_like_container(marker_file: bool, container_var: Option<&str>, cgroup: &str) -> bool {
    marker_file
        || container_var.is_some_and(|v| !v.trim().is_empty())
        || cgroup.lines().any(|l| CGROUP_HINTS.iter().any(|h| l.contains(h)))
}

/// What this process may do with binfmt_misc.
pub fn privilege() -> Privilege {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_sys_admin = parse_cap_eff(&status).is_some_and(|caps| has_cap(caps, CAP_SYS_ADMIN));
    let register = Path::new(BINFMT_DIR).join("register");
    let binfmt_mounted = register.exists();
    Privilege {
        cap_sys_admin,
        binfmt_mounted,
        binfmt_mountable: !binfmt_mounted && cap_sys_admin,
        binfmt_register_writable: binfmt_mounted && writable(&register),
    }
}

/// The effective capability set from the text of `/proc/self/status` (`CapEff:\t000001ffffffffff`).
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

pub fn has_cap(caps: u64, cap: u32) -> bool {
    cap < 64 && caps & (1 << cap) != 0
}

/// access(2) with W_OK: asks the kernel whether a write would be allowed, without writing
/// (`register` takes any write as a registration).
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names_normalise() {
        for (m, want) in [
            ("x86_64", "linux/amd64"),
            ("aarch64", "linux/arm64"),
            ("armv7l", "linux/arm/v7"),
            ("armv6l", "linux/arm/v6"),
            ("i686", "linux/386"),
            ("ppc64le", "linux/ppc64le"),
            ("s390x", "linux/s390x"),
            ("riscv64", "linux/riscv64"),
            ("loongarch64", "linux/loong64"),
            ("mips64", "linux/mips64"),
        ] {
            assert_eq!(platform_from_machine(m).map(|p| p.to_string()).as_deref(), Some(want), "{m}");
        }
        assert_eq!(platform_from_machine("sparc64"), None);
    }

    #[test]
    fn host_platform_is_known() {
        // The kernel and the compiler agree on the test machine.
        assert_eq!(platform(), Platform::host());
    }

    /// `/proc/self/status` of a root shell in a privileged container, then of a default Docker
    /// container (no CAP_SYS_ADMIN).
    const STATUS_PRIVILEGED: &str = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nCapInh:\t0000000000000000\n\
                                     CapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n";
    const STATUS_DEFAULT: &str = "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n\
                                  CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n";

    #[test]
    fn cap_eff_parses_and_finds_sys_admin() {
        let caps = parse_cap_eff(STATUS_PRIVILEGED).unwrap();
        assert_eq!(caps, 0x1fffeffffff);
        assert!(has_cap(caps, CAP_SYS_ADMIN));
        // bit 24 (CAP_SYS_RESOURCE) is the one missing in that set
        assert!(!has_cap(caps, 24));

        let caps = parse_cap_eff(STATUS_DEFAULT).unwrap();
        assert_eq!(caps, 0xa80425fb);
        assert!(!has_cap(caps, CAP_SYS_ADMIN));
        assert!(has_cap(caps, 0)); // CAP_CHOWN

        assert!(has_cap(1 << 21, CAP_SYS_ADMIN));
        assert!(!has_cap(u64::MAX, 64));
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
        assert_eq!(parse_cap_eff("CapEff:\tnot-hex\n"), None);
    }

    #[test]
    fn container_hints() {
        let host_v2 = "0::/init.scope\n";
        let docker_v1 = "12:pids:/docker/3f1c2a\n11:memory:/docker/3f1c2a\n";
        let k8s = "0::/kubepods/besteffort/pod1234/abcd\n";
        assert!(!looks_like_container(false, None, host_v2));
        assert!(!looks_like_container(false, Some(""), "0::/\n"));
        assert!(looks_like_container(true, None, host_v2));
        assert!(looks_like_container(false, Some("podman"), host_v2));
        assert!(looks_like_container(false, None, docker_v1));
        assert!(looks_like_container(false, None, k8s));
    }
}
