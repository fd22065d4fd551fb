//! json: `--progress rawjson`. Every line on stderr is one JSON object with a `platform` field:
//! buildx's own events (`--progress rawjson`: `vertexes`, `statuses`, `logs`, `warnings`)
//! passed through with the platform added, and archway's own as
//! `{"platform": …, "event": "started" | "log" | "upload" | "pushed" | "done" | "failed", …}`
//! (a line of the assembler or another builder is a `log` event with its `message`).
//!
//! An event of a build of several platforms at once belongs to the platform its vertexes name
//! (`[linux/arm64 2/3] RUN …`), remembered by vertex digest for its statuses and logs; one
//! that names none, or several, carries them all, comma-separated.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use crate::builder::buildx::Steps;
use crate::ci::Reporter;
use crate::platform::Platform;

#[derive(Default)]
pub struct Json {
    /// The platform of each vertex digest seen in a build of several platforms.
    owners: Mutex<HashMap<String, Platform>>,
    /// buildx writes each event indented over several lines: the lines of the event under way,
    /// by the platforms it comes from.
    partial: Mutex<HashMap<String, String>>,
}

impl Json {
    /// One of archway's own events.
    pub fn event(&self, reporter: &dyn Reporter, platform: &str, event: &str, fields: Value) {
        let mut m = Map::new();
        m.insert("platform".into(), platform.into());
        m.insert("event".into(), event.into());
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        reporter.line(&Value::Object(m).to_string());
    }

    /// Collects an event written over several lines (`{` … `}`): `None` until it is whole.
    fn whole(&self, from: &str, line: &str) -> Option<String> {
        let mut partial = self.partial.lock().unwrap();
        match partial.get_mut(from) {
            Some(buf) => {
                buf.push_str(line);
                buf.push('\n');
                if line == "}" { partial.remove(from) } else { None }
            }
            None if line == "{" => {
                partial.insert(from.to_string(), "{\n".into());
                None
            }
            None => Some(line.to_string()),
        }
    }

    /// A line of one platform's builder: buildx's JSON event, or a line of text.
    pub fn output(&self, reporter: &dyn Reporter, platform: &Platform, line: &str) {
        let Some(line) = self.whole(&platform.to_string(), line) else { return };
        let line = line.as_str();
        match object(line) {
            Some(m) => reporter.line(&with_platform(&platform.to_string(), m)),
            None if line.trim().is_empty() => {}
            None => self.event(reporter, &platform.to_string(), "log", json!({ "message": line })),
        }
    }

    /// A line of a build of several platforms that buildx did not attribute to one.
    pub fn shared(&self, reporter: &dyn Reporter, platforms: &[Platform], line: &str) {
        let all = platforms.iter().map(Platform::to_string).collect::<Vec<_>>().join(",");
        let Some(line) = self.whole(&all, line) else { return };
        let line = line.as_str();
        let Some(m) = object(line) else {
            if !line.trim().is_empty() {
                self.event(reporter, &all, "log", json!({ "message": line }));
            }
            return;
        };
        let mut owners = self.owners.lock().unwrap();
        let mut steps = Steps::new(platforms);
        let mut named: Vec<Platform> = Vec::new();
        for v in m.get("vertexes").and_then(Value::as_array).into_iter().flatten() {
            let (Some(digest), Some(name)) = (v["digest"].as_str(), v["name"].as_str()) else { continue };
            if let Some(p) = steps.route(&format!("#0 {name}")) {
                owners.insert(digest.to_string(), p);
            }
        }
        for key in ["vertexes", "statuses", "logs", "warnings"] {
            for item in m.get(key).and_then(Value::as_array).into_iter().flatten() {
                let vertex = item.get("digest").filter(|_| key == "vertexes").or_else(|| item.get("vertex"));
                if let Some(p) = vertex.and_then(Value::as_str).and_then(|d| owners.get(d))
                    && !named.contains(p)
                {
                    named.push(p.clone());
                }
            }
        }
        let platform = match named.as_slice() {
            [one] => one.to_string(),
            _ => all,
        };
        reporter.line(&with_platform(&platform, m));
    }
}

fn object(line: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(line.trim()) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The event with `platform` first.
fn with_platform(platform: &str, m: Map<String, Value>) -> String {
    let mut out = Map::new();
    out.insert("platform".into(), platform.into());
    out.extend(m.into_iter().filter(|(k, _)| k != "platform"));
    Value::Object(out).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);
    impl Reporter for Lines {
        fn mask(&self, _: &crate::secret::Secret) {}
        fn group_start(&self, _: &str) {}
        fn group_end(&self) {}
        fn error(&self, _: Option<&str>, _: Option<u32>, _: &str) {}
        fn warning(&self, _: Option<&str>, _: Option<u32>, _: &str) {}
        fn info(&self, _: &str) {}
        fn debug(&self, _: &str) {}
        fn line(&self, text: &str) {
            self.0.lock().unwrap().push(text.to_string());
        }
        fn success(&self, _: &str) {}
        fn failure(&self, _: &str) {}
    }

    #[test]
    fn every_event_gets_its_platform() {
        let r = Lines::default();
        let j = Json::default();
        let (amd, arm): (Platform, Platform) = ("linux/amd64".parse().unwrap(), "linux/arm64".parse().unwrap());
        let both = [amd.clone(), arm.clone()];
        j.output(&r, &amd, r#"{"vertexes":[{"digest":"sha256:a","name":"[2/2] RUN make"}]}"#);
        j.output(&r, &amd, "[build] COPY . /src");
        for l in ["{", r#"  "statuses": [{"vertex": "sha256:a", "id": "x"}]"#, "}"] {
            j.output(&r, &amd, l);
        }
        j.shared(&r, &both, r#"{"vertexes":[{"digest":"sha256:b","name":"[linux/arm64 2/2] RUN make"}]}"#);
        j.shared(&r, &both, r#"{"logs":[{"vertex":"sha256:b","data":"aGk="}]}"#);
        j.shared(&r, &both, r#"{"vertexes":[{"digest":"sha256:c","name":"[internal] load build definition"}]}"#);
        let platforms: Vec<String> =
            r.0.lock()
                .unwrap()
                .iter()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["platform"].as_str().unwrap().to_string())
                .collect();
        assert_eq!(
            platforms,
            ["linux/amd64", "linux/amd64", "linux/amd64", "linux/arm64", "linux/arm64", "linux/amd64,linux/arm64"]
        );
    }
}
