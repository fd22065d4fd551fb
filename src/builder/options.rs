//! options: docker/build-push-action's build inputs (`cache-from`, `secrets`, `ssh`, …) as
//! buildx takes them, for every buildx invocation archway makes (a platform's build, several
//! platforms at once, a hybrid build's stages).
//!
//! Caches get a scope of their own per invocation, so platforms built apart do not overwrite
//! each other's cache: `type=registry,ref=R:T` becomes `ref=R:T-linux-arm64`, `type=gha`
//! gets `scope=S-linux-arm64` (`S` defaults to `buildkit`, as buildx's), `type=local` reads and
//! writes `DIR/linux-arm64`; other backends (`inline`, `s3`, `azblob`) are passed unchanged.
//!
//! Secret values never appear in an argument: each reaches buildx through the child's
//! environment (`--secret id=ID,env=ARCHWAY_BUILD_SECRET_N`); secret files by their path.

use std::path::PathBuf;

use crate::secret::Secret;

/// The variable that carries the `n`th secret value to a buildx child.
pub const SECRET_VAR: &str = "ARCHWAY_BUILD_SECRET_";

/// A build secret for `RUN --mount=type=secret,id=ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSecret {
    pub id: String,
    pub source: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The value (from the `secrets` input or the variable `secret-envs` names).
    Value(Secret),
    /// A file the user gave (`secret-files`, `--secret id=X,src=PATH`).
    File(PathBuf),
}

/// The build inputs buildx takes besides the Dockerfile, args and target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// buildx cache specs (a bare reference is `type=registry,ref=REF`).
    pub cache_from: Vec<String>,
    pub cache_to: Vec<String>,
    pub no_cache: bool,
    pub no_cache_filters: Vec<String>,
    pub pull: bool,
    pub secrets: Vec<BuildSecret>,
    /// `default`, `ID=PATH[,PATH]`.
    pub ssh: Vec<String>,
    /// `NAME=PATH|URL|docker-image://…`.
    pub build_contexts: Vec<(String, String)>,
    pub shm_size: Option<String>,
    pub ulimits: Vec<String>,
    /// buildx `--attest` specs.
    pub attests: Vec<String>,
    pub cgroup_parent: Option<String>,
    pub add_hosts: Vec<String>,
    pub network: Option<String>,
    pub allow: Vec<String>,
    /// buildx's builder instance (`--builder`).
    pub builder: Option<String>,
    /// A build method other than `build` (`check`, `outline`, …): buildx runs it and builds nothing.
    pub call: Option<String>,
}

