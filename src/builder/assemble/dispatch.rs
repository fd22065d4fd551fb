//! dispatch: runs a Dockerfile's stages for one target platform the way BuildKit's
//! `dockerfile2llb` dispatches them — global ARGs and the automatic platform ARGs, stages the
//! target needs (through FROM, `COPY --from` and base-image ONBUILD triggers), each instruction
//! applied to the stage's filesystem tree and image config — and returns the target stage's
//! layers (base layers as downloaded, new ones as entry lists) and config.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use super::archive;
use super::base;
use super::config::{Image, go_duration, go_list, go_quote_list, go_quote_rune, parse_duration};
use super::copy::{self, Changes, CopyError, CopyOpts};
use super::ignore::Matcher;
use super::layer::{self, Entry};
use super::tree::{Content, Kind, Node, Tree, parent};
use super::{Assembler, BuildError, BuildSpec, LineSink};
use crate::dockerfile::parse::{self, Node as Instr, ShellLex};
use crate::oci::Descriptor;
use crate::platform::Platform;
use crate::reference::Digest;

/// Where one layer of the result comes from.
#[derive(Debug, Clone)]
pub enum LayerSource {
    /// A base image's layer, downloaded to `path`, from repository `from`.
    Base { descriptor: Box<Descriptor>, path: PathBuf, from: Box<crate::reference::Reference> },
    /// A layer the assembler makes.
    New(Arc<Vec<Entry>>),
}

/// A stage once dispatched.
#[derive(Debug, Clone)]
pub struct StageResult {
    pub platform: Platform,
    pub image: Image,
    pub tree: Tree,
    pub layers: Vec<LayerSource>,
    /// The diff_ids of the `Base` layers, in order (from their configs).
    pub base_diff_ids: Vec<Digest>,
}

/// BuildKit's ARGs that need no declaration in FROM lines, and are inherited by `ARG NAME`.
fn automatic_args(build: &Platform, target: &Platform, stage: &str) -> Vec<(String, String)> {
    let v = |p: &Platform| p.variant.clone().unwrap_or_default();
    vec![
        ("BUILDPLATFORM".into(), build.to_string()),
        ("BUILDOS".into(), build.os.clone()),
        ("BUILDOSVERSION".into(), String::new()),
        ("BUILDARCH".into(), build.architecture.clone()),
        ("BUILDVARIANT".into(), v(build)),
        ("TARGETPLATFORM".into(), target.to_string()),
        ("TARGETOS".into(), target.os.clone()),
        ("TARGETOSVERSION".into(), String::new()),
        ("TARGETARCH".into(), target.architecture.clone()),
        ("TARGETVARIANT".into(), v(target)),
        ("TARGETSTAGE".into(), stage.to_string()),
    ]
}

struct Decl {
    name: Option<String>,
    from: usize,
    nodes: Vec<usize>,
}

enum Base {
    Scratch,
    Stage(usize),
    Image(String),
}

struct Interp<'a> {
    asm: &'a Assembler,
    spec: &'a BuildSpec,
    target: Platform,
    file: String,
    nodes: Vec<Instr>,
    decls: Vec<Decl>,
    globals: Vec<(String, String)>,
    lex: ShellLex,
    scratch: &'a Path,
    sink: &'a LineSink,
    done: Vec<Option<Arc<StageResult>>>,
    images: HashMap<String, Arc<StageResult>>,
    context: Option<Arc<Tree>>,
    build_args: HashMap<String, String>,
    /// Stages an engine built (a hybrid build): name → their filesystem, as layer tars.
    prebuilt: &'a super::Prebuilt,
}

type Fut<'s, T> = Pin<Box<dyn Future<Output = Result<T, BuildError>> + Send + 's>>;

