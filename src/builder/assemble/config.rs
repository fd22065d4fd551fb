//! config: the image config an assembled image carries, as BuildKit's `dockerfile2llb`
//! writes it — the base image's config carried over (its `created` dropped, `PATH` ensured),
//! each config instruction applied, one `history` entry per instruction with BuildKit's text
//! (`empty_layer` for those without a layer), `rootfs.diff_ids`, and the target platform.
//! Keys come out in the order BuildKit writes them. Pure: no I/O.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::dockerfile::parse::go_quote;
use crate::platform::Platform;
use crate::reference::Digest;

/// `system.DefaultPathEnv("linux")`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// BuildKit's history comment.
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// The config part of an image config (`config` key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub user: String,
    pub exposed_ports: BTreeMap<String, ()>,
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub volumes: BTreeMap<String, ()>,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: String,
    pub args_escaped: bool,
    pub healthcheck: Option<Value>,
    pub on_build: Vec<String>,
    pub shell: Vec<String>,
}

/// An image config being built.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub author: String,
    pub os: String,
    pub architecture: String,
    pub variant: String,
    pub config: Config,
    pub diff_ids: Vec<Digest>,
    /// History entries as JSON objects (the base image's kept as they were).
    pub history: Vec<Value>,
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
}

fn keys(v: &Value) -> BTreeMap<String, ()> {
    v.as_object().map(|o| o.keys().map(|k| (k.clone(), ())).collect()).unwrap_or_default()
}

impl Image {
    /// `emptyImage`: what `FROM scratch` starts from.
    pub fn empty(p: &Platform) -> Image {
        Image {
            author: String::new(),
            os: p.os.clone(),
            architecture: p.architecture.clone(),
            variant: p.variant.clone().unwrap_or_default(),
            config: Config { working_dir: "/".into(), env: vec![format!("PATH={DEFAULT_PATH}")], ..Config::default() },
            diff_ids: Vec::new(),
            history: Vec::new(),
        }
    }

