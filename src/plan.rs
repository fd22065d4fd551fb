//! plan: chooses, for each platform, how this runner builds it — assembled, native, cross,
//! remote or emulated — and says why in one line; or says why it cannot, what was tried and how to
//! unblock it. Pure: a function of the request's platforms and policy, the probed
//! `Capabilities` and the Dockerfile `Analysis`. No I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dockerfile::{Analysis, Location};
use crate::platform::{Arch, Platform};
use crate::probe::Capabilities;

/// The ways a platform can be built, in the default order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// archway writes the image itself: no engine, no emulation.
    Assembled,
    Native,
    Cross,
    Remote,
    Emulated,
}

impl StrategyKind {
    pub const DEFAULT_ORDER: [StrategyKind; 5] = [
        StrategyKind::Assembled,
        StrategyKind::Native,
        StrategyKind::Cross,
        StrategyKind::Remote,
        StrategyKind::Emulated,
    ];

    pub fn parse(s: &str) -> Option<StrategyKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "assembled" | "assemble" => Some(StrategyKind::Assembled),
            "native" => Some(StrategyKind::Native),
            "cross" => Some(StrategyKind::Cross),
            "remote" => Some(StrategyKind::Remote),
            "emulated" | "emulation" | "qemu" => Some(StrategyKind::Emulated),
            _ => None,
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StrategyKind::Assembled => "assembled",
            StrategyKind::Native => "native",
            StrategyKind::Cross => "cross",
            StrategyKind::Remote => "remote",
            StrategyKind::Emulated => "emulated",
        })
    }
}

/// Whether archway may register QEMU handlers in the kernel (`--binfmt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinfmtPolicy {
    /// Register the handlers a build needs when none exists and archway is allowed to.
    #[default]
    Auto,
    /// Never change kernel state; use only handlers that already exist.
    Never,
}

/// What the user allows and prefers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Order in which strategies are tried (`--prefer`); kinds left out are tried after, in
    /// the default order.
    pub order: Vec<StrategyKind>,
    /// `--no-emulation`: never run foreign code under QEMU.
    pub no_emulation: bool,
    pub binfmt: BinfmtPolicy,
    /// Build inputs given that only BuildKit honours (`secrets`, `ssh`, `cache-to`, …): the
    /// engine's classic builder cannot build with them.
    pub buildkit_only: Vec<String>,
    /// Build inputs given that archway's assembler cannot honour (`build-contexts`).
    pub not_assemblable: Vec<String>,
    /// Build inputs given that only reach RUN steps and buildx's cache: an assembled
    /// platform has none, so the plan notes them.
    pub run_only: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            order: StrategyKind::DEFAULT_ORDER.to_vec(),
            no_emulation: false,
            binfmt: BinfmtPolicy::Auto,
            buildkit_only: Vec::new(),
            not_assemblable: Vec::new(),
            run_only: Vec::new(),
        }
    }
}

/// `a`, `b` as backticked input names.
fn names(inputs: &[String]) -> String {
    inputs.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

impl Policy {
    /// The full order: the preferred kinds first, then the rest in the default order — except
    /// that `assembled`, when a preference leaves it out, comes last, so `--prefer native`
    /// plans every platform an engine can build as archway did before it could assemble.
    pub fn full_order(&self) -> Vec<StrategyKind> {
        let named = self.order.is_empty() || self.order.contains(&StrategyKind::Assembled);
        let mut out: Vec<StrategyKind> = Vec::new();
        for k in self
            .order
            .iter()
            .chain(StrategyKind::DEFAULT_ORDER.iter().filter(|k| named || **k != StrategyKind::Assembled))
        {
            if !out.contains(k) {
                out.push(*k);
            }
        }
        if !out.contains(&StrategyKind::Assembled) {
            out.push(StrategyKind::Assembled);
        }
        out
    }
}

/// Which local builder runs a local strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalBuilder {
    /// `docker buildx build` against the local engine.
    Buildx,
    /// The engine's classic builder through the Engine API (no BuildKit, own platform only).
    EngineApi,
}

/// How a QEMU handler will be available for an emulated build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "how")]
pub enum Handler {
    /// Already registered in the kernel under this name.
    Registered { name: String },
    /// archway registers it from this interpreter on the host (it is privileged).
    RegisterFromHost { interpreter: String },
    /// archway registers it from a privileged container of this local image.
    RegisterFromContainer { image: String },
}

/// The chosen way to build one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Strategy {
    /// archway's assembler writes the image (`builder::assemble`).
    Assembled,
    Native {
        builder: LocalBuilder,
    },
    Cross,
    Remote {
        endpoint: String,
    },
    Emulated {
        handler: Handler,
    },
}

impl Strategy {
    pub fn kind(&self) -> StrategyKind {
        match self {
            Strategy::Assembled => StrategyKind::Assembled,
            Strategy::Native { .. } => StrategyKind::Native,
            Strategy::Cross => StrategyKind::Cross,
            Strategy::Remote { .. } => StrategyKind::Remote,
            Strategy::Emulated { .. } => StrategyKind::Emulated,
        }
    }
}

/// A platform with its strategy and the one-line reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub platform: Platform,
    pub strategy: Strategy,
    pub reason: String,
    pub foreign_code: bool,
    /// The RUN that makes code foreign, when there is one.
    pub deciding: Option<Location>,
    /// Why each strategy tried before this one was not taken.
    pub passed_over: Vec<(StrategyKind, String)>,
    /// For `emulated`: the platform QEMU runs when it is not the target's (a stage pinned to
    /// another platform with `--platform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulates: Option<Platform>,
    /// For `assembled`: the stages the local engine builds natively first (a hybrid build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<Hybrid>,
}

/// The part of an assembled platform that the local engine builds: stages on the build
/// platform that the target copies files from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hybrid {
    /// Which builder of the local engine builds them.
    pub builder: LocalBuilder,
    /// The engine's platform: the build platform the stages run on.
    pub platform: Platform,
    pub stages: Vec<crate::dockerfile::EngineStage>,
}

/// A platform this runner cannot build, with every option and how to unblock it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impossible {
    pub platform: Platform,
    pub foreign_code: bool,
    pub deciding: Option<Location>,
    /// Every strategy and why it is unavailable here, in the order tried.
    pub tried: Vec<(StrategyKind, String)>,
    /// What the user can change, most direct first.
    pub fixes: Vec<String>,
}