/// Dispatches the stages the target needs and returns the target's result. `prebuilt`: the
/// stages an engine built, by name (or index), each as the layer tars of its filesystem that
/// `COPY --from` reads.
pub async fn assemble(
    asm: &Assembler,
    spec: &BuildSpec,
    platform: &Platform,
    scratch: &Path,
    sink: &LineSink,
    prebuilt: &super::Prebuilt,
) -> Result<StageResult, BuildError> {
    let file =
        spec.dockerfile.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "Dockerfile".into());
    let err = |line: usize, message: String| BuildError::Assemble {
        platform: platform.clone(),
        file: file.clone(),
        line,
        message,
    };
    let text = std::fs::read_to_string(&spec.dockerfile)
        .map_err(|e| err(0, format!("cannot read `{}`: {e}", spec.dockerfile.display())))?;
    let parsed = parse::parse(&text).map_err(|e| err(e.line, e.kind.to_string()))?;
    let mut decls: Vec<Decl> = Vec::new();
    let mut global_nodes = Vec::new();
    for (i, n) in parsed.nodes.iter().enumerate() {
        if n.instruction == "from" {
            let name = match n.args.as_slice() {
                [_, a, name] if a.eq_ignore_ascii_case("as") => Some(name.to_lowercase()),
                _ => None,
            };
            decls.push(Decl { name, from: i, nodes: Vec::new() });
        } else if let Some(d) = decls.last_mut() {
            d.nodes.push(i);
        } else {
            global_nodes.push(i);
        }
    }
    if decls.is_empty() {
        return Err(err(1, "no FROM instruction".into()));
    }
    let target = match &spec.target {
        None => decls.len() - 1,
        Some(t) => decls
            .iter()
            .position(|d| d.name.as_deref() == Some(t.to_lowercase().as_str()))
            .ok_or_else(|| err(0, format!("target stage `{t}` not found")))?,
    };
    let target_stage = spec.target.clone().unwrap_or_else(|| decls[target].name.clone().unwrap_or_default());
    let lex = ShellLex::new(parsed.escape);
    let build_args: HashMap<String, String> = spec.build_args.iter().cloned().collect();
    let mut env: HashMap<String, String> = HashMap::new();
    let mut globals = Vec::new();
    for (k, v) in automatic_args(&asm.options.build_platform, platform, &target_stage) {
        let v = build_args.get(&k).cloned().unwrap_or(v);
        env.insert(k.clone(), v.clone());
        globals.push((k, v));
    }
    for &i in &global_nodes {
        let n = &parsed.nodes[i];
        for word in &n.args {
            let (key, default) = match word.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (word.clone(), None),
            };
            let value = match (build_args.get(&key), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(lex.process(&d, &env).map_err(|e| err(n.start_line, e.to_string()))?.result),
                (None, None) => None,
            };
            if let Some(v) = value {
                env.insert(key.clone(), v.clone());
                globals.retain(|(k, _)| *k != key);
                globals.push((key, v));
            }
        }
    }
    let mut interp = Interp {
        asm,
        spec,
        target: platform.clone(),
        file,
        nodes: parsed.nodes,
        decls,
        globals,
        lex,
        scratch,
        sink,
        done: Vec::new(),
        images: HashMap::new(),
        context: None,
        build_args,
        prebuilt,
    };
    interp.done = vec![None; interp.decls.len()];
    let result = interp.stage(target).await?;
    let mut result = (*result).clone();
    result.image.set_platform(platform);
    interp.materialize(&mut result).await?;
    Ok(result)
}

/// An instruction's flags: `--name=value` (or `--name` alone, for booleans).
struct Flags<'n> {
    node: &'n Instr,
}

impl<'n> Flags<'n> {
    fn value(&self, name: &'n str) -> Option<&'n str> {
        self.node.flag_values(name).last().flatten()
    }
    fn values(&self, name: &'n str) -> Vec<&'n str> {
        self.node.flag_values(name).flatten().collect()
    }
    fn bool(&self, name: &str) -> Option<bool> {
        self.node.flag_values(name).last().map(|v| v.is_none_or(|v| v == "true"))
    }
}

/// Per-stage state while dispatching.
struct State {
    platform: Platform,
    image: Image,
    tree: Tree,
    layers: Vec<LayerSource>,
    base_diff_ids: Vec<Digest>,
    /// The build state's environment (ENV and ARG values), for expansion.
    vars: Vec<(String, String)>,
    cmd_set: bool,
    new_onbuild: Vec<String>,
}

impl State {
    fn env(&self) -> HashMap<String, String> {
        self.vars.iter().cloned().collect()
    }
    fn set_var(&mut self, k: &str, v: &str) {
        self.vars.retain(|(key, _)| key != k);
        self.vars.push((k.to_string(), v.to_string()));
    }
}

impl<'a> Interp<'a> {
    fn err(&self, line: usize, message: impl Into<String>) -> BuildError {
        BuildError::Assemble { platform: self.target.clone(), file: self.file.clone(), line, message: message.into() }
    }

    fn expand(&self, word: &str, env: &HashMap<String, String>, line: usize) -> Result<String, BuildError> {
        self.lex.process(word, env).map(|e| e.result).map_err(|e| self.err(line, e.to_string()))
    }

    fn global_env(&self) -> HashMap<String, String> {
        self.globals.iter().cloned().collect()
    }

    fn base_of(&self, i: usize) -> Result<(Base, Option<Platform>), BuildError> {
        let n = &self.nodes[self.decls[i].from];
        let env = self.global_env();
        let image = self.expand(&n.args[0], &env, n.start_line)?;
        if image.is_empty() {
            return Err(self.err(n.start_line, format!("FROM `{}` expands to an empty image name", n.args[0])));
        }
        let mut platform = None;
        if let Some(p) = n.flag_values("platform").last().flatten().filter(|p| !p.is_empty()) {
            let v = self.expand(p, &env, n.start_line)?;
            platform = Some(v.parse::<Platform>().map_err(|e| self.err(n.start_line, e.to_string()))?);
        }
        let earlier = self.decls[..i].iter().rposition(|d| d.name.as_deref() == Some(image.as_str()));
        Ok(match earlier {
            Some(j) => (Base::Stage(j), platform),
            None if image == "scratch" => (Base::Scratch, platform),
            None => (Base::Image(image), platform),
        })
    }

    /// An image's filesystem and config, its layers downloaded to the scratch area.
    fn image<'s>(&'s mut self, name: String, platform: Platform, line: usize) -> Fut<'s, Arc<StageResult>> {
        Box::pin(async move {
            let key = format!("{name}@{platform}");
            if let Some(r) = self.images.get(&key) {
                return Ok(r.clone());
            }
            (self.sink)(&self.target, &format!("resolving {name} for {platform}"));
            let b =
                base::resolve(self.asm.client(), &name, &platform).await.map_err(|e| self.err(line, e.to_string()))?;
            let dir = self.scratch.join("base");
            std::fs::create_dir_all(&dir).map_err(|e| self.err(line, e.to_string()))?;
            let fetched =
                base::fetch_layers(self.asm.client(), &b, &dir).await.map_err(|e| self.err(line, e.to_string()))?;
            if fetched.downloaded > 0 {
                let size = crate::report::human_size(fetched.bytes);
                let rate = crate::report::rate(fetched.bytes, fetched.took);
                (self.sink)(
                    &self.target,
                    &format!("downloaded {} layer(s) of {name}: {size} at {rate}", fetched.downloaded),
                );
            }
            let paths = fetched.paths;
            let layers: Vec<(PathBuf, String)> =
                paths.iter().cloned().zip(b.layers.iter().map(|l| l.media_type.clone())).collect();
            let tree = tokio::task::spawn_blocking(move || base::index(&layers))
                .await
                .map_err(|e| self.err(line, e.to_string()))?
                .map_err(|e| self.err(line, format!("reading the layers of `{name}`: {e}")))?;
            let mut image = Image::from_base(&b.config);
            if image.os.is_empty() {
                image.os = platform.os.clone();
                image.architecture = platform.architecture.clone();
            }
            let r = Arc::new(StageResult {
                platform,
                base_diff_ids: b.diff_ids(),
                image,
                tree,
                layers: b
                    .layers
                    .iter()
                    .zip(paths)
                    .map(|(d, path)| LayerSource::Base {
                        descriptor: Box::new(d.clone()),
                        path,
                        from: Box::new(b.reference.repository_only()),
                    })
                    .collect(),
            });
            self.images.insert(key, r.clone());
            Ok(r)
        })
    }

