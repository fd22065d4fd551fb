//! inputs_table: the five places that describe archway's CI inputs — `action.yml`, `pipe.yml`,
//! `templates/archway.yml` (its `spec:` header and its job) and README's GitHub, GitLab and
//! Bitbucket tables — checked against the code's table (`archway::ci::vars::INPUTS`), the one
//! source of truth: every input the code reads is listed, nothing else is, and each states the
//! code's default and starts its description with the code's one-line `doc`.
//!
//! Lab-free: reads files only. [`problems`] takes the files' text, so the second test can feed it
//! broken copies and show that each kind of drift is caught and named.

use std::collections::BTreeMap;

use archway::ci::vars::{self, INPUTS, InputDefault, InputKind, InputVar};
use serde::Deserialize;
use serde_norway::Value;

/// The texts compared; `real()` reads them from the repository.
#[derive(Clone)]
struct Files {
    action: String,
    pipe: String,
    component: String,
    readme: String,
}

fn real() -> Files {
    let read = |p: &str| {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    Files {
        action: read("action.yml"),
        pipe: read("pipe.yml"),
        component: read("templates/archway.yml"),
        readme: read("README.md"),
    }
}

/// Names a file may list beyond the code's inputs, each read by the code elsewhere or used by the
/// file itself: the action's token, the pipe's switches, the component's own job settings.
const ACTION_EXTRA: &[&str] = &["github-token"];
const PIPE_EXTRA: &[&str] = &[vars::PIPE_DEFAULT_BRANCH, vars::PIPE_DEBUG];
const COMPONENT_EXTRA: &[&str] = &["job-name", "stage", "archway-image", "dind-image", "docker-host", "runner-tags"];

/// Which CI a file describes.
#[derive(Clone, Copy)]
enum Ci {
    GitHub,
    Pipe,
    GitLab,
}

impl Ci {
    fn name(self, i: &InputVar) -> &'static str {
        match self {
            Ci::GitHub | Ci::GitLab => i.name,
            Ci::Pipe => i.pipe,
        }
    }
    /// The variable archway reads on this CI.
    fn var(self, i: &InputVar) -> &'static str {
        match self {
            Ci::GitHub => i.github,
            Ci::Pipe => i.pipe,
            Ci::GitLab => i.archway,
        }
    }
    fn default(self, i: &InputVar) -> InputDefault {
        match self {
            Ci::GitHub => i.github_default,
            Ci::Pipe => i.pipe_default,
            Ci::GitLab => i.gitlab_default,
        }
    }
    fn extra(self) -> &'static [&'static str] {
        match self {
            Ci::GitHub => ACTION_EXTRA,
            Ci::Pipe => PIPE_EXTRA,
            Ci::GitLab => COMPONENT_EXTRA,
        }
    }
}

/// One input as a file states it.
#[derive(Debug, Default)]
struct Stated {
    description: String,
    /// The literal default (`default:`), `None` when the file gives none.
    default: Option<String>,
    /// pipe.yml's `secret:`; the component's `type:`.
    secret: Option<bool>,
    kind: Option<String>,
}

/// For comparison: lower case, no backticks, whitespace collapsed.
fn norm(s: &str) -> String {
    s.replace('`', "").split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// `text` begins with `start`, as whole words.
fn starts_with_words(text: &str, start: &str) -> bool {
    let (t, s) = (norm(text), norm(start));
    t.strip_prefix(&s).is_some_and(|rest| rest.is_empty() || !rest.starts_with(|c: char| c.is_alphanumeric()))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        other => Some(serde_norway::to_string(other).unwrap_or_default().trim().to_string()),
    }
}