    /// A base image's config, as BuildKit reads it into its own struct.
    pub fn from_base(v: &Value) -> Image {
        let c = &v["config"];
        let s = |x: &Value| x.as_str().unwrap_or_default().to_string();
        Image {
            author: s(&v["author"]),
            os: s(&v["os"]),
            architecture: s(&v["architecture"]),
            variant: s(&v["variant"]),
            config: Config {
                user: s(&c["User"]),
                exposed_ports: keys(&c["ExposedPorts"]),
                env: strings(&c["Env"]).unwrap_or_default(),
                entrypoint: strings(&c["Entrypoint"]),
                cmd: strings(&c["Cmd"]),
                volumes: keys(&c["Volumes"]),
                working_dir: s(&c["WorkingDir"]),
                labels: c["Labels"]
                    .as_object()
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                    .unwrap_or_default(),
                stop_signal: s(&c["StopSignal"]),
                args_escaped: c["ArgsEscaped"].as_bool().unwrap_or(false),
                healthcheck: c.get("Healthcheck").filter(|h| !h.is_null()).cloned(),
                on_build: strings(&c["OnBuild"]).unwrap_or_default(),
                shell: strings(&c["Shell"]).unwrap_or_default(),
            },
            diff_ids: v["rootfs"]["diff_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
                .unwrap_or_default(),
            history: v["history"].as_array().cloned().unwrap_or_default(),
        }
    }

    /// An environment variable's value.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.config.env.iter().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k == key).then_some(v)
        })
    }

    /// `addEnv`: replaces the variable or appends it.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self.config.env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
            Some(e) => *e = entry,
            None => self.config.env.push(entry),
        }
    }

    /// A history entry; `created` is filled in when the config is written.
    pub fn commit(&mut self, created_by: String, layer: bool) {
        let mut h = Map::new();
        h.insert("created_by".into(), Value::String(created_by));
        h.insert("comment".into(), Value::String(HISTORY_COMMENT.into()));
        if !layer {
            h.insert("empty_layer".into(), Value::Bool(true));
        }
        h.insert("archway_new".into(), Value::Bool(true));
        self.history.push(Value::Object(h));
    }

    /// The config JSON: BuildKit's key order, `created` (and the new history entries' times)
    /// set to `created`.
    pub fn to_json(&self, created: &str) -> Vec<u8> {
        let c = &self.config;
        let mut cfg = Map::new();
        let set_map = |cfg: &mut Map<String, Value>, key: &str, m: &BTreeMap<String, ()>| {
            if !m.is_empty() {
                cfg.insert(key.into(), Value::Object(m.keys().map(|k| (k.clone(), json!({}))).collect()));
            }
        };
        if !c.user.is_empty() {
            cfg.insert("User".into(), json!(c.user));
        }
        set_map(&mut cfg, "ExposedPorts", &c.exposed_ports);
        if !c.env.is_empty() {
            cfg.insert("Env".into(), json!(c.env));
        }
        if let Some(e) = c.entrypoint.as_ref().filter(|e| !e.is_empty()) {
            cfg.insert("Entrypoint".into(), json!(e));
        }
        if let Some(e) = c.cmd.as_ref().filter(|e| !e.is_empty()) {
            cfg.insert("Cmd".into(), json!(e));
        }
        set_map(&mut cfg, "Volumes", &c.volumes);
        if !c.working_dir.is_empty() {
            cfg.insert("WorkingDir".into(), json!(c.working_dir));
        }
        if !c.labels.is_empty() {
            cfg.insert("Labels".into(), json!(c.labels));
        }
        if !c.stop_signal.is_empty() {
            cfg.insert("StopSignal".into(), json!(c.stop_signal));
        }
        if c.args_escaped {
            cfg.insert("ArgsEscaped".into(), json!(true));
        }
        if let Some(h) = &c.healthcheck {
            cfg.insert("Healthcheck".into(), h.clone());
        }
        if !c.on_build.is_empty() {
            cfg.insert("OnBuild".into(), json!(c.on_build));
        }
        if !c.shell.is_empty() {
            cfg.insert("Shell".into(), json!(c.shell));
        }
        let history: Vec<Value> = self
            .history
            .iter()
            .map(|h| {
                let mut h = h.as_object().cloned().unwrap_or_default();
                if h.remove("archway_new").is_some() {
                    let mut out = Map::new();
                    out.insert("created".into(), json!(created));
                    out.extend(h);
                    Value::Object(out)
                } else {
                    Value::Object(h)
                }
            })
            .collect();
        // BuildKit patches the config through a map, so the top level is sorted.
        let mut top = Map::new();
        top.insert("architecture".into(), json!(self.architecture));
        if !self.author.is_empty() {
            top.insert("author".into(), json!(self.author));
        }
        top.insert("config".into(), Value::Object(cfg));
        top.insert("created".into(), json!(created));
        top.insert("history".into(), Value::Array(history));
        top.insert("os".into(), json!(self.os));
        top.insert("rootfs".into(), json!({"type": "layers", "diff_ids": self.diff_ids}));
        if !self.variant.is_empty() {
            top.insert("variant".into(), json!(self.variant));
        }
        serde_json::to_vec(&Value::Object(top)).expect("a config serialises")
    }

    /// BuildKit's `finalizeResultImage`: the target platform, keeping the base's variant
    /// when the target names none and the OS and architecture agree.
    pub fn set_platform(&mut self, p: &Platform) {
        let same = self.os == p.os && self.architecture == p.architecture;
        self.os = p.os.clone();
        self.architecture = p.architecture.clone();
        if p.variant.is_some() || !same {
            self.variant = p.variant.clone().unwrap_or_default();
        }
    }
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub fn go_quote_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" "))
}