    /// Dispatches stage `i` (once).
    fn stage<'s>(&'s mut self, i: usize) -> Fut<'s, Arc<StageResult>> {
        Box::pin(async move {
            if let Some(r) = &self.done[i] {
                return Ok(r.clone());
            }
            let from_line = self.nodes[self.decls[i].from].start_line;
            let label = self.decls[i].name.clone().unwrap_or_else(|| i.to_string());
            if let Some(tars) = self.prebuilt.get(&label) {
                // Built by an engine: only its files matter (the target copies from it).
                let layers: Vec<(PathBuf, String)> =
                    tars.iter().map(|t| (t.clone(), "application/vnd.oci.image.layer.v1.tar".to_string())).collect();
                let tree = tokio::task::spawn_blocking(move || base::index(&layers))
                    .await
                    .map_err(|e| self.err(from_line, e.to_string()))?
                    .map_err(|e| self.err(from_line, format!("reading the files of stage `{label}`: {e}")))?;
                let p = self.asm.options.build_platform.clone();
                let r = Arc::new(StageResult {
                    image: Image::empty(&p),
                    platform: p,
                    tree,
                    layers: vec![],
                    base_diff_ids: vec![],
                });
                self.done[i] = Some(r.clone());
                return Ok(r);
            }
            let (base_kind, flag) = self.base_of(i)?;
            let start = match base_kind {
                Base::Stage(j) => (*self.stage(j).await?).clone(),
                Base::Scratch => {
                    let p = flag.clone().unwrap_or_else(|| self.target.clone());
                    StageResult {
                        image: Image::empty(&p),
                        platform: p,
                        tree: Tree::new(),
                        layers: vec![],
                        base_diff_ids: vec![],
                    }
                }
                Base::Image(name) => {
                    let p = flag.clone().unwrap_or_else(|| self.target.clone());
                    (*self.image(name, p, from_line).await?).clone()
                }
            };
            let mut st = State {
                platform: start.platform.clone(),
                vars: Vec::new(),
                image: start.image,
                tree: start.tree,
                layers: start.layers,
                base_diff_ids: start.base_diff_ids,
                cmd_set: false,
                new_onbuild: Vec::new(),
            };
            if st.image.env("PATH").is_none() && st.platform.os != "windows" {
                st.image.config.env.push(format!("PATH={}", super::config::DEFAULT_PATH));
            }
            st.vars = st
                .image
                .config
                .env
                .iter()
                .map(|e| {
                    let (k, v) = e.split_once('=').unwrap_or((e, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            // Triggers of the base run first, at the FROM line.
            let triggers = std::mem::take(&mut st.image.config.on_build);
            let mut todo: Vec<Instr> = Vec::new();
            for t in &triggers {
                let p =
                    parse::parse(t).map_err(|e| self.err(from_line, format!("ONBUILD trigger `{t}`: {}", e.kind)))?;
                for mut n in p.nodes {
                    n.start_line = from_line;
                    todo.push(n);
                }
            }
            todo.extend(self.decls[i].nodes.iter().map(|&k| self.nodes[k].clone()));
            let label = self.decls[i].name.clone().unwrap_or_else(|| i.to_string());
            for n in &todo {
                // The echo is archway's own line: the Dockerfile's text without its escapes.
                let echo = format!("[{label}] {}", n.original.trim());
                (self.sink)(&self.target, &crate::ci::log::visible(&echo));
                self.dispatch(&mut st, n).await?;
            }
            st.image.config.on_build.extend(st.new_onbuild);
            let r = Arc::new(StageResult {
                platform: st.platform,
                image: st.image,
                tree: st.tree,
                layers: st.layers,
                base_diff_ids: st.base_diff_ids,
            });
            self.done[i] = Some(r.clone());
            Ok(r)
        })
    }

    fn dispatch<'s>(&'s mut self, st: &'s mut State, n: &'s Instr) -> Fut<'s, ()> {
        Box::pin(async move {
            let line = n.start_line;
            let env = st.env();
            let ex = |w: &str| self.expand(w, &env, line);
            match n.instruction.as_str() {
                "run" => {
                    return Err(BuildError::NotAssemblable {
                        platform: self.target.clone(),
                        file: self.file.clone(),
                        line,
                        instruction: n.original.trim().chars().take(80).collect(),
                        reason: "RUN executes code, which needs a builder".into(),
                    });
                }
                "arg" => {
                    let mut commit = Vec::new();
                    for word in &n.args {
                        let (k, d) = match word.split_once('=') {
                            Some((k, v)) => (ex(k)?, Some(ex(v)?)),
                            None => (ex(word)?, None),
                        };
                        let given = self.build_args.get(&k).cloned();
                        let shown = given.clone().or(d.clone());
                        let value = shown
                            .clone()
                            .or_else(|| self.globals.iter().find(|(g, _)| *g == k).map(|(_, v)| v.clone()));
                        if let Some(v) = &value {
                            st.set_var(&k, v);
                        }
                        commit.push(match shown {
                            Some(v) => format!("{k}={v}"),
                            None => k,
                        });
                    }
                    st.image.commit(format!("ARG {}", commit.join(" ")), false);
                }
                "env" | "label" => {
                    let mut msg = n.instruction.to_uppercase();
                    for kv in n.args.chunks(3) {
                        let (k, v) = (ex(&kv[0])?, ex(&kv[1])?);
                        msg.push_str(&format!(" {k}={v}"));
                        if n.instruction == "env" {
                            st.image.set_env(&k, &v);
                            st.set_var(&k, &v);
                        } else {
                            st.image.config.labels.insert(k, v);
                        }
                    }
                    st.image.commit(msg, false);
                }
                "maintainer" => {
                    let m = n.args.first().cloned().unwrap_or_default();
                    st.image.author = m.clone();
                    st.image.commit(format!("MAINTAINER {m}"), false);
                }
                "user" => {
                    let u = ex(n.args.first().map(String::as_str).unwrap_or_default())?;
                    st.image.config.user = u.clone();
                    st.image.commit(format!("USER {u}"), false);
                }
                "volume" => {
                    let mut vols = Vec::new();
                    for v in &n.args {
                        let v = ex(v)?;
                        let v = v.trim().to_string();
                        if v.is_empty() {
                            return Err(self.err(line, "VOLUME specified can not be an empty string"));
                        }
                        st.image.config.volumes.insert(v.clone(), ());
                        vols.push(v);
                    }
                    st.image.commit(format!("VOLUME {}", go_list(&vols)), false);
                }
                "stopsignal" => {
                    let s = ex(n.args.first().map(String::as_str).unwrap_or_default())?;
                    st.image.config.stop_signal = s.clone();
                    st.image.commit(format!("STOPSIGNAL {s}"), false);
                }
                "shell" => {
                    if !n.json || n.args.is_empty() {
                        return Err(self.err(line, "SHELL requires the arguments to be in JSON form"));
                    }
                    st.image.config.shell = n.args.clone();
                    st.image.commit(format!("SHELL {}", go_list(&n.args)), false);
                }
                "cmd" | "entrypoint" => {
                    let args = if n.json {
                        n.args.clone()
                    } else {
                        let mut sh = st.image.config.shell.clone();
                        if sh.is_empty() {
                            sh = vec!["/bin/sh".into(), "-c".into()];
                        }
                        sh.extend(n.args.iter().cloned());
                        sh
                    };
                    if n.instruction == "cmd" {
                        st.image.config.cmd = Some(args.clone());
                        st.image.config.args_escaped = true;
                        st.cmd_set = true;
                        st.image.commit(format!("CMD {}", go_quote_list(&args)), false);
                    } else {
                        st.image.config.entrypoint = Some(args.clone()).filter(|a| !a.is_empty() || !n.json);
                        if n.json && args.is_empty() {
                            st.image.config.entrypoint = None;
                        }
                        if !st.cmd_set {
                            st.image.config.cmd = None;
                        }
                        st.image.commit(format!("ENTRYPOINT {}", go_quote_list(&args)), false);
                    }
                }
                "healthcheck" => self.healthcheck(st, n)?,
                "expose" => {
                    let mut ports = Vec::new();
                    for p in &n.args {
                        let words = self.lex.process(p, &env).map_err(|e| self.err(line, e.to_string()))?.words;
                        for w in words {
                            ports.extend(parse_port(&w).map_err(|m| self.err(line, m))?);
                        }
                    }
                    for p in &ports {
                        st.image.config.exposed_ports.insert(p.clone(), ());
                    }
                    let set: BTreeSet<&String> = ports.iter().collect();
                    let shown: Vec<String> = set.iter().map(|p| format!("{p}:{{}}")).collect();
                    st.image.commit(format!("EXPOSE map[{}]", shown.join(" ")), false);
                }
                "onbuild" => {
                    let expr = n.original.trim_start();
                    let expr = expr.get(7..).unwrap_or_default().trim_start().to_string();
                    st.new_onbuild.push(expr);
                }
                "workdir" => {
                    let p = ex(n.args.first().map(String::as_str).unwrap_or_default())?;
                    let cwd =
                        if st.image.config.working_dir.is_empty() { "/" } else { st.image.config.working_dir.as_str() };
                    let wd = if p.starts_with('/') {
                        super::glob::clean(&p)
                    } else {
                        super::glob::clean(&format!("{cwd}/{p}"))
                    };
                    st.image.config.working_dir = wd.clone();
                    let mut layer = false;
                    if wd != "/" {
                        let chown = if st.image.config.user.is_empty() {
                            None
                        } else {
                            Some(self.chown(&st.tree, &st.image.config.user.clone(), line).await?)
                        };
                        let opts = CopyOpts { chown, created_mtime: self.asm.options.epoch, ..CopyOpts::default() };
                        let mut changes = Changes::new();
                        copy::mkdir_all(&mut st.tree, &wd, &opts, &mut changes)
                            .map_err(|e| self.err(line, e.to_string()))?;
                        st.layers.push(LayerSource::New(Arc::new(entries_for(&st.tree, &changes))));
                        layer = true;
                    }
                    st.image.commit(format!("WORKDIR {wd}"), layer);
                }
                "copy" | "add" => self.copy(st, n).await?,
                other => return Err(self.err(line, format!("unknown instruction `{}`", other.to_uppercase()))),
            }
            Ok(())
        })
    }

    fn healthcheck(&self, st: &mut State, n: &Instr) -> Result<(), BuildError> {
        let line = n.start_line;
        let typ = n.args.first().map(|t| t.to_uppercase()).unwrap_or_default();
        let flags = Flags { node: n };
        let mut h = serde_json::Map::new();
        let (mut interval, mut timeout, mut start, mut start_interval, mut retries) = (0i64, 0i64, 0i64, 0i64, 0i64);
        if typ == "NONE" {
            h.insert("Test".into(), serde_json::json!(["NONE"]));
        } else if typ == "CMD" {
            let cmd: Vec<String> = n.args[1..].to_vec();
            if cmd.is_empty() {
                return Err(self.err(line, "Missing command after HEALTHCHECK CMD"));
            }
            let mut test = vec![if n.json { "CMD".to_string() } else { "CMD-SHELL".to_string() }];
            test.extend(cmd);
            h.insert("Test".into(), serde_json::json!(test));
            let dur = |name: &str| -> Result<i64, BuildError> {
                match flags.value(name) {
                    None | Some("") => Ok(0),
                    Some(v) => {
                        parse_duration(v).ok_or_else(|| self.err(line, format!("--{name}: invalid duration `{v}`")))
                    }
                }
            };
            interval = dur("interval")?;
            timeout = dur("timeout")?;
            start = dur("start-period")?;
            start_interval = dur("start-interval")?;
            if let Some(r) = flags.value("retries").filter(|r| !r.is_empty()) {
                retries = r.parse().map_err(|_| self.err(line, format!("--retries: invalid number `{r}`")))?;
            }
            for (k, v) in [
                ("Interval", interval),
                ("Timeout", timeout),
                ("StartPeriod", start),
                ("StartInterval", start_interval),
            ] {
                if v != 0 {
                    h.insert(k.into(), serde_json::json!(v));
                }
            }
            if retries != 0 {
                h.insert("Retries".into(), serde_json::json!(retries));
            }
        } else {
            return Err(self.err(line, format!("Unknown type \"{typ}\" in HEALTHCHECK (try CMD)")));
        }
        let test: Vec<String> = h["Test"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
        let msg = format!(
            "HEALTHCHECK &{{{} \"{}\" \"{}\" \"{}\" \"{}\" {}}}",
            go_quote_list(&test),
            go_duration(interval),
            go_duration(timeout),
            go_duration(start),
            go_duration(start_interval),
            go_quote_rune(retries)
        );
        st.image.config.healthcheck = Some(serde_json::Value::Object(h));
        st.image.commit(msg, false);
        Ok(())
    }

    /// `--chown` or USER to numbers: names from the stage's own `/etc/passwd` and
    /// `/etc/group` (an unknown name is root, as BuildKit has it).
    fn chown<'s>(&'s self, tree: &'s Tree, spec: &'s str, line: usize) -> Fut<'s, (u64, u64)> {
        Box::pin(async move {
            let (user, group) = match spec.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (spec, None),
            };
            let num = |s: &str| {
                if s == "root" { Some(0u64) } else { s.parse::<i32>().ok().filter(|n| *n >= 0).map(|n| n as u64) }
            };
            let (mut uid, mut gid) = (0u64, 0u64);
            match num(user) {
                Some(n) => (uid, gid) = (n, n),
                None => {
                    if let Some(text) = self.read_file(tree, "/etc/passwd", line).await?
                        && let Some(ids) = base::passwd_ids(&text, user)
                    {
                        (uid, gid) = ids;
                    }
                }
            }
            if let Some(g) = group {
                match num(g) {
                    Some(n) => gid = n,
                    None => {
                        if let Some(text) = self.read_file(tree, "/etc/group", line).await?
                            && let Some(id) = base::group_id(&text, g)
                        {
                            gid = id;
                        }
                    }
                }
            }
            Ok((uid, gid))
        })
    }

    /// A regular file's text from a tree (a layer's entry extracted when needed).
    fn read_file<'s>(&'s self, tree: &'s Tree, path: &'s str, line: usize) -> Fut<'s, Option<String>> {
        Box::pin(async move {
            let Some((_, node)) = tree.stat(path) else { return Ok(None) };
            let Kind::File { content, .. } = &node.kind else { return Ok(None) };
            let bytes = match content {
                Content::Bytes(b) => b.to_vec(),
                Content::Disk(p) => std::fs::read(p).map_err(|e| self.err(line, e.to_string()))?,
                Content::Layer { blob, entry } => {
                    let wanted: HashSet<String> = [entry.clone()].into();
                    let dir = tempfile::tempdir_in(self.scratch).map_err(|e| self.err(line, e.to_string()))?;
                    let (b, d) = (blob.path.clone(), dir.path().to_path_buf());
                    let got = tokio::task::spawn_blocking(move || base::extract(&b, &wanted, &d))
                        .await
                        .map_err(|e| self.err(line, e.to_string()))?
                        .map_err(|e| self.err(line, e.to_string()))?;
                    match got.get(entry) {
                        Some(p) => std::fs::read(p).map_err(|e| self.err(line, e.to_string()))?,
                        None => return Ok(None),
                    }
                }
            };
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        })
    }

    fn context(&mut self, line: usize) -> Result<Arc<Tree>, BuildError> {
        if self.context.is_none() {
            self.context = Some(self.asm.context(self.spec).map_err(|e| self.err(line, e.to_string()))?);
        }
        Ok(self.context.clone().expect("set"))
    }

    /// COPY and ADD.
    fn copy<'s>(&'s mut self, st: &'s mut State, n: &'s Instr) -> Fut<'s, ()> {
        Box::pin(async move {
            let line = n.start_line;
            let is_add = n.instruction == "add";
            let flags = Flags { node: n };
            let known: &[&str] = if is_add {
                &["chown", "chmod", "link", "exclude", "checksum", "keep-git-dir", "unpack"]
            } else {
                &["from", "chown", "chmod", "link", "exclude", "parents"]
            };
            for f in &n.flags {
                let name = f.trim_start_matches("--").split('=').next().unwrap_or_default();
                if !known.contains(&name) {
                    return Err(self.err(line, format!("unknown flag: {name}")));
                }
            }
            if n.args.len() < 2 {
                return Err(self.err(line, format!("{} requires at least two arguments", n.instruction.to_uppercase())));
            }
            let env = st.env();
            let ex = |w: &str| self.expand(w, &env, line);
            let chown_spec = flags.value("chown").map(ex).transpose()?.filter(|s| !s.is_empty());
            let chmod = flags.value("chmod").map(ex).transpose()?.filter(|s| !s.is_empty());
            let checksum = flags.value("checksum").map(ex).transpose()?.filter(|s| !s.is_empty());
            let parents = flags.bool("parents").unwrap_or(false);
            let link = flags.bool("link").unwrap_or(false) && chmod.is_none();
            let unpack = flags.bool("unpack");
            let excludes = flags.values("exclude");
            let mode = match &chmod {
                None => None,
                Some(m) => match u32::from_str_radix(m, 8) {
                    Ok(v) if v <= 0o7777 => Some(v),
                    _ => {
                        return Err(self.err(
                            line,
                            format!(
                                "invalid chmod parameter: '{m}'. it should be octal string and between 0 and 07777"
                            ),
                        ));
                    }
                },
            };
            // Sources, heredocs and the destination, expanded.
            let mut sources: Vec<(String, Option<&parse::Heredoc>)> = Vec::new();
            let (dest_word, src_words) = n.args.split_last().expect("two arguments");
            for w in src_words {
                match parse::parse_heredoc(w).ok().flatten() {
                    Some(h) if !n.json => sources.push((h.name.clone(), n.heredocs.iter().find(|d| d.name == h.name))),
                    _ => sources.push((ex(w)?, None)),
                }
            }
            let dest_raw = ex(dest_word)?;
            let cwd = if st.image.config.working_dir.is_empty() {
                "/".to_string()
            } else {
                st.image.config.working_dir.clone()
            };
            let mut dest = if dest_raw.starts_with('/') { dest_raw.clone() } else { format!("{cwd}/{dest_raw}") };
            let keep_slash =
                dest_raw.ends_with('/') || dest_raw.ends_with("/.") || dest_raw == "." || dest_raw.is_empty();
            dest = super::glob::clean(&dest);
            if keep_slash && !dest.ends_with('/') {
                dest.push('/');
            }
            let chown = match &chown_spec {
                Some(s) => Some(self.chown(&st.tree, s, line).await?),
                None => None,
            };
            let exclude = if excludes.is_empty() {
                None
            } else {
                Some(Matcher::new(&excludes).map_err(|e| self.err(line, e.to_string()))?)
            };
            let opts =
                CopyOpts { chown, mode, include: None, exclude, strict: false, created_mtime: self.asm.options.epoch };
            let from = flags.value("from");
            let source_tree: Arc<Tree> = match from {
                None => Arc::new(Tree::new()),
                Some(f) => self.source_tree(f, line).await?,
            };
            let from_context = from.is_none();
            let context = if from_context
                && sources.iter().any(|(s, h)| h.is_none() && !archive::is_url(s) && !archive::is_git_source(s))
            {
                Some(self.context(line)?)
            } else {
                None
            };
            // With --link the files go onto an empty filesystem, merged over the stage after.
            let mut linked = Tree::new();
            let mut changes = Changes::new();
            let dest_tree: &mut Tree = if link { &mut linked } else { &mut st.tree };
            let bad = |e: CopyError| self.err(line, e.to_string());
            let mut msg = n.instruction.to_uppercase();
            if parents {
                msg.push_str(" --parents");
            }
            if let Some(c) = &chown_spec {
                msg.push_str(&format!(" --chown={c}"));
            }
            if let Some(c) = &chmod {
                msg.push_str(&format!(" --chmod={c}"));
            }
            for (src, heredoc) in &sources {
                if let Some(h) = heredoc {
                    msg.push_str(&format!(" <<{src}"));
                    let mut content = h.content.clone();
                    if h.chomp {
                        content = content.lines().map(|l| l.trim_start_matches('\t')).collect::<Vec<_>>().join("\n")
                            + if content.ends_with('\n') { "\n" } else { "" };
                    }
                    if h.expand {
                        content = self.lex.process(&content, &env).map(|e| e.result).unwrap_or(content);
                    }
                    let mut t = Tree::new();
                    let name = super::glob::clean(&format!("/{src}")).trim_start_matches('/').to_string();
                    let bytes = content.into_bytes();
                    let inode = t.new_inode();
                    t.insert(
                        &name,
                        Node {
                            kind: Kind::File { size: bytes.len() as u64, content: Content::Bytes(Arc::new(bytes)) },
                            mode: 0o644,
                            uid: 0,
                            gid: 0,
                            mtime: self.asm.options.epoch,
                            inode,
                            xattrs: vec![],
                        },
                    );
                    copy::copy(&t, &name, dest_tree, &dest, &opts, &mut changes).map_err(bad)?;
                    continue;
                }
                msg.push_str(&format!(" {src}"));
                if is_add && archive::is_git_source(src) {
                    return Err(BuildError::NotAssemblable {
                        platform: self.target.clone(),
                        file: self.file.clone(),
                        line,
                        instruction: n.original.trim().chars().take(80).collect(),
                        reason: format!("ADD of git repository `{src}` needs a builder"),
                    });
                }
                if archive::is_url(src) {
                    if !is_add {
                        return Err(self.err(line, "source can't be a URL for COPY"));
                    }
                    let dir = self.scratch.join("downloads");
                    std::fs::create_dir_all(&dir).map_err(|e| self.err(line, e.to_string()))?;
                    let d = archive::download(src, checksum.as_deref(), &dir)
                        .await
                        .map_err(|e| self.err(line, e.to_string()))?;
                    let mut t = Tree::new();
                    let inode = t.new_inode();
                    t.insert(
                        &d.name,
                        Node {
                            kind: Kind::File { size: d.size, content: Content::Disk(d.file.clone()) },
                            mode: 0o600,
                            uid: 0,
                            gid: 0,
                            mtime: d.mtime,
                            inode,
                            xattrs: vec![],
                        },
                    );
                    if unpack == Some(true) && archive::is_archive(&d.file) {
                        let target = super::glob::clean(&dest);
                        archive::extract(&d.file, src, dest_tree, &target, &opts, self.scratch, &mut changes)
                            .map_err(|e| self.err(line, e.to_string()))?;
                    } else {
                        copy::copy(&t, &d.name, dest_tree, &dest, &opts, &mut changes).map_err(bad)?;
                    }
                    continue;
                }
                if checksum.is_some() {
                    return Err(self.err(line, "checksum requires HTTP(S) or Git sources"));
                }
                let (tree, strict): (&Tree, bool) = match &context {
                    Some(c) => (c, true),
                    None => (&source_tree, false),
                };
                if strict {
                    copy::check_inside(src).map_err(bad)?;
                }
                let mut o = CopyOpts { strict, ..opts.clone() };
                let (from_dir, pattern) = if parents { copy::parents_split(src) } else { (src.clone(), String::new()) };
                if parents {
                    o.include =
                        Some(Matcher::new(std::slice::from_ref(&pattern)).map_err(|e| self.err(line, e.to_string()))?);
                    let p = from_dir.trim_start_matches('/').to_string();
                    copy::copy(tree, &p, dest_tree, &dest, &o, &mut changes).map_err(bad)?;
                    continue;
                }
                let matches = copy::expand_source(tree, src, strict).map_err(bad)?;
                for m in matches {
                    if is_add && unpack != Some(false) {
                        let followed = if strict { tree.resolve_inside(&m, true) } else { tree.resolve(&m, true) }
                            .map_err(|e| self.err(line, e.to_string()))?;
                        if let Some(Node { kind: Kind::File { content: Content::Disk(p), .. }, .. }) =
                            tree.get(&followed)
                            && archive::is_archive(p)
                        {
                            let target = super::glob::clean(&dest);
                            archive::extract(p, src, dest_tree, &target, &opts, self.scratch, &mut changes)
                                .map_err(|e| self.err(line, e.to_string()))?;
                            continue;
                        }
                    }
                    copy::copy(tree, &m, dest_tree, &dest, &o, &mut changes).map_err(bad)?;
                }
            }
            msg.push_str(&format!(" {dest_raw}"));
            let entries = if link {
                let entries: Vec<Entry> = linked
                    .walk("")
                    .filter(|(p, _)| !p.is_empty())
                    .map(|(p, n)| Entry { path: p.clone(), node: n.clone(), link: None })
                    .collect();
                merge(&mut st.tree, &entries);
                finish_entries(entries)
            } else {
                entries_for(&st.tree, &changes)
            };
            st.layers.push(LayerSource::New(Arc::new(entries)));
            st.image.commit(format!("{msg} # buildkit"), true);
            Ok(())
        })
    }

    /// The filesystem `COPY --from` reads: a stage (by name or index) or an image.
    fn source_tree<'s>(&'s mut self, from: &'s str, line: usize) -> Fut<'s, Arc<Tree>> {
        Box::pin(async move {
            let lower = from.to_lowercase();
            let stage = self
                .decls
                .iter()
                .rposition(|d| d.name.as_deref() == Some(lower.as_str()))
                .or_else(|| from.parse::<usize>().ok().filter(|&i| i < self.decls.len()));
            let r = match stage {
                Some(j) => self.stage(j).await?,
                None => {
                    let target = self.target.clone();
                    self.image(from.to_string(), target, line).await?
                }
            };
            Ok(Arc::new(r.tree.clone()))
        })
    }

    /// Extracts the files new layers take from base layers (COPY --from an image or a stage
    /// built on one), one pass per layer blob.
    async fn materialize(&self, r: &mut StageResult) -> Result<(), BuildError> {
        let mut wanted: HashMap<PathBuf, HashSet<String>> = HashMap::new();
        for l in &r.layers {
            if let LayerSource::New(entries) = l {
                for e in entries.iter() {
                    if let Kind::File { content: Content::Layer { blob, entry }, .. } = &e.node.kind {
                        wanted.entry(blob.path.clone()).or_default().insert(entry.clone());
                    }
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let dir = self.scratch.join("extracted");
        std::fs::create_dir_all(&dir).map_err(|e| self.err(0, e.to_string()))?;
        let mut found: HashMap<(PathBuf, String), PathBuf> = HashMap::new();
        for (i, (blob, names)) in wanted.into_iter().enumerate() {
            let d = dir.join(i.to_string());
            std::fs::create_dir_all(&d).map_err(|e| self.err(0, e.to_string()))?;
            let b = blob.clone();
            let got = tokio::task::spawn_blocking(move || base::extract(&b, &names, &d))
                .await
                .map_err(|e| self.err(0, e.to_string()))?
                .map_err(|e| self.err(0, format!("reading layer `{}`: {e}", blob.display())))?;
            for (k, v) in got {
                found.insert((blob.clone(), k), v);
            }
        }
        for l in &mut r.layers {
            if let LayerSource::New(entries) = l {
                let mut es = (**entries).clone();
                for e in &mut es {
                    if let Kind::File { content, .. } = &mut e.node.kind
                        && let Content::Layer { blob, entry } = content
                        && let Some(p) = found.get(&(blob.path.clone(), entry.clone()))
                    {
                        *content = Content::Disk(p.clone());
                    }
                }
                *entries = Arc::new(es);
            }
        }
        Ok(())
    }
}

/// The layer of a set of changed paths: each with every directory above it (as overlayfs's
/// upper directory holds them), in walk order, hard links linked.
pub fn entries_for(tree: &Tree, changes: &Changes) -> Vec<Entry> {
    let mut paths: BTreeSet<String> = BTreeSet::new();
    for c in changes {
        let mut p = c.as_str();
        while !p.is_empty() {
            if !paths.insert(p.to_string()) {
                break;
            }
            p = parent(p);
        }
    }
    let entries = paths
        .into_iter()
        .filter_map(|p| tree.get(&p).map(|n| Entry { path: p.clone(), node: n.clone(), link: None }))
        .collect();
    finish_entries(entries)
}

fn finish_entries(mut entries: Vec<Entry>) -> Vec<Entry> {
    layer::sort_entries(&mut entries);
    layer::link_hardlinks(&mut entries);
    entries
}

/// Applies a `--link` layer over a stage: directories merge (taking the layer's metadata),
/// anything else replaces what was there.
fn merge(tree: &mut Tree, entries: &[Entry]) {
    for e in entries {
        if !(e.node.is_dir() && tree.get(&e.path).is_some_and(Node::is_dir)) {
            tree.remove(&e.path);
        }
        let mut node = e.node.clone();
        if matches!(node.kind, Kind::File { .. }) {
            node.inode += 1_000_000_000;
        }
        tree.insert(&e.path, node);
    }
}

/// EXPOSE's `[ip:][hostPort:]containerPort[-end][/proto]` → `port/proto` for each port.
fn parse_port(raw: &str) -> Result<Vec<String>, String> {
    let (rest, proto) = match raw.rsplit_once('/') {
        Some((r, p)) => (r, p.to_lowercase()),
        None => (raw, "tcp".to_string()),
    };
    if rest.is_empty() {
        return Err(format!("invalid port: \"{raw}\": no port specified"));
    }
    let container = rest.rsplit(':').next().unwrap_or(rest);
    let parse = |s: &str| {
        s.parse::<u32>().ok().filter(|p| *p <= 65535).ok_or_else(|| format!("invalid containerPort: {container}"))
    };
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(container)?, parse(container)?),
    };
    if end < start {
        return Err(format!("invalid port range: {container}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_like_buildkit() {
        assert_eq!(parse_port("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(parse_port("8000-8002/tcp").unwrap(), ["8000/tcp", "8001/tcp", "8002/tcp"]);
        assert_eq!(parse_port("127.0.0.1:80:8080").unwrap(), ["8080/tcp"]);
        assert!(parse_port("x").is_err());
    }
}