/// Compares what `file` states for `ci` with the code's table; `out` collects the differences.
fn compare_yaml(file: &str, ci: Ci, stated: &BTreeMap<String, Stated>, out: &mut Vec<String>) {
    for i in INPUTS {
        let name = ci.name(i);
        let want = ci.default(i);
        let Some(s) = stated.get(name) else {
            if want != InputDefault::NotListed {
                out.push(format!("{file}: input `{name}` is missing; the code reads it (`{}`)", ci.var(i)));
            }
            continue;
        };
        if want == InputDefault::NotListed {
            out.push(format!("{file}: input `{name}` should not be listed: on this CI it comes from masked variables"));
            continue;
        }
        if !starts_with_words(&s.description, i.doc) {
            out.push(format!(
                "{file}: input `{name}`: the description `{}` should start with `{}`",
                s.description.trim(),
                i.doc
            ));
        }
        if i.secret() && !norm(&s.description).contains("never printed") {
            out.push(format!("{file}: input `{name}` is a secret; its description should say it is never printed"));
        }
        let literal = match (ci, want) {
            (_, InputDefault::Value(v)) => Some(v.to_string()),
            // GitLab needs a default to make an input optional: the empty string.
            (Ci::GitLab, _) => Some(String::new()),
            _ => None,
        };
        if s.default != literal {
            let show = |d: &Option<String>| d.as_ref().map_or("none".to_string(), |d| format!("`{d}`"));
            out.push(format!(
                "{file}: input `{name}`: the default is {}, the code's is {}",
                show(&s.default),
                show(&literal)
            ));
        }
        if let Some(secret) = s.secret
            && secret != i.secret()
        {
            out.push(format!("{file}: input `{name}`: `secret: {secret}`, the code says {}", i.secret()));
        }
        if let Some(kind) = &s.kind {
            let want = if i.kind == InputKind::Bool { "boolean" } else { "string" };
            if kind != want {
                out.push(format!("{file}: input `{name}`: type `{kind}`, the code reads a {want}"));
            }
        }
    }
    for (name, s) in stated {
        if ci.extra().contains(&name.as_str()) {
            if s.description.trim().is_empty() {
                out.push(format!("{file}: input `{name}` has no description"));
            }
        } else if !INPUTS.iter().any(|i| ci.name(i) == name) {
            out.push(format!("{file}: input `{name}` is not one the code reads"));
        }
    }
}

/// One README table: the first backticked name of each row → (meaning, default) cells.
fn readme_table(
    readme: &str,
    heading: &str,
    header: &str,
    out: &mut Vec<String>,
) -> BTreeMap<String, (String, String)> {
    let mut rows = BTreeMap::new();
    let Some((_, section)) = readme.split_once(&format!("\n{heading}\n")) else {
        out.push(format!("README.md: no `{heading}` section"));
        return rows;
    };
    let Some((_, table)) = section.split_once(&format!("\n{header}\n")) else {
        out.push(format!("README.md: no `{header}` table under `{heading}`"));
        return rows;
    };
    for line in table.lines().skip(1).take_while(|l| l.starts_with('|')) {
        // `\|` is a pipe inside a cell.
        let line = line.replace("\\|", "\u{1}");
        let cells: Vec<String> =
            line.trim().trim_matches('|').split('|').map(|c| c.trim().replace('\u{1}', "|")).collect();
        if cells.len() < 3 {
            out.push(format!("README.md ({heading}): a row without name, meaning and default: {line}"));
            continue;
        }
        let Some(name) = cells[0].split('`').nth(1) else {
            out.push(format!("README.md ({heading}): a row without a backticked name: {line}"));
            continue;
        };
        let meaning = cells[cells.len() - 2].clone();
        let default = cells[cells.len() - 1].clone();
        if rows.insert(name.to_string(), (meaning, default)).is_some() {
            out.push(format!("README.md ({heading}): input `{name}` is listed twice"));
        }
    }
    rows
}

