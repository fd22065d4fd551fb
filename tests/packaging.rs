//! Packaging: archway's own image, the GitHub action (`action.yml`), the GitLab component
//! (`templates/archway.yml`), the Bitbucket pipe (`pipe.yml`) and the CI examples
//! (`ci-examples/`), checked with the validators `scripts/ci-tools` installs into `.tools/`
//! (action-validator, actionlint, check-jsonschema with its vendored schemas) and against
//! archway's own list of CI inputs; and the image built with archway itself, no emulation.
//!
//! The validators run with every proxy variable pointing at a closed port, so a validator that
//! tried to fetch a schema would fail: they must work offline.

#![cfg(feature = "lab")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use archway::ci::vars;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.tools/bin`, after `scripts/ci-tools` (idempotent, and locked against concurrent runs).
fn tools() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out =
            Command::new(root().join("scripts/ci-tools")).current_dir(root()).output().expect("scripts/ci-tools runs");
        assert!(out.status.success(), "scripts/ci-tools failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let bin = root().join(".tools/bin");
        for t in ["action-validator", "actionlint", "check-jsonschema"] {
            assert!(bin.join(t).exists(), "scripts/ci-tools installed no {t}");
        }
        bin
    })
}

/// Runs a validator from `.tools/bin` with the network made unusable.
fn tool(name: &str, args: &[&str]) -> Output {
    let mut c = Command::new(tools().join(name));
    c.args(args).current_dir(root());
    for v in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"] {
        c.env(v, "http://127.0.0.1:9");
    }
    c.env_remove("NO_PROXY").env_remove("no_proxy");
    c.output().unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no YAML files in {dir}");
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// Every YAML document in the file, as JSON (through ruamel.yaml, which check-jsonschema
/// brings into the tools' venv; YAML 1.2, so `on:` stays a string key).
fn yaml_docs(path: &Path) -> Vec<Value> {
    tools();
    const SCRIPT: &str = "import sys, json\nfrom ruamel.yaml import YAML\n\
        with open(sys.argv[1]) as f:\n    docs = list(YAML(typ='safe').load_all(f))\n\
        json.dump(docs, sys.stdout, default=str)\n";
    let out = Command::new(root().join(".tools/venv/bin/python")).args(["-c", SCRIPT]).arg(path).output().unwrap();
    assert_ok(&format!("parsing {}", rel(path)), &out);
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("{other}"),
    }
}

fn yaml(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{} should hold one YAML document", rel(path));
    docs.remove(0)
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// The first column (backticked names) of the table that follows `heading` in README.md, up to
/// the first blank line after the table started; `start` is text of the header row.
fn readme_table(heading: &str, header: &str) -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split_once(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("README has no `{heading}`")).1;
    let table = section.split_once(header).unwrap_or_else(|| panic!("no `{header}` table under `{heading}`")).1;
    let mut names = BTreeSet::new();
    for line in table.lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let first = line.trim_start_matches('|').split('|').next().unwrap();
        // `IMAGE` (*), `labels`, `LABELS`, `ANNOTATIONS`: every backticked name in the cell.
        for (i, part) in first.split('`').enumerate() {
            if i % 2 == 1 {
                names.insert(part.to_string());
            }
        }
    }
    assert!(!names.is_empty(), "the `{header}` table under `{heading}` is empty");
    names
}