/// Go's `%v` of a string slice: `[a b]`.
pub fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `time.Duration.String()`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut s = if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        format!("{}{unit}", trim_fraction(u, div))
    } else {
        let h = u / 3_600_000_000_000;
        let m = (u / 60_000_000_000) % 60;
        let sec = trim_fraction(u % 60_000_000_000, 1_000_000_000);
        match (h, m) {
            (0, 0) => format!("{sec}s"),
            (0, m) => format!("{m}m{sec}s"),
            (h, m) => format!("{h}h{m}m{sec}s"),
        }
    };
    if neg {
        s.insert(0, '-');
    }
    s
}

fn trim_fraction(v: u64, div: u64) -> String {
    let whole = v / div;
    let frac = v % div;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = div.to_string().len() - 1;
    let f = format!("{frac:0digits$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Go's `time.ParseDuration` for the units HEALTHCHECK takes, in nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(total as i64)
}

/// Go's `strconv.QuoteRune` of a small number (BuildKit prints HEALTHCHECK retries with `%q`).
pub fn go_quote_rune(n: i64) -> String {
    match u32::try_from(n).ok().and_then(char::from_u32) {
        Some(c) if (' '..='~').contains(&c) && c != '\'' && c != '\\' => format!("'{c}'"),
        Some('\'') => "'\\''".into(),
        Some('\\') => "'\\\\'".into(),
        Some('\x07') => "'\\a'".into(),
        Some('\x08') => "'\\b'".into(),
        Some('\x0c') => "'\\f'".into(),
        Some('\n') => "'\\n'".into(),
        Some('\r') => "'\\r'".into(),
        Some('\t') => "'\\t'".into(),
        Some('\x0b') => "'\\v'".into(),
        _ if (0..0x80).contains(&n) => format!("'\\x{n:02x}'"),
        _ => format!("'{}'", char::from_u32(n as u32).unwrap_or('\u{fffd}')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(go_quote_rune(0), "'\\x00'");
        assert_eq!(go_quote_rune(3), "'\\x03'");
        assert_eq!(
            go_quote_list(&["/bin/sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
    }

    #[test]
    fn writes_buildkits_shape() {
        let p: Platform = "linux/arm64".parse().unwrap();
        let mut img = Image::from_base(&json!({
            "architecture": "arm64", "os": "linux", "variant": "v8", "created": "2020-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "OnBuild": null},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:0acb1d4f9c7d48ec6502298ee3a0f09cbdda4c154c2c83fb5dadda35fb09ee0b"]},
            "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "COPY x /"}]
        }));
        img.set_env("A", "1");
        img.set_env("PATH", "/usr/bin");
        img.config.user = "nobody".into();
        img.commit("USER nobody".into(), false);
        img.set_platform(&p);
        let v: Value = serde_json::from_slice(&img.to_json("1970-01-01T00:00:00Z")).unwrap();
        let top: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(top, ["architecture", "config", "created", "history", "os", "rootfs", "variant"]);
        assert_eq!(v["variant"], "v8", "the base's variant stays when the target names none");
        let cfg: Vec<&String> = v["config"].as_object().unwrap().keys().collect();
        assert_eq!(cfg, ["User", "Env", "Cmd"]);
        assert_eq!(v["config"]["Env"], json!(["PATH=/usr/bin", "A=1"]));
        assert_eq!(
            v["history"][1],
            json!({"created": "1970-01-01T00:00:00Z", "created_by": "USER nobody", "comment": "buildkit.dockerfile.v0", "empty_layer": true})
        );
        let mut img2 = Image::empty(&"linux/arm/v7".parse().unwrap());
        img2.set_platform(&"linux/arm/v7".parse().unwrap());
        let v: Value = serde_json::from_slice(&img2.to_json("x")).unwrap();
        assert_eq!((v["variant"].as_str(), v["config"]["WorkingDir"].as_str()), (Some("v7"), Some("/")));
    }
}