fn compare_readme(heading: &str, header: &str, ci: Ci, readme: &str, out: &mut Vec<String>) {
    let file = format!("README.md ({heading})");
    let rows = readme_table(readme, heading, header, out);
    for i in INPUTS {
        let name = ci.name(i);
        let want = ci.default(i);
        let Some((meaning, default)) = rows.get(name) else {
            if want != InputDefault::NotListed {
                out.push(format!("{file}: input `{name}` is missing; the code reads it (`{}`)", ci.var(i)));
            }
            continue;
        };
        if want == InputDefault::NotListed {
            out.push(format!("{file}: input `{name}` should not be listed: on this CI it comes from masked variables"));
            continue;
        }
        if !starts_with_words(meaning, i.doc) {
            out.push(format!("{file}: input `{name}`: the meaning `{meaning}` should start with `{}`", i.doc));
        }
        if i.secret() && !norm(meaning).contains("never printed") {
            out.push(format!("{file}: input `{name}` is a secret; its meaning should say it is never printed"));
        }
        let ok = match want {
            InputDefault::None | InputDefault::NotListed => default.is_empty(),
            InputDefault::Value(v) => starts_with_words(default, &format!("`{v}`")) && default.starts_with('`'),
            InputDefault::Computed(t) => starts_with_words(default, t),
        };
        if !ok {
            let code = match want {
                InputDefault::Value(v) => format!("`{v}`"),
                InputDefault::Computed(t) => t.to_string(),
                _ => "none".into(),
            };
            out.push(format!("{file}: input `{name}`: the default is [{default}], the code's is [{code}]"));
        }
    }
    for (name, (meaning, _)) in &rows {
        if ci.extra().contains(&name.as_str()) {
            if meaning.is_empty() {
                out.push(format!("{file}: input `{name}` has no meaning"));
            }
        } else if !INPUTS.iter().any(|i| ci.name(i) == name) {
            out.push(format!("{file}: input `{name}` is not one the code reads"));
        }
    }
}

fn parse(file: &str, text: &str, out: &mut Vec<String>) -> Vec<Value> {
    let mut docs = Vec::new();
    for d in serde_norway::Deserializer::from_str(text) {
        match Value::deserialize(d) {
            Ok(v) => docs.push(v),
            Err(e) => {
                // The iterator repeats a syntax error forever: stop at the first.
                out.push(format!("{file}: not YAML: {e}"));
                break;
            }
        }
    }
    docs
}

fn stated_map(file: &str, inputs: Option<&Value>, out: &mut Vec<String>) -> BTreeMap<String, Stated> {
    let mut map = BTreeMap::new();
    let Some(Value::Mapping(m)) = inputs else {
        out.push(format!("{file}: no inputs"));
        return map;
    };
    for (k, v) in m {
        let name = scalar(k).unwrap_or_default();
        map.insert(
            name,
            Stated {
                description: v.get("description").and_then(scalar).unwrap_or_default(),
                default: v.get("default").and_then(scalar),
                secret: None,
                kind: v.get("type").and_then(scalar),
            },
        );
    }
    map
}