impl BuildOptions {
    /// The input names given, as build-push-action spells them.
    pub fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut add = |set: bool, name: &'static str| {
            if set {
                out.push(name)
            }
        };
        add(!self.cache_from.is_empty(), "cache-from");
        add(!self.cache_to.is_empty(), "cache-to");
        add(self.no_cache, "no-cache");
        add(!self.no_cache_filters.is_empty(), "no-cache-filters");
        add(self.pull, "pull");
        add(!self.secrets.is_empty(), "secrets");
        add(!self.ssh.is_empty(), "ssh");
        add(!self.build_contexts.is_empty(), "build-contexts");
        add(self.shm_size.is_some(), "shm-size");
        add(!self.ulimits.is_empty(), "ulimit");
        add(!self.attests.is_empty(), "attests");
        add(self.cgroup_parent.is_some(), "cgroup-parent");
        add(!self.add_hosts.is_empty(), "add-hosts");
        add(self.network.is_some(), "network");
        add(!self.allow.is_empty(), "allow");
        add(self.builder.is_some(), "builder");
        add(self.call.is_some(), "call");
        out
    }

    /// Inputs the engine's classic builder cannot honour (it does `no-cache`, `pull`, `network`
    /// and ignores `cache-from`).
    pub fn buildkit_only(&self) -> Vec<String> {
        const CLASSIC: &[&str] = &["cache-from", "no-cache", "pull", "network"];
        self.given().into_iter().filter(|n| !CLASSIC.contains(n)).map(String::from).collect()
    }

    /// Inputs archway's assembler cannot honour: named contexts (`COPY --from=NAME`), and
    /// attestations (it writes none).
    pub fn not_assemblable(&self) -> Vec<String> {
        self.given().into_iter().filter(|n| matches!(*n, "build-contexts" | "attests")).map(String::from).collect()
    }

    /// Inputs that reach only RUN steps and buildx's cache: an assembled platform (no RUN, no
    /// buildx cache; it reuses identical layers from the registry) has no use for them.
    pub fn run_only(&self) -> Vec<String> {
        const RUN_ONLY: &[&str] = &[
            "cache-to",
            "no-cache",
            "no-cache-filters",
            "secrets",
            "ssh",
            "shm-size",
            "ulimit",
            "cgroup-parent",
            "add-hosts",
            "network",
            "allow",
        ];
        self.given().into_iter().filter(|n| RUN_ONLY.contains(n)).map(String::from).collect()
    }

    /// Whether a cache needs a scope per platform, so each platform gets its own invocation.
    pub fn scoped_cache(&self) -> bool {
        !self.cache_from.is_empty() || !self.cache_to.is_empty()
    }

    /// The buildx arguments (after `build`). `scope`: the cache scope of this invocation (a
    /// platform's slug, a stage's name); `None` passes cache specs unchanged.
    pub fn args(&self, scope: Option<&str>) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |flag: &str, v: String| {
            a.push(flag.into());
            a.push(v);
        };
        if let Some(b) = &self.builder {
            push("--builder", b.clone());
        }
        for c in &self.cache_from {
            push("--cache-from", scoped(c, scope));
        }
        for c in &self.cache_to {
            push("--cache-to", scoped(c, scope));
        }
        for f in &self.no_cache_filters {
            push("--no-cache-filter", f.clone());
        }
        for (n, s) in self.secrets.iter().enumerate() {
            let spec = match &s.source {
                SecretSource::Value(_) => format!("id={},env={SECRET_VAR}{n}", s.id),
                SecretSource::File(p) => format!("id={},src={}", s.id, p.display()),
            };
            push("--secret", spec);
        }
        for s in &self.ssh {
            push("--ssh", s.clone());
        }
        for (n, v) in &self.build_contexts {
            push("--build-context", format!("{n}={v}"));
        }
        if let Some(s) = &self.shm_size {
            push("--shm-size", s.clone());
        }
        for u in &self.ulimits {
            push("--ulimit", u.clone());
        }
        for t in &self.attests {
            push("--attest", t.clone());
        }
        if let Some(c) = &self.cgroup_parent {
            push("--cgroup-parent", c.clone());
        }
        for h in &self.add_hosts {
            push("--add-host", h.clone());
        }
        if let Some(n) = &self.network {
            push("--network", n.clone());
        }
        for e in &self.allow {
            push("--allow", e.clone());
        }
        if self.no_cache {
            a.push("--no-cache".into());
        }
        if self.pull {
            a.push("--pull".into());
        }
        a
    }

    /// The secret values, each with the variable that carries it to a buildx child.
    pub fn secret_env(&self) -> Vec<(String, &Secret)> {
        self.secrets
            .iter()
            .enumerate()
            .filter_map(|(n, s)| match &s.source {
                SecretSource::Value(v) => Some((format!("{SECRET_VAR}{n}"), v)),
                SecretSource::File(_) => None,
            })
            .collect()
    }

    /// Puts the secret values in a buildx child's environment (never in its arguments).
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        for (k, v) in self.secret_env() {
            cmd.env(k, v.expose());
        }
    }

    /// Every secret value, for the log masker.
    pub fn secret_values(&self) -> Vec<Secret> {
        self.secret_env().into_iter().map(|(_, v)| v.clone()).collect()
    }
}

/// `spec` with its cache scoped to `scope` (see the module doc).
pub fn scoped(spec: &str, scope: Option<&str>) -> String {
    let spec = if spec.contains('=') { spec.to_string() } else { format!("type=registry,ref={spec}") };
    let Some(scope) = scope else { return spec };
    let mut parts: Vec<(String, String)> = spec
        .split(',')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (kv.trim().to_string(), String::new()),
        })
        .collect();
    let ty = parts.iter().find(|(k, _)| k == "type").map(|(_, v)| v.clone()).unwrap_or_else(|| "registry".into());
    let set =
        |parts: &mut Vec<(String, String)>, key: &str, f: &dyn Fn(&str) -> String, default: Option<&str>| match parts
            .iter_mut()
            .find(|(k, _)| k == key)
        {
            Some(slot) => slot.1 = f(&slot.1),
            None => {
                if let Some(d) = default {
                    parts.push((key.into(), f(d)));
                }
            }
        };
    match ty.as_str() {
        "registry" => set(&mut parts, "ref", &|r| scoped_ref(r, scope), None),
        "gha" => set(&mut parts, "scope", &|s| format!("{s}-{scope}"), Some("buildkit")),
        "local" => {
            for key in ["src", "dest"] {
                set(&mut parts, key, &|d| format!("{}/{scope}", d.trim_end_matches('/')), None);
            }
        }
        _ => {}
    }
    parts.iter().map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") }).collect::<Vec<_>>().join(",")
}

/// `repo:tag` → `repo:tag-SCOPE`; `repo` → `repo:buildcache-SCOPE`; a digest is kept.
fn scoped_ref(r: &str, scope: &str) -> String {
    if r.contains('@') {
        return r.to_string();
    }
    let name_start = r.rfind('/').map_or(0, |i| i + 1);
    if r[name_start..].contains(':') { format!("{r}-{scope}") } else { format!("{r}:buildcache-{scope}") }
}