fn write_json(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

// ------------------------------------------------------------------------- GitHub

#[test]
fn action_yml_and_github_examples_pass_action_validator() {
    let mut paths = vec![root().join("action.yml")];
    paths.extend(files("ci-examples/github"));
    for p in &paths {
        let out = tool("action-validator", &[p.to_str().unwrap()]);
        assert_ok(&format!("action-validator {}", rel(p)), &out);
    }
}

#[test]
fn github_examples_pass_actionlint() {
    let paths = files("ci-examples/github");
    let mut args = vec!["-no-color"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let out = tool("actionlint", &args);
    assert_ok("actionlint ci-examples/github/*.yml", &out);
}

/// A workflow written for docker/build-push-action, with only `uses:` changed to this action:
/// actionlint (which reads `./action.yml` for `uses: ./` in a repository's workflow) reports
/// no unknown input. And the same workflow with an input archway lacks is reported, naming it
/// (proof the check can fail).
#[test]
fn a_build_push_action_workflow_with_only_uses_changed_passes_actionlint() {
    let lint = |extra: &str| {
        let repo = tempfile::tempdir().unwrap();
        let workflows = repo.path().join(".github/workflows");
        std::fs::create_dir_all(&workflows).unwrap();
        std::fs::create_dir(repo.path().join(".git")).unwrap();
        std::fs::copy(root().join("action.yml"), repo.path().join("action.yml")).unwrap();
        let text = std::fs::read_to_string(root().join("tests/fixtures/github/build-push-action-swapped.yml")).unwrap();
        let text = text
            .replace("          ulimit: nofile=1024:1024\n", &format!("          ulimit: nofile=1024:1024\n{extra}"));
        std::fs::write(workflows.join("build.yml"), text).unwrap();
        let mut c = Command::new(tools().join("actionlint"));
        c.args(["-no-color"]).current_dir(repo.path());
        c.output().expect("actionlint runs")
    };
    let out = lint("");
    assert_ok("actionlint on a build-push-action workflow using archway", &out);
    let out = lint("          not-an-archway-input: x\n");
    assert!(!out.status.success(), "an unknown input must be reported");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("input \"not-an-archway-input\" is not defined"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn action_inputs_are_archways_inputs_described_and_in_the_readme() {
    let action = yaml(&root().join("action.yml"));
    let inputs = &action["inputs"];
    let names = keys(inputs);
    let mut expected: BTreeSet<String> = vars::INPUTS.iter().map(|i| i.name.to_string()).collect();
    expected.insert("github-token".into());
    assert_eq!(names, expected, "action.yml's inputs should be archway's CI inputs plus github-token");
    for (name, input) in inputs.as_object().unwrap() {
        let d = input["description"].as_str().unwrap_or("");
        assert!(d.trim().len() > 10, "input `{name}` has no description");
        assert!(input.get("required").is_none_or(|r| r == false), "input `{name}` should not be required");
    }
    assert_eq!(inputs["github-token"]["default"], "${{ github.token }}");
    assert_eq!(inputs["platforms"]["default"], "linux/amd64,linux/arm64");
    // Every output the code writes (`ci::github::output_values`), build-push-action's `imageid` among them.
    let written =
        archway::ci::github::output_values(&Default::default()).into_iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys(&action["outputs"]), written);
    for (name, output) in action["outputs"].as_object().unwrap() {
        assert!(output["description"].as_str().is_some_and(|d| !d.trim().is_empty()), "output `{name}`");
    }
    assert_eq!(action["runs"]["using"], "docker");
    assert!(action["runs"]["image"].as_str().unwrap().starts_with("docker://"), "{}", action["runs"]["image"]);
    assert!(action["branding"]["icon"].is_string() && action["branding"]["color"].is_string());

    assert_eq!(readme_table("### GitHub Actions", "| input | meaning | default |"), names, "README's GitHub table");
}

// ------------------------------------------------------------------------- GitLab

#[test]
fn gitlab_examples_pass_the_gitlab_ci_schema() {
    for p in files("ci-examples/gitlab") {
        let out = tool("check-jsonschema", &["--builtin-schema", "vendor.gitlab-ci", p.to_str().unwrap()]);
        assert_ok(&format!("check-jsonschema vendor.gitlab-ci {}", rel(&p)), &out);
    }
}

/// `$[[ inputs.NAME ]]` blocks in a string: (start, end, NAME).
fn interpolations(s: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find("$[[") {
        let start = from + i;
        let end = start + s[start..].find("]]").unwrap_or_else(|| panic!("unclosed `$[[` in {s:?}")) + 2;
        let inner = s[start + 3..end - 2].trim();
        let name = inner.strip_prefix("inputs.").unwrap_or_else(|| panic!("{inner:?}: only inputs are interpolated"));
        assert!(!name.contains(['|', ' ']), "{inner:?}: no functions expected");
        out.push((start, end, name.to_string()));
        from = end;
    }
    out
}

/// The job document with every `$[[ inputs.X ]]` replaced as GitLab does: a string that is
/// only the block takes the input's typed value, else the value is put into the string.
fn render(v: &Value, values: &BTreeMap<String, Value>, used: &mut BTreeSet<String>) -> Value {
    let text = |s: &str, used: &mut BTreeSet<String>| -> Value {
        let blocks = interpolations(s);
        for (_, _, n) in &blocks {
            assert!(values.contains_key(n), "`$[[ inputs.{n} ]]` is not a declared input");
            used.insert(n.clone());
        }
        if let [(0, end, n)] = blocks.as_slice()
            && *end == s.len()
        {
            return values[n].clone();
        }
        let mut out = String::new();
        let mut last = 0;
        for (start, end, n) in blocks {
            out.push_str(&s[last..start]);
            match &values[&n] {
                Value::String(x) => out.push_str(x),
                other => out.push_str(&other.to_string()),
            }
            last = end;
        }
        out.push_str(&s[last..]);
        Value::String(out)
    };
    match v {
        Value::String(s) => text(s, used),
        Value::Array(a) => Value::Array(a.iter().map(|x| render(x, values, used)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let key = match text(k, used) {
                        Value::String(s) => s,
                        other => panic!("key {k:?} renders to {other}"),
                    };
                    (key, render(x, values, used))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn gitlab_component_header_and_rendered_job_pass_the_schema_and_map_every_input() {
    let path = root().join("templates/archway.yml");
    let docs = yaml_docs(&path);
    assert_eq!(docs.len(), 2, "a component is a `spec:` header, `---`, then the jobs");
    let (header, body) = (&docs[0], &docs[1]);
    assert_eq!(keys(header), ["spec".to_string()].into());
    let inputs = header["spec"]["inputs"].as_object().expect("spec: inputs:");

    // Typed, described, with a default (zero configuration), the default of the right type.
    let mut defaults = BTreeMap::new();
    for (name, input) in inputs {
        let ty = input["type"].as_str().unwrap_or_else(|| panic!("input `{name}` has no type"));
        let d = &input["default"];
        let ok = match ty {
            "string" => d.is_string(),
            "boolean" => d.is_boolean(),
            "array" => d.is_array(),
            other => panic!("input `{name}`: unexpected type {other}"),
        };
        assert!(ok, "input `{name}`: default {d} is not a {ty}");
        assert!(input["description"].as_str().is_some_and(|s| s.len() > 10), "input `{name}` has no description");
        defaults.insert(name.clone(), d.clone());
    }
    assert_eq!(defaults["platforms"], "linux/amd64,linux/arm64");
    assert_eq!(defaults["image"], "$CI_REGISTRY_IMAGE");
    assert_eq!(defaults["push"], true);
    assert_eq!(defaults["stage"], "build");

    // Rendered with the defaults, and with every boolean flipped and runner tags given.
    let mut used = BTreeSet::new();
    let job_default = render(body, &defaults, &mut used);
    let unused: Vec<_> = defaults.keys().filter(|k| !used.contains(*k)).collect();
    assert!(unused.is_empty(), "inputs never used by the job: {unused:?}");
    let mut other = defaults.clone();
    for v in other.values_mut() {
        if let Value::Bool(b) = v {
            *b = !*b;
        }
    }
    other.insert("runner-tags".into(), serde_json::json!(["saas-linux-small-arm64"]));
    other.insert("job-name".into(), "build-image".into());
    let job_other = render(body, &other, &mut BTreeSet::new());

    let dir = tempfile::tempdir().unwrap();
    let files = [
        write_json(dir.path(), "spec.json", header),
        write_json(dir.path(), "job-defaults.json", &job_default),
        write_json(dir.path(), "job-other.json", &job_other),
    ];
    for f in &files {
        let out = tool("check-jsonschema", &["--builtin-schema", "vendor.gitlab-ci", f.to_str().unwrap()]);
        assert_ok(&format!("check-jsonschema vendor.gitlab-ci {} of templates/archway.yml", f.display()), &out);
    }

    // The job: archway's image with a shell entrypoint, dind, every input as ARCHWAY_*.
    let job = &job_default["archway"];
    assert!(job.is_object(), "the job is named by `job-name`: {job_default}");
    assert_eq!(job_other["build-image"]["tags"], serde_json::json!(["saas-linux-small-arm64"]));
    assert_eq!(job["image"]["entrypoint"], serde_json::json!([""]));
    assert_eq!(job["services"][0]["alias"], "docker");
    assert_eq!(job["artifacts"]["reports"]["dotenv"], "archway.env");
    let variables = job["variables"].as_object().unwrap();
    let archway_vars: BTreeSet<String> = variables.keys().filter(|k| k.starts_with("ARCHWAY_")).cloned().collect();
    let mut expected: BTreeSet<String> = vars::INPUTS
        .iter()
        .filter(|i| i.gitlab_default != vars::InputDefault::NotListed) // secrets: CI/CD variables, not inputs
        .map(|i| i.archway.to_string())
        .collect();
    expected.insert(vars::ARCHWAY_DOTENV.to_string());
    assert_eq!(archway_vars, expected, "the component's ARCHWAY_* variables");
    for i in vars::INPUTS.iter().filter(|i| i.gitlab_default != vars::InputDefault::NotListed) {
        assert!(inputs.contains_key(i.name), "the component has no input `{}`", i.name);
        let raw = &body["$[[ inputs.job-name ]]"]["variables"][i.archway];
        assert_eq!(raw, &Value::String(format!("$[[ inputs.{} ]]", i.name)), "{} maps input `{}`", i.archway, i.name);
    }
    assert_eq!(variables["ARCHWAY_PUSH"], true);
    assert_eq!(variables["DOCKER_HOST"], "tcp://docker:2376");
}

#[test]
fn gitlab_single_job_example_includes_the_component() {
    let ex = yaml(&root().join("ci-examples/gitlab/single-job.yml"));
    let component = ex["include"][0]["component"].as_str().expect("include: component:");
    assert!(component.ends_with("/archway@1"), "{component}: the component is templates/archway.yml");
    let inputs = keys(&ex["include"][0]["inputs"]);
    let declared = keys(&yaml_docs(&root().join("templates/archway.yml"))[0]["spec"]["inputs"]);
    assert!(inputs.is_subset(&declared), "undeclared inputs: {:?}", inputs.difference(&declared).collect::<Vec<_>>());
}

// ------------------------------------------------------------------------- Bitbucket

#[test]
fn bitbucket_examples_pass_the_bitbucket_schema_and_use_known_variables() {
    let table = readme_table("### Bitbucket Pipelines", "| variable | meaning | default |");
    let mut expected: BTreeSet<String> = vars::INPUTS.iter().map(|i| i.pipe.to_string()).collect();
    expected.insert(vars::PIPE_DEBUG.into());
    expected.insert(vars::PIPE_DEFAULT_BRANCH.into());
    assert_eq!(table, expected, "README's Bitbucket variables table should be archway's pipe variables");

    for p in files("ci-examples/bitbucket") {
        let out = tool("check-jsonschema", &["--builtin-schema", "vendor.bitbucket-pipelines", p.to_str().unwrap()]);
        assert_ok(&format!("check-jsonschema vendor.bitbucket-pipelines {}", rel(&p)), &out);
        // Every archway pipe: a step with the docker service, variables archway knows.
        let doc = yaml(&p);
        let mut pipes = 0;
        let mut steps = Vec::new();
        collect_steps(&doc["pipelines"], &mut steps);
        for step in steps {
            for item in step["script"].as_array().into_iter().flatten() {
                let Some(pipe) = item["pipe"].as_str() else { continue };
                assert!(pipe.starts_with("docker://") && pipe.contains("/archway:"), "{}: {pipe}", rel(&p));
                // The no-docker example assembles without an engine; every other pipe step builds
                // with the step's Docker service.
                let no_docker = rel(&p).contains("no-docker");
                assert_eq!(
                    step["services"].as_array().is_some_and(|s| s.contains(&"docker".into())),
                    !no_docker,
                    "{}: services: [docker] {}",
                    rel(&p),
                    if no_docker { "must be absent" } else { "is needed" }
                );
                let used = keys(&item["variables"]);
                let unknown: Vec<_> = used.difference(&expected).collect();
                assert!(unknown.is_empty(), "{}: unknown pipe variables {unknown:?}", rel(&p));
                pipes += 1;
            }
        }
        assert!(pipes > 0, "{} uses no archway pipe", rel(&p));
    }
}

fn collect_steps<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if let Some(step) = m.get("step") {
                out.push(step);
            }
            m.values().for_each(|x| collect_steps(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_steps(x, out)),
        _ => {}
    }
}

#[test]
fn pipe_yml_has_the_pipe_metadata() {
    let pipe = yaml(&root().join("pipe.yml"));
    for k in ["name", "image", "category", "description", "repository", "maintainer", "vendor", "tags"] {
        assert!(!pipe[k].is_null(), "pipe.yml has no `{k}`");
    }
    let action = yaml(&root().join("action.yml"));
    assert_eq!(
        format!("docker://{}", pipe["image"].as_str().unwrap()),
        action["runs"]["image"].as_str().unwrap(),
        "the pipe and the action run the same image"
    );
    // bitbucket-pipes-toolkit's version check: the image is tagged with the release, X.Y.Z.
    let tag = pipe["image"].as_str().unwrap().rsplit(':').next().unwrap();
    assert_eq!(tag, env!("CARGO_PKG_VERSION"), "pipe.yml's image is tagged with archway's version");
}

// ------------------------------------------------------------------------- the image

#[test]
fn dockerfile_runs_only_on_the_build_platform_and_not_in_the_final_stage() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let word = |l: &str| l.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    let mut stage: Option<&str> = None;
    let mut runs_in_last = false;
    for l in text.lines() {
        match word(l).as_str() {
            "FROM" => {
                stage = Some(l);
                runs_in_last = false;
            }
            "RUN" => {
                let from = stage.expect("RUN before FROM");
                assert!(from.contains("--platform=$BUILDPLATFORM"), "RUN in a stage for the target platform: {from}");
                runs_in_last = true;
            }
            _ => {}
        }
    }
    assert!(!runs_in_last, "the final stage must have no RUN");
    assert!(text.contains(r#"ENTRYPOINT ["/usr/local/bin/archway"]"#));
}

#[test]
fn archway_image_builds_itself_without_emulation() {
    let lab = support::lab::lab();
    // Runs the arm64 image under QEMU: the handlers must stay registered meanwhile.
    let _machine = support::machine::lock();
    let reference = format!("{}/archway/archway:test-{}", lab.registry, std::process::id());
    let reference = reference.as_str();
    let started = std::time::Instant::now();
    let out = Command::new(root().join("scripts/build-image"))
        .args(["--push", reference])
        .current_dir(root())
        .env_remove("ARCHWAY_REGISTRY_USERNAME")
        .env_remove("ARCHWAY_REGISTRY_PASSWORD")
        .output()
        .expect("scripts/build-image runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scripts/build-image --push {reference} failed:\n{stdout}\n{stderr}");
    eprintln!("scripts/build-image took {:.0?}", started.elapsed());
    for l in stderr.lines().filter(|l| l.starts_with("build-image: ") && !l.contains(" build /")) {
        eprintln!("  {l}");
    }

    // The plan archway printed: every platform assembled (the binaries come from `dist/`, so
    // no stage the image needs runs code), native or cross — none emulated.
    let all = format!("{stdout}\n{stderr}");
    let plan = all.split_once("PLATFORM     STRATEGY").unwrap_or_else(|| panic!("no plan in the output:\n{all}")).1;
    let rows: BTreeMap<String, String> = plan
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("linux/"))
        .map(|l| {
            let mut f = l.split_whitespace();
            (f.next().unwrap().to_string(), f.next().unwrap().to_string())
        })
        .collect();
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), ["linux/amd64", "linux/arm64"], "{plan}");
    for (platform, strategy) in &rows {
        assert!(
            ["assembled", "native", "cross"].contains(&strategy.as_str()),
            "{platform} planned as {strategy}:\n{plan}"
        );
    }
    assert!(!all.lines().any(|l| l.contains("building emulated")), "nothing may be emulated:\n{all}");

    // The registry holds an index with both platforms.
    let (name, tag) = reference.rsplit_once(':').unwrap();
    let (content_type, bytes) = support::lab::manifest(name, tag).expect("the tag exists");
    assert!(content_type.contains("index") || content_type.contains("manifest.list"), "{content_type}");
    let index = support::lab::json(&bytes);
    let platforms: BTreeSet<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| Some(format!("{}/{}", m["platform"]["os"].as_str()?, m["platform"]["architecture"].as_str()?)))
        .filter(|p| p != "unknown/unknown")
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"].map(String::from).into(), "{index}");

    // Both run: amd64 natively, arm64 under QEMU; docker and buildx inside run too.
    let want = format!("archway {}", env!("CARGO_PKG_VERSION"));
    for platform in ["linux/amd64", "linux/arm64"] {
        let run = |extra: &[&str]| {
            let out = Command::new("docker")
                .args(["run", "--rm", "--pull", "always", "--platform", platform])
                .args(extra)
                .output()
                .unwrap();
            assert_ok(&format!("docker run --platform {platform} {extra:?}"), &out);
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(run(&[reference, "--version"]), want, "{platform}");
        let buildx = run(&["--entrypoint", "/usr/bin/docker", reference, "buildx", "version"]);
        assert!(buildx.contains("buildx"), "{platform}: {buildx}");
    }
    // Entrypoint and labels, from each image's config in the registry.
    for m in index["manifests"].as_array().unwrap().iter().filter(|m| m["platform"]["os"] == "linux") {
        let digest = m["digest"].as_str().unwrap();
        let (_, manifest) = support::lab::manifest(name, digest).expect("child manifest");
        let manifest = support::lab::json(&manifest);
        let config = support::lab::json(&support::lab::blob(name, manifest["config"]["digest"].as_str().unwrap()));
        assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/usr/local/bin/archway"]), "{m}");
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["build"]), "{m}");
        assert_eq!(config["config"]["Labels"]["org.opencontainers.image.title"], "archway", "{m}");
        assert_eq!(config["config"]["Labels"]["org.opencontainers.image.licenses"], "Apache-2.0", "{m}");
    }
    let _ = Command::new("docker").args(["image", "rm", reference]).output();
}