/// Every difference between the files and the code's table, one line each naming the file and
/// the input; empty when they agree.
fn problems(f: &Files) -> Vec<String> {
    let mut out = Vec::new();

    // action.yml: `inputs:` with description and default, none required.
    let action = parse("action.yml", &f.action, &mut out);
    if let Some(a) = action.first() {
        let stated = stated_map("action.yml", a.get("inputs"), &mut out);
        compare_yaml("action.yml", Ci::GitHub, &stated, &mut out);
        for (name, input) in a.get("inputs").and_then(Value::as_mapping).into_iter().flatten() {
            if input.get("required").is_some_and(|r| r != &Value::Bool(false)) {
                out.push(format!("action.yml: input `{}` should not be required", scalar(name).unwrap_or_default()));
            }
        }
    }

    // pipe.yml: `variables:`, a list of name, description, default, secret.
    let pipe = parse("pipe.yml", &f.pipe, &mut out);
    if let Some(p) = pipe.first() {
        let mut stated = BTreeMap::new();
        match p.get("variables").and_then(Value::as_sequence) {
            None => out.push("pipe.yml: no `variables:` list".into()),
            Some(list) => {
                for v in list {
                    let name = v.get("name").and_then(scalar).unwrap_or_default();
                    let s = Stated {
                        description: v.get("description").and_then(scalar).unwrap_or_default(),
                        default: v.get("default").and_then(scalar),
                        secret: Some(v.get("secret").is_some_and(|s| s == &Value::Bool(true))),
                        kind: None,
                    };
                    if stated.insert(name.clone(), s).is_some() {
                        out.push(format!("pipe.yml: variable `{name}` is listed twice"));
                    }
                }
            }
        }
        compare_yaml("pipe.yml", Ci::Pipe, &stated, &mut out);
    }

    // The component: the `spec:` header, then the job that maps each input to `ARCHWAY_*`.
    let file = "templates/archway.yml";
    let docs = parse(file, &f.component, &mut out);
    if docs.len() != 2 {
        out.push(format!("{file}: {} YAML documents; expected the `spec:` header and the job", docs.len()));
    } else {
        let spec_inputs = docs[0].get("spec").and_then(|s| s.get("inputs"));
        let stated = stated_map(file, spec_inputs, &mut out);
        compare_yaml(file, Ci::GitLab, &stated, &mut out);
        let job = docs[1].as_mapping().and_then(|m| m.values().next());
        let variables = job.and_then(|j| j.get("variables")).and_then(Value::as_mapping);
        let variables: BTreeMap<String, String> = variables
            .into_iter()
            .flatten()
            .map(|(k, v)| (scalar(k).unwrap_or_default(), scalar(v).unwrap_or_default()))
            .collect();
        for i in INPUTS {
            let var = variables.get(i.archway);
            let want = format!("$[[ inputs.{} ]]", i.name);
            match (i.gitlab_default, var) {
                (InputDefault::NotListed, Some(_)) => out.push(format!(
                    "{file}: the job sets `{}` for input `{}`, which is no input here",
                    i.archway, i.name
                )),
                (InputDefault::NotListed, None) => {}
                (_, None) => out.push(format!("{file}: the job does not pass input `{}` as `{}`", i.name, i.archway)),
                (_, Some(v)) if *v != want => out
                    .push(format!("{file}: the job sets `{}: {v}`; expected `{want}` (input `{}`)", i.archway, i.name)),
                _ => {}
            }
        }
        for var in variables.keys().filter(|k| k.starts_with("ARCHWAY_") && *k != vars::ARCHWAY_DOTENV) {
            if !INPUTS.iter().any(|i| i.archway == var) {
                out.push(format!("{file}: the job sets `{var}`, which the code does not read"));
            }
        }
    }

    compare_readme("### GitHub Actions", "| input | meaning | default |", Ci::GitHub, &f.readme, &mut out);
    compare_readme("### GitLab CI/CD", "| input | type | meaning | default |", Ci::GitLab, &f.readme, &mut out);
    compare_readme("### Bitbucket Pipelines", "| variable | meaning | default |", Ci::Pipe, &f.readme, &mut out);
    compare_pipe_definition(&f.readme, &mut out);
    out
}