/// `docker buildx build --call METHOD` for every platform at once: the method's report
/// (`check` lists the Dockerfile's problems) goes to `sink`; nothing is built or exported.
pub async fn call(
    buildx: &crate::probe::buildx::BuildxProgram,
    spec: &super::BuildSpec,
    platforms: &[crate::platform::Platform],
    sink: super::SharedSink,
) -> Result<(), String> {
    use tokio::io::AsyncBufReadExt as _;
    let method = spec.options.call.clone().unwrap_or_else(|| "build".into());
    let names: Vec<String> = platforms.iter().map(ToString::to_string).collect();
    let mut args: Vec<String> =
        vec!["buildx".into(), "build".into(), "--platform".into(), names.join(","), "--call".into(), method.clone()];
    args.extend(["--file".into(), spec.dockerfile.display().to_string()]);
    for (k, v) in &spec.build_args {
        args.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    if let Some(t) = &spec.target {
        args.extend(["--target".into(), t.clone()]);
    }
    let mut rest = BuildOptions { call: None, ..spec.options.clone() };
    rest.cache_to.clear();
    args.extend(rest.args(None));
    args.push(spec.context.display().to_string());
    let mut cmd = buildx.command(&args);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped());
    cmd.stderr(std::process::Stdio::piped()).env("BUILDKIT_COLORS", "").env("NO_COLOR", "1").kill_on_drop(true);
    spec.options.apply(&mut cmd);
    let mut child =
        cmd.spawn().map_err(|e| format!("cannot start `{}`: {e}", buildx.program_and_args(&args).0.display()))?;
    let pump = |r: Box<dyn tokio::io::AsyncRead + Unpin + Send>, sink: super::SharedSink| {
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(r).lines();
            let mut seen = Vec::new();
            while let Ok(Some(l)) = lines.next_line().await {
                sink(&l);
                seen.push(l);
            }
            seen
        })
    };
    let out = pump(Box::new(child.stdout.take().expect("piped")), sink.clone());
    let err = pump(Box::new(child.stderr.take().expect("piped")), sink);
    let status = child.wait().await.map_err(|e| e.to_string())?;
    let (_, err) = tokio::join!(out, err);
    if status.success() {
        return Ok(());
    }
    let unknown = err.unwrap_or_default().iter().any(|l| l.contains("unknown flag: --call"));
    Err(if unknown {
        format!("this buildx has no `--call` (buildx 0.14 or newer has); `call: {method}` cannot run")
    } else {
        format!("`{} {}` exited with {status}", buildx.docker.display(), args.join(" "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_are_scoped_per_platform_where_the_backend_shares_one() {
        let s = Some("linux-arm64");
        assert_eq!(
            scoped("type=registry,ref=r.io/a/b:buildcache,mode=max", s),
            "type=registry,ref=r.io/a/b:buildcache-linux-arm64,mode=max"
        );
        assert_eq!(scoped("127.0.0.1:5000/a/b", s), "type=registry,ref=127.0.0.1:5000/a/b:buildcache-linux-arm64");
        assert_eq!(scoped("type=gha", s), "type=gha,scope=buildkit-linux-arm64");
        assert_eq!(scoped("type=gha,scope=app,mode=max", s), "type=gha,scope=app-linux-arm64,mode=max");
        assert_eq!(scoped("type=local,dest=/tmp/c/", s), "type=local,dest=/tmp/c/linux-arm64");
        assert_eq!(scoped("type=inline", s), "type=inline");
        assert_eq!(scoped("type=registry,ref=r.io/a/b:c", None), "type=registry,ref=r.io/a/b:c");
        let d = format!("r.io/a/b@sha256:{}", "0".repeat(64));
        assert_eq!(scoped(&format!("type=registry,ref={d}"), s), format!("type=registry,ref={d}"));
    }

    #[test]
    fn secrets_reach_buildx_by_name_never_by_value() {
        let o = BuildOptions {
            secrets: vec![
                BuildSecret { id: "token".into(), source: SecretSource::Value(Secret::new("hunter2")) },
                BuildSecret { id: "npmrc".into(), source: SecretSource::File("/run/npmrc".into()) },
            ],
            ..BuildOptions::default()
        };
        let a = o.args(None);
        assert_eq!(a, ["--secret", "id=token,env=ARCHWAY_BUILD_SECRET_0", "--secret", "id=npmrc,src=/run/npmrc"]);
        assert!(!a.join(" ").contains("hunter2"));
        assert_eq!(
            o.secret_env().iter().map(|(k, v)| (k.as_str(), v.expose())).collect::<Vec<_>>(),
            [("ARCHWAY_BUILD_SECRET_0", "hunter2")]
        );
        assert_eq!(format!("{o:?}").matches("hunter2").count(), 0);
    }

    #[test]
    fn which_builder_honours_what() {
        let o = BuildOptions {
            ssh: vec!["default".into()],
            network: Some("host".into()),
            build_contexts: vec![("src".into(), "../src".into())],
            cache_from: vec!["r/a:c".into()],
            ..BuildOptions::default()
        };
        assert_eq!(o.buildkit_only(), ["ssh", "build-contexts"]);
        assert_eq!(o.not_assemblable(), ["build-contexts"]);
        assert_eq!(o.run_only(), ["ssh", "network"]);
    }
}