impl Impossible {
    /// The one-line summary used in tables.
    pub fn reason(&self) -> String {
        format!(
            "no way to build it here: {}",
            self.tried.iter().map(|(k, why)| format!("{k}: {why}")).collect::<Vec<_>>().join("; ")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub platforms: Vec<Result<Planned, Impossible>>,
}

impl Plan {
    pub fn impossible(&self) -> Vec<&Impossible> {
        self.platforms.iter().filter_map(|p| p.as_ref().err()).collect()
    }
    pub fn planned(&self) -> Vec<&Planned> {
        self.platforms.iter().filter_map(|p| p.as_ref().ok()).collect()
    }
}

/// What the runner's local engine can do for builds.
struct Local<'a> {
    /// The engine's platform, if an engine answers.
    engine: Option<&'a Platform>,
    /// `Some(why)` when buildx cannot be used.
    buildx_unusable: Option<String>,
}

fn local(caps: &Capabilities) -> Local<'_> {
    let engine = caps.engine.as_ref().map(|e| &e.platform);
    let buildx_unusable = match (&caps.engine, &caps.buildx) {
        (None, _) => Some("no Docker engine answers".to_string()),
        (Some(_), None) => Some("the buildx plugin is not installed".to_string()),
        (Some(_), Some(b)) => b.refused.clone(),
    };
    Local { engine, buildx_unusable }
}

/// Platforms an engine's CPU runs without emulation.
fn runs_natively(engine: &Platform, p: &Platform) -> bool {
    if engine == p {
        return true;
    }
    // Every amd64 CPU executes 386 code.
    engine.os == p.os && engine.architecture == "amd64" && p.architecture == "386"
}

fn at(loc: &Location) -> String {
    format!("{}:{}", loc.file, loc.line)
}