/// The Bitbucket section's parts in Atlassian's pipe README layout: the `#### YAML Definition`
/// snippet names every variable once — uncommented when the table marks it required `(*)`,
/// else commented `# Optional` — with `'<boolean>'` for switches and `'<string>'` otherwise;
/// and every example sets only variables the pipe has.
fn compare_pipe_definition(readme: &str, out: &mut Vec<String>) {
    let file = "README.md (### Bitbucket Pipelines)";
    let Some((_, section)) = readme.split_once("\n### Bitbucket Pipelines\n") else {
        return; // compare_readme named it
    };
    let section = section.split("\n### ").next().unwrap_or_default();
    for part in ["#### YAML Definition", "#### Variables", "#### Prerequisites", "#### Examples"] {
        if !section.contains(&format!("\n{part}\n")) {
            out.push(format!("{file}: no `{part}` part"));
        }
    }
    let yaml_blocks: Vec<&str> =
        section.split("```yaml\n").skip(1).filter_map(|b| b.split_once("\n```").map(|(y, _)| y)).collect();
    let Some(definition) = section
        .split_once("\n#### YAML Definition\n")
        .and_then(|(_, d)| d.split_once("```yaml\n"))
        .and_then(|(_, d)| d.split_once("\n```"))
        .map(|(y, _)| y)
    else {
        out.push(format!("{file}: no YAML block under `#### YAML Definition`"));
        return;
    };
    let required: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with("| `") && l.split('|').nth(1).is_some_and(|c| c.contains("(*)")))
        .filter_map(|l| l.split('`').nth(1).map(str::to_string))
        .collect();
    let mut listed = BTreeMap::new();
    for line in definition.lines().skip(2) {
        let t = line.trim();
        let (commented, t) = match t.strip_prefix("# ") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let Some((name, rest)) = t.split_once(": ") else {
            out.push(format!("{file}: YAML Definition line `{line}` is not `NAME: '<type>'`"));
            continue;
        };
        let optional = rest.ends_with(" # Optional");
        if commented != optional {
            out.push(format!("{file}: YAML Definition: `{name}` should be commented exactly when it is `# Optional`"));
        }
        if listed.insert(name.to_string(), (commented, rest.trim_end_matches(" # Optional").to_string())).is_some() {
            out.push(format!("{file}: YAML Definition lists `{name}` twice"));
        }
    }
    for i in INPUTS.iter().filter(|i| i.pipe_default != InputDefault::NotListed) {
        let Some((commented, ty)) = listed.remove(i.pipe) else {
            out.push(format!("{file}: YAML Definition lacks input `{}`", i.pipe));
            continue;
        };
        let want = if i.kind == InputKind::Bool { "'<boolean>'" } else { "'<string>'" };
        if ty != want {
            out.push(format!("{file}: YAML Definition gives input `{}` the type {ty}; expected {want}", i.pipe));
        }
        if commented == required.iter().any(|r| r == i.pipe) {
            let should =
                if commented { "uncommented: the table marks it required (*)" } else { "commented `# Optional`" };
            out.push(format!("{file}: YAML Definition: input `{}` should be {should}", i.pipe));
        }
    }
    for name in listed.keys().filter(|n| !PIPE_EXTRA.contains(&n.as_str())) {
        out.push(format!("{file}: YAML Definition lists input `{name}`, which the pipe does not read"));
    }
    // The examples: every `variables:` key is one of the pipe's.
    for block in yaml_blocks.iter().skip(1) {
        let mut in_vars = None;
        for line in block.lines() {
            let indent = line.len() - line.trim_start().len();
            if line.trim() == "variables:" {
                in_vars = Some(indent);
                continue;
            }
            match in_vars {
                Some(v) if indent > v => {
                    let name = line.trim().split(':').next().unwrap_or_default();
                    let known = PIPE_EXTRA.contains(&name) || INPUTS.iter().any(|i| i.pipe == name);
                    if !known {
                        out.push(format!("{file}: an example sets input `{name}`, which the pipe does not read"));
                    }
                }
                _ => in_vars = None,
            }
        }
    }
}

#[test]
fn every_file_states_the_codes_inputs_defaults_and_descriptions() {
    let p = problems(&real());
    assert!(p.is_empty(), "{} differences from `archway::ci::vars::INPUTS`:\n{}", p.len(), p.join("\n"));
}

/// `text` without the line `header` and the more indented lines under it.
fn remove_block(text: &str, header: &str) -> String {
    let indent = header.len() - header.trim_start().len();
    let mut out = String::new();
    let mut skipping = false;
    let mut found = false;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == header {
            skipping = true;
            found = true;
            continue;
        }
        if skipping {
            let i = line.len() - line.trim_start().len();
            if line.trim().is_empty() || i > indent {
                continue;
            }
            skipping = false;
        }
        out.push_str(line);
    }
    assert!(found, "no line `{header}`");
    out
}

/// `text` with `from` replaced once; it must be there.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "no `{from}`");
    text.replacen(from, to, 1)
}

/// `text` with the line that starts with `start` replaced by `f(line)`.
fn edit_line(text: &str, start: &str, f: impl Fn(&str) -> String) -> String {
    let line = text.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no line `{start}`"));
    text.replacen(line, &f(line), 1)
}

/// A README row with its last cell replaced.
fn with_default(line: &str, default: &str) -> String {
    let cut = line.trim_end().trim_end_matches('|').rfind('|').unwrap();
    format!("{}| {default} |", &line[..cut])
}

#[test]
fn broken_copies_fail_naming_the_file_and_the_input() {
    let ok = real();
    type Break = fn(&Files) -> Files;
    let cases: &[(&str, &str, &str, Break)] = &[
        ("action.yml without `target`", "action.yml", "`target`", |f| Files {
            action: remove_block(&f.action, "  target:"),
            ..f.clone()
        }),
        ("action.yml with another default platform", "action.yml", "`platforms`", |f| Files {
            action: replace(&f.action, "default: linux/amd64,linux/arm64", "default: linux/amd64"),
            ..f.clone()
        }),
        ("action.yml with an input the code ignores", "action.yml", "`cache-binary`", |f| Files {
            action: replace(&f.action, "\ninputs:\n", "\ninputs:\n  cache-binary:\n    description: Cache buildx.\n"),
            ..f.clone()
        }),
        ("action.yml describing annotations otherwise", "action.yml", "`annotations`", |f| Files {
            action: replace(&f.action, "      Annotations, `KEY=VALUE`", "      Index annotations, `KEY=VALUE`"),
            ..f.clone()
        }),
        ("pipe.yml without `NODES`", "pipe.yml", "`NODES`", |f| Files {
            pipe: remove_block(&f.pipe, "  - name: NODES"),
            ..f.clone()
        }),
        ("pipe.yml with another default for `BINFMT`", "pipe.yml", "`BINFMT`", |f| Files {
            pipe: replace(&f.pipe, "default: auto", "default: never"),
            ..f.clone()
        }),
        ("the component without `sbom`", "templates/archway.yml", "`sbom`", |f| Files {
            component: remove_block(&f.component, "    sbom:"),
            ..f.clone()
        }),
        ("the component with `push` off", "templates/archway.yml", "`push`", |f| Files {
            component: replace(
                &f.component,
                "      type: boolean\n      default: true",
                "      type: boolean\n      default: false",
            ),
            ..f.clone()
        }),
        ("the component's job without `ARCHWAY_TARGET`", "templates/archway.yml", "`target`", |f| Files {
            component: replace(&f.component, "    ARCHWAY_TARGET: $[[ inputs.target ]]\n", ""),
            ..f.clone()
        }),
        ("README's GitHub table without `prefer`", "README.md (### GitHub Actions)", "`prefer`", |f| Files {
            readme: remove_block(&f.readme, f.readme.lines().find(|l| l.starts_with("| `prefer` |")).unwrap()),
            ..f.clone()
        }),
        ("README's GitLab table with another default image", "README.md (### GitLab CI/CD)", "`image`", |f| Files {
            readme: edit_line(&f.readme, "| `image` | string |", |l| with_default(l, "`$CI_PROJECT_PATH`")),
            ..f.clone()
        }),
        ("README's pipe definition without `PUSH`", "README.md (### Bitbucket Pipelines)", "`PUSH`", |f| Files {
            readme: replace(&f.readme, "    # PUSH: '<boolean>' # Optional\n", ""),
            ..f.clone()
        }),
        ("README's pipe definition with `IMAGE` optional", "README.md (### Bitbucket Pipelines)", "`IMAGE`", |f| {
            Files {
                readme: replace(&f.readme, "    IMAGE: '<string>'\n", "    # IMAGE: '<string>' # Optional\n"),
                ..f.clone()
            }
        }),
        ("README's pipe example with a misspelt input", "README.md (### Bitbucket Pipelines)", "`PLATFORM`", |f| {
            Files {
                readme: replace(
                    &f.readme,
                    "          PLATFORMS: linux/amd64,linux/arm64,linux/arm/v7",
                    "          PLATFORM: linux/arm64",
                ),
                ..f.clone()
            }
        }),
        ("README's Bitbucket table with `PUSH` off", "README.md (### Bitbucket Pipelines)", "`PUSH`", |f| Files {
            readme: edit_line(&f.readme, "| `PUSH` |", |l| with_default(l, "`false`")),
            ..f.clone()
        }),
    ];
    for (what, file, input, break_it) in cases {
        let p = problems(&break_it(&ok));
        assert!(
            p.iter().any(|l| l.starts_with(&format!("{file}:")) && l.contains(input)),
            "{what}: expected a difference in {file} naming {input}, got:\n{}",
            p.join("\n")
        );
    }
}