/// Decides one platform.
fn decide(p: &Platform, policy: &Policy, caps: &Capabilities, analysis: &Analysis) -> Result<Planned, Impossible> {
    let verdict = analysis.for_platform(p);
    let foreign = verdict.map(|v| v.foreign_code).unwrap_or(true);
    let deciding = verdict.and_then(|v| v.deciding.clone());
    let local = local(caps);
    let mut tried: Vec<(StrategyKind, String)> = Vec::new();
    let mut hybrid = None;
    // Foreign code on another platform than the target's: a stage pinned to it with
    // `--platform` that the engine does not run natively (it needs that platform's QEMU).
    let pinned: Option<Platform> = verdict.and_then(|v| {
        v.foreign_platforms.iter().find(|q| *q != p && local.engine.is_none_or(|e| !runs_natively(e, q))).cloned()
    });
    let pinned_why = |q: &Platform| match &deciding {
        Some(d) => {
            format!("the RUN at {} (stage `{}`) runs on {q}, the platform that stage is pinned to", at(d), d.stage)
        }
        None => format!("a stage pinned to {q} runs code"),
    };

    for kind in policy.full_order() {
        let outcome: Result<(Strategy, String), String> = match kind {
            StrategyKind::Assembled if !policy.not_assemblable.is_empty() => {
                Err(format!("archway's assembler cannot honour {}", names(&policy.not_assemblable)))
            }
            StrategyKind::Assembled => match verdict {
                Some(v) if v.assemblable => Ok((
                    Strategy::Assembled,
                    format!(
                        "no RUN in the stages {p} needs: archway writes the layers itself, no engine or emulation{}",
                        match policy.run_only.as_slice() {
                            [] => String::new(),
                            given =>
                                format!(" ({} only reach RUN steps and buildx's cache: unused here)", names(given)),
                        }
                    ),
                )),
                Some(v) if !v.engine_stages.is_empty() => engine_stages(&v.engine_stages, &local, policy).map(|h| {
                    let reason = hybrid_reason(p, &h);
                    hybrid = Some(h);
                    (Strategy::Assembled, reason)
                }),
                Some(v) => Err(match (&v.not_assemblable, &v.not_assemblable_reason) {
                    (Some(d), Some(why)) => format!("`{}` at {} (stage `{}`): {why}", d.instruction, at(d), d.stage),
                    (Some(d), None) => {
                        format!("`{}` at {} (stage `{}`) cannot be assembled", d.instruction, at(d), d.stage)
                    }
                    (None, Some(why)) => why.clone(),
                    (None, None) => "the Dockerfile holds instructions archway cannot assemble".into(),
                }),
                None => Err(format!("{p} was not analysed")),
            },
            StrategyKind::Native => match local.engine {
                None => Err("no Docker engine answers here".into()),
                Some(e) if !runs_natively(e, p) => Err(format!("the engine runs {e}")),
                Some(e) if let Some(q) = &pinned => Err(format!("{}, and the engine runs {e}", pinned_why(q))),
                Some(e) => match &local.buildx_unusable {
                    None => {
                        Ok((Strategy::Native { builder: LocalBuilder::Buildx }, format!("the local engine runs {e}")))
                    }
                    Some(why) if !policy.buildkit_only.is_empty() => Err(format!(
                        "buildx is unusable ({why}), and the engine's classic builder cannot honour {}",
                        names(&policy.buildkit_only)
                    )),
                    Some(why) => Ok((
                        Strategy::Native { builder: LocalBuilder::EngineApi },
                        format!(
                            "the local engine runs {e}; buildx is unusable ({why}), so its classic builder is used"
                        ),
                    )),
                },
            },
            StrategyKind::Cross => match (local.engine, &local.buildx_unusable) {
                (None, _) => Err("no Docker engine answers here".into()),
                (Some(_), Some(why)) => Err(format!("cross builds need buildx, which is unusable: {why}")),
                (Some(_), None) if let Some(q) = &pinned => Err(pinned_why(q)),
                (Some(_), None) if foreign => Err(match &deciding {
                    Some(d) => format!("the RUN at {} (stage `{}`) would execute {p} code", at(d), d.stage),
                    None => format!("{p} code would run during the build"),
                }),
                (Some(e), None) => Ok((
                    Strategy::Cross,
                    if analysis.stages.iter().any(|s| s.needed && s.runs > 0) {
                        format!("every RUN the target needs runs on the build platform {e}, so no {p} code executes")
                    } else {
                        format!("the stages the target needs have no RUN, so no {p} code executes")
                    },
                )),
            },
            StrategyKind::Remote => {
                let nodes: Vec<_> = caps.nodes.iter().filter(|n| &n.platform == p).collect();
                if nodes.is_empty() {
                    Err(format!("no `--node {p}=…` is configured"))
                } else {
                    // A node that runs the platform natively first; else one the user named for
                    // it anyway, which then emulates on its own side (and the reason says so).
                    let native = nodes.iter().find_map(|n| match &n.reached {
                        Ok(np) if runs_natively(np, p) => Some((n, np)),
                        _ => None,
                    });
                    let other = nodes.iter().find_map(|n| n.reached.as_ref().ok().map(|np| (n, np)));
                    match (native, other) {
                        (Some((n, np)), _) => Ok((
                            Strategy::Remote { endpoint: n.endpoint.clone() },
                            format!("node {} runs {np}", n.endpoint),
                        )),
                        (None, Some((n, np))) => Ok((
                            Strategy::Remote { endpoint: n.endpoint.clone() },
                            format!(
                                "node {} was named for {p}; it runs {np}, so {p} is emulated on that node",
                                n.endpoint
                            ),
                        )),
                        (None, None) => Err(nodes
                            .iter()
                            .map(|n| {
                                format!(
                                    "node {} is unreachable: {}",
                                    n.endpoint,
                                    n.reached.as_ref().err().map(String::as_str).unwrap_or("")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; ")),
                    }
                }
            }
            StrategyKind::Emulated => emulated(pinned.as_ref().unwrap_or(p), policy, caps, &local, foreign),
        };
        match outcome {
            Ok((strategy, reason)) => {
                return Ok(Planned {
                    platform: p.clone(),
                    strategy,
                    reason,
                    foreign_code: foreign,
                    deciding,
                    passed_over: tried,
                    emulates: pinned.filter(|_| kind == StrategyKind::Emulated),
                    hybrid: hybrid.filter(|_| kind == StrategyKind::Assembled),
                });
            }
            Err(why) => tried.push((kind, why)),
        }
    }
    let mut fixes = fixes(p, policy, caps, &local, foreign, deciding.as_ref());
    if local.buildx_unusable.is_some() && !policy.buildkit_only.is_empty() {
        fixes.push(format!(
            "drop {}, or build where buildx works: only BuildKit honours them",
            names(&policy.buildkit_only)
        ));
    }
    // A base image that could not be read is the one thing between this platform and `assembled`.
    if let Some(why) =
        verdict.and_then(|v| v.not_assemblable_reason.as_deref()).filter(|w| w.contains("could not be read"))
    {
        let image = why.split('`').nth(1).unwrap_or("the base image");
        fixes.insert(0, format!("let archway read `{image}` from here (its registry must be reachable; a plan reads only its config), so the platform can be assembled"));
    }
    Err(Impossible { platform: p.clone(), foreign_code: foreign, deciding, tried, fixes })
}

/// How the local engine builds a hybrid build's engine stages, or why it cannot.
fn engine_stages(
    stages: &[crate::dockerfile::EngineStage],
    local: &Local<'_>,
    policy: &Policy,
) -> Result<Hybrid, String> {
    let first = &stages[0];
    let needs = format!(
        "stage `{}` ({} at {}) runs code, so an engine must build it on the build platform",
        first.name,
        first.deciding.instruction.split_whitespace().next().unwrap_or("RUN"),
        at(&first.deciding)
    );
    match (local.engine, &local.buildx_unusable) {
        (None, _) => Err(format!("{needs}, and no Docker engine answers here")),
        (Some(e), None) => Ok(Hybrid { builder: LocalBuilder::Buildx, platform: e.clone(), stages: stages.to_vec() }),
        (Some(_), Some(why)) if !policy.buildkit_only.is_empty() => Err(format!(
            "{needs}; buildx is unusable ({why}), and the engine's classic builder cannot honour {}",
            names(&policy.buildkit_only)
        )),
        (Some(e), Some(why)) => match stages.iter().find_map(|s| s.buildkit_only.as_ref()) {
            Some(b) => Err(format!(
                "{needs}; buildx is unusable ({why}), and the engine's classic builder cannot run `{}` at {} (only BuildKit can)",
                b.instruction,
                at(b)
            )),
            None => Ok(Hybrid { builder: LocalBuilder::EngineApi, platform: e.clone(), stages: stages.to_vec() }),
        },
    }
}

/// The one line that explains a hybrid plan.
fn hybrid_reason(p: &Platform, h: &Hybrid) -> String {
    let names = h.stages.iter().map(|s| format!("`{}` ({})", s.name, at(&s.deciding))).collect::<Vec<_>>();
    let builder = match h.builder {
        LocalBuilder::Buildx => "buildx",
        LocalBuilder::EngineApi => "the engine's classic builder",
    };
    let how_often = if h.stages.iter().all(|s| !s.per_target) { "once for all platforms" } else { "per platform" };
    format!(
        "stage {} runs natively on {} with {builder}, {how_often}; archway assembles the rest of {p} — no emulation",
        names.join(", "),
        h.platform
    )
}

fn emulated(
    p: &Platform,
    policy: &Policy,
    caps: &Capabilities,
    local: &Local<'_>,
    foreign: bool,
) -> Result<(Strategy, String), String> {
    if policy.no_emulation {
        return Err("`--no-emulation` is set".into());
    }
    if local.engine.is_none() {
        return Err("no Docker engine answers here".into());
    }
    if !foreign {
        return Err(format!("no {p} code runs, so there is nothing to emulate"));
    }
    let handler = handler(p, policy, caps);
    match (&local.buildx_unusable, handler) {
        (None, h) => h,
        (Some(why), Ok(_)) => Err(format!("emulated builds need buildx, which is unusable: {why}")),
        (Some(why), Err(h)) => Err(format!("emulated builds need buildx, which is unusable: {why}; and {h}")),
    }
}

/// How a QEMU handler for `p` will be there: registered already, or registered by archway.
fn handler(p: &Platform, policy: &Policy, caps: &Capabilities) -> Result<(Strategy, String), String> {
    if let Some(h) = caps.handler_for(p) {
        if h.usable_in_containers {
            let flags = if h.flags.is_empty() { String::new() } else { format!(", flags {}", h.flags) };
            return Ok((
                Strategy::Emulated { handler: Handler::Registered { name: h.name.clone() } },
                format!("QEMU handler `{}` is registered ({}{flags})", h.name, h.interpreter),
            ));
        }
        return Err(format!(
            "QEMU handler `{}` is registered without the F flag and its interpreter `{}` is not visible inside build containers",
            h.name, h.interpreter
        ));
    }
    if policy.binfmt == BinfmtPolicy::Never {
        return Err(format!("no QEMU handler for {p} is registered, and `--binfmt never` forbids registering one"));
    }
    if caps.privilege.can_register_binfmt()
        && let Some(q) = caps.qemu.iter().find(|q| &q.platform == p)
    {
        return Ok((
            Strategy::Emulated { handler: Handler::RegisterFromHost { interpreter: q.path.clone() } },
            format!("no QEMU handler for {p} is registered; archway will register `{}` (it is privileged)", q.path),
        ));
    }
    if let Some(e) = &caps.engine
        && e.accepts_privileged == Some(true)
        && let Some(image) = e.local_images.iter().find(|i| i.contains("archway"))
    {
        let why = if caps.in_container && !caps.privilege.binfmt_mounted {
            format!(
                "binfmt_misc is not visible in this container; a privileged container of `{image}` will use the host's QEMU handler for {p}, or register one if there is none"
            )
        } else {
            format!(
                "no QEMU handler for {p} is registered; archway will register one from a privileged container of `{image}`"
            )
        };
        return Ok((Strategy::Emulated { handler: Handler::RegisterFromContainer { image: image.clone() } }, why));
    }
    let mut reasons = Vec::new();
    if !caps.privilege.can_register_binfmt() {
        reasons.push(if caps.privilege.cap_sys_admin {
            "binfmt_misc is not writable here".to_string()
        } else {
            "archway is not privileged (no CAP_SYS_ADMIN)".to_string()
        });
    } else {
        reasons.push(format!("no qemu-user-static interpreter for {p} is installed"));
    }
    match caps.engine.as_ref().map(|e| e.accepts_privileged) {
        Some(Some(false)) => reasons.push("the engine refuses privileged containers".into()),
        Some(None) => reasons.push("no local image to run a privileged helper from".into()),
        _ => reasons.push("archway's own image is not present in the engine".into()),
    }
    Err(format!("no QEMU handler for {p} is registered, and archway cannot register one: {}", reasons.join(", and ")))
}

fn fixes(
    p: &Platform,
    policy: &Policy,
    caps: &Capabilities,
    local: &Local<'_>,
    foreign: bool,
    deciding: Option<&Location>,
) -> Vec<String> {
    let mut out = Vec::new();
    if local.engine.is_none() {
        out.push("start a Docker engine here, or point `DOCKER_HOST` at one".to_string());
    }
    if foreign {
        match deciding {
            Some(d) => out.push(format!(
                "move the RUN at {} into a `FROM --platform=$BUILDPLATFORM` stage and cross-compile for `$TARGETPLATFORM`, so no {p} code runs",
                at(d)
            )),
            None => out.push(format!("build in a `FROM --platform=$BUILDPLATFORM` stage so no {p} code runs")),
        }
    }
    out.push(format!("add `--node {p}=tcp://HOST:2376`: a Docker engine on {} hardware", p.architecture));
    if foreign {
        if policy.no_emulation {
            out.push("drop `--no-emulation` to allow QEMU".into());
        } else if policy.binfmt == BinfmtPolicy::Never {
            out.push(format!("allow archway to register QEMU (`--binfmt auto`), or register it yourself before this step (`qemu-{}` in binfmt_misc)", qemu_name(p)));
        } else {
            let bitbucket =
                caps.engine.as_ref().is_some_and(|e| e.authorization_plugins.iter().any(|a| a == "pipelines"));
            if bitbucket {
                out.push("enable privileged mode so archway can register QEMU (Bitbucket: runtime v3, `runtime: cloud: version: \"3\"` with a self-hosted or privileged-capable step)".into());
            } else {
                out.push("enable privileged mode so archway can register QEMU (GitHub/GitLab: a privileged Docker service; Bitbucket: runtime v3)".into());
            }
        }
    }
    out
}

/// The name QEMU uses for an architecture (`aarch64` for arm64).
pub fn qemu_name(p: &Platform) -> &'static str {
    Arch::of(p).map_or("unknown", |a| a.qemu)
}

/// Plans every platform. Pure.
pub fn plan(platforms: &[Platform], policy: &Policy, caps: &Capabilities, analysis: &Analysis) -> Plan {
    Plan { platforms: platforms.iter().map(|p| decide(p, policy, caps, analysis)).collect() }
}

#[cfg(test)]
mod tests {
    //! The planner's table: recorded runner capabilities (this lab, GitHub, GitLab, Bitbucket's
    //! default runtime and runtime v3, an arm64 runner, remote nodes) × Dockerfile verdicts ×
    //! policies → the strategy chosen, or the reason none works.

    use super::*;
    use crate::dockerfile::{EngineStage, PlatformAnalysis, Stage};
    use crate::probe::{BinfmtEntry, BuildxInfo, Engine, Node, Privilege, QemuInterpreter};

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    fn handler(name: &str, platforms: &[&str], flags: &str, usable: bool) -> BinfmtEntry {
        BinfmtEntry {
            name: name.into(),
            enabled: true,
            interpreter: format!("/usr/libexec/qemu-binfmt/{}-binfmt-P", name.trim_start_matches("qemu-")),
            flags: flags.into(),
            offset: 0,
            magic: String::new(),
            mask: String::new(),
            platforms: platforms.iter().map(|x| p(x)).collect(),
            usable_in_containers: usable,
        }
    }

    fn engine(platform: &str) -> Engine {
        Engine {
            endpoint: "unix:///var/run/docker.sock".into(),
            version: "26.1.5".into(),
            platform: p(platform),
            containerd_store: true,
            authorization_plugins: vec![],
            accepts_privileged: Some(true),
            local_images: vec![],
        }
    }

    fn buildx(platforms: &[&str]) -> BuildxInfo {
        BuildxInfo {
            version: "0.13.1".into(),
            builder: "default".into(),
            driver: "docker".into(),
            platforms: platforms.iter().map(|x| p(x)).collect(),
            refused: None,
        }
    }

    const PRIVILEGED: Privilege = Privilege {
        cap_sys_admin: true,
        binfmt_mounted: true,
        binfmt_mountable: false,
        binfmt_register_writable: true,
    };
    const UNPRIVILEGED: Privilege = Privilege {
        cap_sys_admin: false,
        binfmt_mounted: false,
        binfmt_mountable: false,
        binfmt_register_writable: false,
    };

    fn qemu(platforms: &[&str]) -> Vec<QemuInterpreter> {
        platforms
            .iter()
            .map(|x| QemuInterpreter { platform: p(x), path: format!("/usr/bin/qemu-{}-static", qemu_name(&p(x))) })
            .collect()
    }

    /// This lab: root, amd64 engine with buildx, QEMU handlers registered with F.
    fn lab() -> Capabilities {
        Capabilities {
            host: p("linux/amd64"),
            in_container: false,
            privilege: PRIVILEGED,
            binfmt: vec![
                handler("qemu-aarch64", &["linux/arm64"], "OCF", true),
                handler("qemu-arm", &["linux/arm/v7", "linux/arm/v6"], "OCF", true),
                handler("qemu-riscv64", &["linux/riscv64"], "OCF", true),
            ],
            engine: Some(engine("linux/amd64")),
            buildx: Some(buildx(&["linux/amd64", "linux/arm64", "linux/arm/v7"])),
            nodes: vec![],
            qemu: qemu(&["linux/arm64", "linux/arm/v7", "linux/riscv64", "linux/s390x", "linux/ppc64le"]),
        }
    }

    /// The lab with no handler registered (binfmt_misc empty), still privileged.
    #[test]
    fn several_platforms_in_one_buildx_invocation_need_more_than_the_classic_store() {
        let mut caps = lab();
        assert!(caps.buildx_multi_platform(), "the docker driver over the containerd store");
        caps.engine.as_mut().unwrap().containerd_store = false;
        assert!(!caps.buildx_multi_platform(), "buildx refuses it with the docker driver over the classic store");
        caps.buildx.as_mut().unwrap().driver = "docker-container".into();
        assert!(caps.buildx_multi_platform());
        caps.buildx = None;
        assert!(!caps.buildx_multi_platform());
    }

    fn lab_no_handlers() -> Capabilities {
        Capabilities { binfmt: vec![], ..lab() }
    }

    /// A GitHub-hosted runner, archway as a container action: the host's engine via the socket,
    /// no handlers (no setup-qemu), not privileged, but the engine accepts privileged
    /// containers and archway's own image is present.
    fn github_container_action() -> Capabilities {
        let mut e = engine("linux/amd64");
        e.local_images = vec!["ghcr.io/archway-build/archway:1".into()];
        Capabilities {
            host: p("linux/amd64"),
            in_container: true,
            privilege: UNPRIVILEGED,
            binfmt: vec![],
            engine: Some(e),
            buildx: Some(buildx(&["linux/amd64", "linux/386"])),
            nodes: vec![],
            qemu: vec![],
        }
    }

    /// Bitbucket's default runtime: unprivileged, no binfmt_misc, an engine whose
    /// authorization plugin `pipelines` refuses privileged containers, BuildKit and --platform.
    fn bitbucket_default() -> Capabilities {
        let mut e = engine("linux/amd64");
        e.authorization_plugins = vec!["pipelines".into()];
        e.accepts_privileged = Some(false);
        e.containerd_store = false;
        let mut b = buildx(&["linux/amd64"]);
        b.refused = Some("the Docker engine's authorization plugin `pipelines` refuses BuildKit".into());
        Capabilities {
            host: p("linux/amd64"),
            in_container: true,
            privilege: UNPRIVILEGED,
            binfmt: vec![],
            engine: Some(e),
            buildx: Some(b),
            nodes: vec![],
            qemu: qemu(&["linux/arm64", "linux/arm/v7"]),
        }
    }

    /// Bitbucket runtime v3 with privileged mode: like the lab, without handlers.
    fn bitbucket_v3() -> Capabilities {
        Capabilities { in_container: true, ..lab_no_handlers() }
    }

    /// A native arm64 runner (GitHub `ubuntu-24.04-arm`, GitLab `saas-linux-small-arm64`).
    fn arm64_runner() -> Capabilities {
        Capabilities {
            host: p("linux/arm64"),
            engine: Some(engine("linux/arm64")),
            buildx: Some(buildx(&["linux/arm64", "linux/arm/v7"])),
            binfmt: vec![],
            privilege: UNPRIVILEGED,
            ..lab()
        }
    }

    fn no_engine() -> Capabilities {
        Capabilities { engine: None, buildx: None, ..lab() }
    }

    fn no_buildx() -> Capabilities {
        Capabilities { buildx: None, ..lab() }
    }

    fn with_node(mut c: Capabilities, platform: &str, reached: Result<&str, &str>) -> Capabilities {
        c.nodes.push(Node {
            platform: p(platform),
            endpoint: "tcp://arm-builder:2376".into(),
            reached: reached.map(p).map_err(String::from),
            containerd_store: Some(true),
        });
        c
    }

    fn stage(name: &str, runs: usize) -> Stage {
        Stage { name: name.into(), base: "img".into(), platform_flag: None, line: 1, runs, needed: true }
    }

    /// Every non-build platform runs the RUN at Dockerfile:14.
    fn foreign(platforms: &[&str]) -> Analysis {
        Analysis {
            stages: vec![stage("final", 1)],
            target: "final".into(),
            per_platform: platforms
                .iter()
                .map(|x| {
                    let is_build = *x == "linux/amd64";
                    PlatformAnalysis {
                        platform: p(x),
                        foreign_code: !is_build,
                        deciding: (!is_build).then(run_location),
                        foreign_platforms: if is_build { vec![] } else { vec![p(x)] },
                        assemblable: false,
                        not_assemblable: Some(run_location()),
                        not_assemblable_reason: Some("RUN executes code, which needs a builder".into()),
                        engine_stages: vec![],
                    }
                })
                .collect(),
            unknowns: vec![],
        }
    }

    fn run_location() -> Location {
        Location { file: "Dockerfile".into(), line: 14, stage: "final".into(), instruction: "RUN make".into() }
    }

    /// A cross-compiling Dockerfile: no foreign code on any platform, but a RUN in the
    /// `$BUILDPLATFORM` stage (line 3), so not assemblable.
    fn crossable(platforms: &[&str]) -> Analysis {
        Analysis {
            stages: vec![stage("build", 2), Stage { runs: 0, ..stage("final", 0) }],
            target: "final".into(),
            per_platform: platforms
                .iter()
                .map(|x| PlatformAnalysis {
                    platform: p(x),
                    foreign_code: false,
                    deciding: None,
                    foreign_platforms: vec![],
                    assemblable: false,
                    not_assemblable: Some(Location {
                        file: "Dockerfile".into(),
                        line: 3,
                        stage: "build".into(),
                        instruction: "RUN go build".into(),
                    }),
                    not_assemblable_reason: Some("RUN executes code, which needs a builder".into()),
                    engine_stages: vec![EngineStage {
                        name: "build".into(),
                        line: 1,
                        stages: vec!["build".into()],
                        per_target: true,
                        deciding: Location {
                            file: "Dockerfile".into(),
                            line: 3,
                            stage: "build".into(),
                            instruction: "RUN go build".into(),
                        },
                        reason: "RUN executes code, which needs a builder".into(),
                        buildkit_only: None,
                    }],
                })
                .collect(),
            unknowns: vec![],
        }
    }

    /// Cross-compiling with a `RUN --mount` (line 3) in the build stage: only BuildKit runs it.
    fn crossable_mount(platforms: &[&str]) -> Analysis {
        let mut a = crossable(platforms);
        for v in &mut a.per_platform {
            for e in &mut v.engine_stages {
                e.buildkit_only = Some(e.deciding.clone());
            }
        }
        a
    }

    /// No RUN at all (`FROM scratch` + COPY): assemblable.
    fn no_run(platforms: &[&str]) -> Analysis {
        let mut a = Analysis { stages: vec![stage("final", 0)], ..crossable(platforms) };
        for v in &mut a.per_platform {
            v.assemblable = true;
            v.not_assemblable = None;
            v.not_assemblable_reason = None;
        }
        a
    }

    /// A tools stage pinned to linux/arm64 (`--platform=$TOOLS_PLATFORM`) runs a RUN (line 14)
    /// whatever the target: foreign code on arm64 for every platform.
    fn pinned_tools(platforms: &[&str]) -> Analysis {
        let mut a = foreign(platforms);
        for v in &mut a.per_platform {
            v.foreign_code = true;
            v.deciding = Some(run_location());
            v.foreign_platforms = vec![p("linux/arm64")];
        }
        a
    }

    /// On an arm64 runner, amd64 is the foreign one.
    fn foreign_on_arm64(platforms: &[&str]) -> Analysis {
        let mut a = foreign(platforms);
        for v in &mut a.per_platform {
            v.foreign_code = v.platform != p("linux/arm64");
            if !v.foreign_code {
                v.deciding = None;
            } else if v.deciding.is_none() {
                v.deciding = Some(run_location());
            }
        }
        a
    }

    fn policy() -> Policy {
        Policy::default()
    }
    /// `--prefer native`: the order archway had before it could assemble.
    fn classic() -> Policy {
        prefer(&[StrategyKind::Native])
    }
    fn no_emulation() -> Policy {
        Policy { no_emulation: true, ..Policy::default() }
    }
    fn binfmt_never() -> Policy {
        Policy { binfmt: BinfmtPolicy::Never, ..Policy::default() }
    }
    fn prefer(kinds: &[StrategyKind]) -> Policy {
        Policy { order: kinds.to_vec(), ..Policy::default() }
    }

    /// Expected outcome: a strategy kind (with a word the reason must hold), or impossible
    /// (with a word a fix must hold).
    enum Want {
        Chooses(StrategyKind, &'static str),
        Refuses(&'static str),
    }
    use Want::*;

    #[test]
    fn table() {
        const ALL: &[&str] =
            &["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/riscv64", "linux/386", "linux/s390x"];
        #[rustfmt::skip]
        let cases: Vec<(&str, Capabilities, Analysis, Policy, &str, Want)> = vec![
            // This lab.
            ("lab amd64 native", lab(), foreign(ALL), policy(), "linux/amd64", Chooses(StrategyKind::Native, "engine runs linux/amd64")),
            ("lab 386 runs natively on amd64", lab(), foreign(ALL), policy(), "linux/386", Chooses(StrategyKind::Native, "linux/amd64")),
            ("lab arm64 RUN → emulated, handler registered", lab(), foreign(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Emulated, "qemu-aarch64")),
            ("lab arm/v7 RUN → emulated", lab(), foreign(ALL), policy(), "linux/arm/v7", Chooses(StrategyKind::Emulated, "qemu-arm")),
            ("lab riscv64 RUN → emulated", lab(), foreign(ALL), policy(), "linux/riscv64", Chooses(StrategyKind::Emulated, "qemu-riscv64")),
            ("lab s390x: no handler, archway registers it", lab(), foreign(ALL), policy(), "linux/s390x", Chooses(StrategyKind::Emulated, "archway will register `/usr/bin/qemu-s390x-static`")),
            ("--prefer native: lab arm64 cross-compiled → cross", lab(), crossable(ALL), classic(), "linux/arm64", Chooses(StrategyKind::Cross, "runs on the build platform")),
            ("lab arm/v7 no RUN → assembled", lab(), no_run(ALL), policy(), "linux/arm/v7", Chooses(StrategyKind::Assembled, "no RUN in the stages linux/arm/v7 needs")),
            ("lab amd64 no RUN → assembled, even natively", lab(), no_run(ALL), policy(), "linux/amd64", Chooses(StrategyKind::Assembled, "no engine or emulation")),
            ("lab --prefer native, no RUN, amd64 → native as before", lab(), no_run(ALL), prefer(&[StrategyKind::Native]), "linux/amd64", Chooses(StrategyKind::Native, "engine runs linux/amd64")),
            ("lab --prefer native, no RUN, arm/v7 → cross as before", lab(), no_run(ALL), prefer(&[StrategyKind::Native]), "linux/arm/v7", Chooses(StrategyKind::Cross, "have no RUN")),
            ("lab --prefer cross, no RUN → cross", lab(), no_run(ALL), prefer(&[StrategyKind::Cross]), "linux/arm64", Chooses(StrategyKind::Cross, "")),
            ("lab --prefer emulated, no RUN → cross (assembled comes last when a preference leaves it out)", lab(), no_run(ALL), prefer(&[StrategyKind::Emulated]), "linux/arm64", Chooses(StrategyKind::Cross, "")),
            ("--prefer native: lab RUN in the build stage → not assembled, cross", lab(), crossable(ALL), classic(), "linux/arm64", Chooses(StrategyKind::Cross, "")),
            ("--prefer native: lab amd64 cross-compiled still native first", lab(), crossable(ALL), classic(), "linux/amd64", Chooses(StrategyKind::Native, "linux/amd64")),
            ("lab --no-emulation arm64 RUN → impossible", lab(), foreign(ALL), no_emulation(), "linux/arm64", Refuses("drop `--no-emulation`")),
            ("lab --no-emulation arm64 cross-compiled → hybrid assembled, nothing emulated", lab(), crossable(ALL), no_emulation(), "linux/arm64", Chooses(StrategyKind::Assembled, "no emulation")),
            ("lab --no-emulation amd64 native", lab(), foreign(ALL), no_emulation(), "linux/amd64", Chooses(StrategyKind::Native, "")),
            ("lab --binfmt never, handler exists → emulated", lab(), foreign(ALL), binfmt_never(), "linux/arm64", Chooses(StrategyKind::Emulated, "qemu-aarch64")),
            ("lab --binfmt never, no handler → impossible", lab_no_handlers(), foreign(ALL), binfmt_never(), "linux/arm64", Refuses("--binfmt auto")),
            ("lab no handlers, privileged → registers", lab_no_handlers(), foreign(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Emulated, "archway will register `/usr/bin/qemu-aarch64-static`")),
            ("--prefer native: lab no handlers, cross → no registration needed", lab_no_handlers(), crossable(ALL), classic(), "linux/arm64", Chooses(StrategyKind::Cross, "")),
            ("lab --prefer emulated, cross-compiled → still cross (nothing to emulate)", lab(), crossable(ALL), prefer(&[StrategyKind::Emulated]), "linux/arm64", Chooses(StrategyKind::Cross, "")),
            ("lab --prefer emulated, foreign → emulated", lab(), foreign(ALL), prefer(&[StrategyKind::Emulated]), "linux/arm64", Chooses(StrategyKind::Emulated, "")),
            ("lab handler without F, interpreter missing → unusable, registers none (exists)", Capabilities { binfmt: vec![handler("qemu-aarch64", &["linux/arm64"], "", false)], ..lab() }, foreign(ALL), policy(), "linux/arm64", Refuses("FROM --platform=$BUILDPLATFORM")),
            // Remote nodes.
            ("remote node for arm64 beats emulation", with_node(lab(), "linux/arm64", Ok("linux/arm64")), foreign(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Remote, "node tcp://arm-builder:2376 runs linux/arm64")),
            ("--prefer native: remote node, but cross comes first", with_node(lab(), "linux/arm64", Ok("linux/arm64")), crossable(ALL), classic(), "linux/arm64", Chooses(StrategyKind::Cross, "")),
            ("--prefer remote beats cross", with_node(lab(), "linux/arm64", Ok("linux/arm64")), crossable(ALL), prefer(&[StrategyKind::Remote]), "linux/arm64", Chooses(StrategyKind::Remote, "")),
            ("unreachable node → falls to emulation", with_node(lab(), "linux/arm64", Err("connection refused")), foreign(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Emulated, "")),
            ("node of another platform, named by the user, emulates there", with_node(lab_no_handlers(), "linux/arm64", Ok("linux/amd64")), foreign(ALL), binfmt_never(), "linux/arm64", Chooses(StrategyKind::Remote, "emulated on that node")),
            ("unreachable node and no emulation → impossible naming the node", with_node(lab(), "linux/arm64", Err("connection refused")), foreign(ALL), no_emulation(), "linux/arm64", Refuses("--node linux/arm64=")),
            ("node for arm64 does not serve arm/v7", with_node(lab(), "linux/arm64", Ok("linux/arm64")), foreign(ALL), no_emulation(), "linux/arm/v7", Refuses("--node linux/arm/v7=")),
            ("--prefer remote with no node → native", lab(), foreign(ALL), prefer(&[StrategyKind::Remote]), "linux/amd64", Chooses(StrategyKind::Native, "")),
            // GitHub container action.
            ("github amd64 native", github_container_action(), foreign(ALL), policy(), "linux/amd64", Chooses(StrategyKind::Native, "")),
            ("--prefer native: github arm64 cross", github_container_action(), crossable(ALL), classic(), "linux/arm64", Chooses(StrategyKind::Cross, "")),
            ("github arm64 RUN → register via own image", github_container_action(), foreign(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Emulated, "privileged container of `ghcr.io/archway-build/archway:1`")),
            ("github --binfmt never → impossible", github_container_action(), foreign(ALL), binfmt_never(), "linux/arm64", Refuses("--binfmt auto")),
            ("github own image absent → impossible", Capabilities { engine: Some(engine("linux/amd64")), ..github_container_action() }, foreign(ALL), policy(), "linux/arm64", Refuses("enable privileged mode")),
            // Bitbucket default runtime.
            ("bitbucket amd64 → engine API classic builder", bitbucket_default(), foreign(ALL), policy(), "linux/amd64", Chooses(StrategyKind::Native, "classic builder")),
            ("bitbucket arm64 RUN → impossible", bitbucket_default(), foreign(ALL), policy(), "linux/arm64", Refuses("runtime v3")),
            ("--prefer native: bitbucket arm64 cross needs buildx → hybrid at the end", bitbucket_default(), crossable(ALL), classic(), "linux/arm64", Chooses(StrategyKind::Assembled, "classic builder")),
            ("bitbucket arm64 no RUN → assembled", bitbucket_default(), no_run(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Assembled, "no engine or emulation")),
            ("bitbucket arm/v7 no RUN, --prefer native → still assembled at the end", bitbucket_default(), no_run(ALL), prefer(&[StrategyKind::Native]), "linux/arm/v7", Chooses(StrategyKind::Assembled, "")),
            ("bitbucket arm64 via remote node", with_node(bitbucket_default(), "linux/arm64", Ok("linux/arm64")), foreign(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Remote, "")),
            ("bitbucket arm/v7 via an arm64 node: emulated on that node", with_node(bitbucket_default(), "linux/arm/v7", Ok("linux/arm64")), foreign(ALL), policy(), "linux/arm/v7", Chooses(StrategyKind::Remote, "runs linux/arm64")),
            ("bitbucket arm/v7 with an unreachable node → impossible", with_node(bitbucket_default(), "linux/arm/v7", Err("timed out")), foreign(ALL), policy(), "linux/arm/v7", Refuses("FROM --platform=$BUILDPLATFORM")),
            // Bitbucket runtime v3 (privileged).
            ("bitbucket v3 arm64 RUN → registers handler", bitbucket_v3(), foreign(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Emulated, "archway will register")),
            ("--prefer native: bitbucket v3 arm64 cross", bitbucket_v3(), crossable(ALL), classic(), "linux/arm64", Chooses(StrategyKind::Cross, "")),
            // Native arm64 runner.
            ("arm64 runner arm64 native", arm64_runner(), foreign_on_arm64(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Native, "engine runs linux/arm64")),
            ("arm64 runner amd64 RUN → emulation impossible, unprivileged", Capabilities { qemu: vec![], ..arm64_runner() }, foreign_on_arm64(ALL), policy(), "linux/amd64", Refuses("enable privileged mode")),
            ("--prefer native: arm64 runner amd64 cross", arm64_runner(), crossable(ALL), classic(), "linux/amd64", Chooses(StrategyKind::Cross, "linux/arm64")),
            ("--prefer native: arm64 runner does not treat 386 as native", arm64_runner(), crossable(ALL), classic(), "linux/386", Chooses(StrategyKind::Cross, "")),
            // No engine, no buildx.
            ("no engine → impossible with engine fix", no_engine(), foreign(ALL), policy(), "linux/amd64", Refuses("DOCKER_HOST")),
            ("no engine, node for arm64 → remote", with_node(no_engine(), "linux/arm64", Ok("linux/arm64")), foreign(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Remote, "")),
            ("no buildx amd64 → classic builder", no_buildx(), foreign(ALL), policy(), "linux/amd64", Chooses(StrategyKind::Native, "buildx plugin is not installed")),
            ("--prefer native: no buildx arm64 cross → hybrid at the end", no_buildx(), crossable(ALL), classic(), "linux/arm64", Chooses(StrategyKind::Assembled, "classic builder")),
            ("no engine, no RUN → assembled", no_engine(), no_run(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Assembled, "")),
            ("no engine, RUN → impossible", no_engine(), foreign(ALL), policy(), "linux/riscv64", Refuses("DOCKER_HOST")),
            // A stage pinned to another platform than the target's.
            ("lab amd64 with a tools stage pinned to arm64 → emulated with arm64's handler", lab(), pinned_tools(ALL), policy(), "linux/amd64", Chooses(StrategyKind::Emulated, "qemu-aarch64")),
            ("lab amd64, tools pinned to arm64, no handler, never register → impossible", lab_no_handlers(), pinned_tools(ALL), binfmt_never(), "linux/amd64", Refuses("--binfmt auto")),
            ("arm64 runner, tools pinned to arm64 → native for arm64", arm64_runner(), pinned_tools(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Native, "")),
            // Hybrid: the build-platform stage on the engine, the rest assembled.
            ("lab arm64 cross-compiled → hybrid, build stage on buildx", lab(), crossable(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Assembled, "stage `build` (Dockerfile:3) runs natively on linux/amd64 with buildx, per platform")),
            ("lab amd64 cross-compiled → hybrid too", lab(), crossable(ALL), policy(), "linux/amd64", Chooses(StrategyKind::Assembled, "buildx")),
            ("bitbucket arm64 cross-compiled → hybrid on the classic builder", bitbucket_default(), crossable(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Assembled, "the engine's classic builder")),
            ("bitbucket arm/v7 cross-compiled, --prefer native → hybrid at the end", bitbucket_default(), crossable(ALL), classic(), "linux/arm/v7", Chooses(StrategyKind::Assembled, "classic builder")),
            ("no buildx arm64 cross-compiled → hybrid on the classic builder", no_buildx(), crossable(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Assembled, "classic builder")),
            ("remote node, but hybrid comes first", with_node(lab(), "linux/arm64", Ok("linux/arm64")), crossable(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Assembled, "")),
            ("bitbucket arm64 cross-compiled with RUN --mount → impossible, BuildKit named", bitbucket_default(), crossable_mount(ALL), policy(), "linux/arm64", Refuses("--node linux/arm64=")),
            ("lab arm64 cross-compiled with RUN --mount → hybrid on buildx", lab(), crossable_mount(ALL), policy(), "linux/arm64", Chooses(StrategyKind::Assembled, "buildx")),
            ("no engine, cross-compiled → impossible, the engine is named", no_engine(), crossable(ALL), policy(), "linux/arm64", Refuses("DOCKER_HOST")),
        ];
        assert!(cases.len() >= 40, "{} cases", cases.len());
        let mut failures = Vec::new();
        for (name, caps, analysis, policy, platform, want) in cases {
            let plan = plan(&[p(platform)], &policy, &caps, &analysis);
            let got = &plan.platforms[0];
            let ok = match (&want, got) {
                (Chooses(kind, word), Ok(planned)) => planned.strategy.kind() == *kind && planned.reason.contains(word),
                (Refuses(word), Err(imp)) => imp.fixes.iter().any(|f| f.contains(word)),
                _ => false,
            };
            if !ok {
                failures.push(format!("{name}: got {got:#?}"));
            }
        }
        assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n\n"));
    }

    #[test]
    fn impossible_lists_every_option_with_its_reason() {
        let plan = plan(&[p("linux/arm64")], &policy(), &bitbucket_default(), &foreign(&["linux/arm64"]));
        let imp = &plan.impossible()[0];
        let kinds: Vec<StrategyKind> = imp.tried.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, StrategyKind::DEFAULT_ORDER);
        assert_eq!(
            imp.tried[0].1,
            "`RUN make` at Dockerfile:14 (stage `final`): RUN executes code, which needs a builder"
        );
        assert_eq!(imp.tried[1].1, "the engine runs linux/amd64");
        assert!(imp.tried[2].1.contains("cross builds need buildx"), "{:?}", imp.tried);
        assert_eq!(imp.tried[3].1, "no `--node linux/arm64=…` is configured");
        assert!(
            imp.tried[4].1.contains("not privileged") && imp.tried[4].1.contains("refuses privileged containers"),
            "{:?}",
            imp.tried
        );
        assert_eq!(
            imp.fixes[0],
            "move the RUN at Dockerfile:14 into a `FROM --platform=$BUILDPLATFORM` stage and cross-compile for `$TARGETPLATFORM`, so no linux/arm64 code runs"
        );
    }

    #[test]
    fn reasons_are_one_line_and_passed_over_options_are_kept() {
        let plan =
            plan(&[p("linux/amd64"), p("linux/arm64")], &policy(), &lab(), &foreign(&["linux/amd64", "linux/arm64"]));
        for pl in plan.planned() {
            assert!(!pl.reason.contains('\n'));
        }
        let arm = plan.planned()[1];
        let passed: Vec<StrategyKind> = arm.passed_over.iter().map(|(k, _)| *k).collect();
        assert_eq!(passed, [StrategyKind::Assembled, StrategyKind::Native, StrategyKind::Cross, StrategyKind::Remote]);
        assert!(arm.passed_over[2].1.contains("RUN at Dockerfile:14"));
    }

    #[test]
    fn recorded_bitbucket_default_plans_a_no_run_dockerfile_as_assembled() {
        let caps: Capabilities =
            serde_json::from_str(include_str!("../tests/fixtures/capabilities/bitbucket-default.json")).unwrap();
        let platforms = [p("linux/amd64"), p("linux/arm64")];
        let text = "FROM busybox\nARG TARGETARCH\nCOPY bin/$TARGETARCH/app /usr/local/bin/app\nENTRYPOINT [\"app\"]\n";
        let analysis = crate::dockerfile::analyze(&crate::dockerfile::AnalyzeInput {
            text,
            file: "Dockerfile",
            build_args: &[],
            target: None,
            build_platform: &caps.host,
            platforms: &platforms,
        })
        .unwrap();
        let plan = plan(&platforms, &policy(), &caps, &analysis);
        for planned in plan.planned() {
            assert_eq!(planned.strategy, Strategy::Assembled, "{planned:?}");
        }
        assert_eq!(plan.planned().len(), 2);
        // `--prefer native` gives amd64 the classic builder as before; arm64, impossible before,
        // is still assembled.
        let plan = super::plan(&platforms, &prefer(&[StrategyKind::Native]), &caps, &analysis);
        assert_eq!(plan.planned()[0].strategy, Strategy::Native { builder: LocalBuilder::EngineApi });
        assert_eq!(plan.planned()[1].strategy, Strategy::Assembled);
    }
}
