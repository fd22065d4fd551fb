//! Secrets everywhere (issue 12): every input that carries a secret — the registry password of
//! each CI's spelling, `ARCHWAY_REGISTRY_PASSWORD`, the `registry-auth` list, each CI's own tokens, the build secrets
//! (`secrets`, `secret-envs`, `secret-files`) and a Docker config's `auths` — set at once, each to
//! a value of its own, for every subcommand in every CI dialect; then every byte archway wrote
//! is searched for each value (whole, a distinctive piece of it, and as HTTP Basic credentials):
//! stdout, stderr, `$GITHUB_OUTPUT`, the step summary, the dotenv report, Bitbucket's variables
//! and result file, the `--metadata-file`, and the OCI layout archway assembled (every file, the
//! layers gunzipped). GitHub's `::add-mask::` lines are the one place a secret may appear.
//!
//! No engine and no lab: the registry is a scripted one that answers every request with a
//! Basic challenge, so archway sends the credentials it has and fails on each registry
//! subcommand after using them (checked: the registry saw the password).

mod support;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use archway::ci;
use archway::ci::vars;
use base64::Engine as _;
use support::dialect::{DIALECTS, Dialect};
use support::reqresp::{Server, Step};

/// (name, value) pairs: secrets by label, variables by name.
type Pairs = Vec<(String, String)>;

/// A value no other input has, with the characters escaping gets wrong.
fn secret_value(label: &str) -> String {
    format!("Zq7{}-s3cr%t:,\"x'9", label.replace(['-', '_', ' '], ""))
}

/// Every secret input of `dialect` as (label, variable, value), and the other variables the
/// run needs to use them.
fn secret_inputs(d: Dialect, inputs_dir: &Path, registry: &str) -> (Pairs, Pairs) {
    let mut secrets: Vec<(String, String)> = Vec::new(); // (label, value)
    let mut env: Vec<(String, String)> = Vec::new();
    let put = |label: &str, var: &str, env: &mut Vec<(String, String)>, secrets: &mut Vec<(String, String)>| {
        let v = secret_value(label);
        env.push((var.into(), v.clone()));
        secrets.push((label.into(), v));
    };
    // The registry password input as this CI spells it, and archway's own.
    put(&format!("password input {}", d.var(&vars::PASSWORD)), d.var(&vars::PASSWORD), &mut env, &mut secrets);
    if d.var(&vars::PASSWORD) != vars::PASSWORD.archway {
        put("ARCHWAY_REGISTRY_PASSWORD", vars::PASSWORD.archway, &mut env, &mut secrets);
        env.push((vars::USERNAME.archway.into(), "robot".into()));
    }
    env.push((d.var(&vars::USERNAME).into(), "robot".into()));
    // The CI's own tokens.
    for var in ci::for_provider(d.provider()).secret_vars() {
        if !env.iter().any(|(k, _)| k == var) {
            put(var, var, &mut env, &mut secrets);
        }
    }
    // The registry-auth list: a password for another registry, YAML-quoted.
    let listed = secret_value("registry-auth list");
    env.push((
        d.var(&vars::REGISTRY_AUTH).into(),
        format!("- registry: other.example\n  username: lister\n  password: '{}'\n", listed.replace('\'', "''")),
    ));
    secrets.push(("registry-auth list password".into(), listed));
    // Build secrets: values, from a variable, from a file (outside the context).
    let (s1, s2) = (secret_value("secrets one"), secret_value("secrets two"));
    env.push((d.var(&vars::SECRETS).into(), format!("one={s1}\ntwo={s2}\n")));
    secrets.push(("secrets input (first)".into(), s1));
    secrets.push(("secrets input (second)".into(), s2));
    put("secret-envs variable", "MY_BUILD_TOKEN", &mut env, &mut secrets);
    env.push((d.var(&vars::SECRET_ENVS).into(), "tok=MY_BUILD_TOKEN".into()));
    let file_secret = secret_value("secret-files");
    std::fs::write(inputs_dir.join("token.txt"), &file_secret).unwrap();
    secrets.push(("secret-files content".into(), file_secret));
    env.push((d.var(&vars::SECRET_FILES).into(), format!("file={}", inputs_dir.join("token.txt").display())));
    // A Docker config with credentials for the registry.
    let docker = secret_value("docker config");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("dockeruser:{docker}"));
    std::fs::create_dir_all(inputs_dir.join("docker")).unwrap();
    std::fs::write(
        inputs_dir.join("docker/config.json"),
        serde_json::json!({"auths": {registry: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    env.push(("DOCKER_CONFIG".into(), inputs_dir.join("docker").display().to_string()));
    secrets.push(("Docker config auth".into(), docker));
    (secrets, env)
}

/// Every file under `dir` (gzip layers also gunzipped), as (path, bytes).
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut plain).unwrap();
            out.push((format!("{} (gunzipped)", p.display()), plain));
        }
        out.push((p.display().to_string(), bytes));
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// What a leak of `value` may look like: the value, its distinctive middle, and the Basic
/// credentials of each username archway could pair it with.
fn needles(value: &str) -> Vec<Vec<u8>> {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s).into_bytes();
    let middle = &value[2..value.len() - 6];
    vec![
        value.as_bytes().to_vec(),
        middle.as_bytes().to_vec(),
        b64(format!("robot:{value}")),
        b64(format!("dockeruser:{value}")),
        b64(format!("gitlab-ci-token:{value}")),
    ]
}

/// The subcommands, each with the arguments that make it use the registry (or not).
fn subcommands(registry: &str) -> Vec<(&'static str, Vec<String>)> {
    let r = |s: &str| s.replace("REG", registry);
    let digest = format!("sha256:{}", "a".repeat(64));
    vec![
        (
            "build (layout)",
            vec![
                "build".into(),
                "--output".into(),
                "../out/layout".into(),
                "--metadata-file".into(),
                "../out/metadata.json".into(),
            ],
        ),
        (
            "build --push",
            vec![
                "build".into(),
                "--push".into(),
                "-t".into(),
                r("REG/acme/app:1"),
                "--metadata-file".into(),
                "../out/metadata.json".into(),
            ],
        ),
        ("build --dry-run", vec!["build".into(), "--dry-run".into()]),
        ("plan", vec!["plan".into()]),
        ("plan --format json", vec!["plan".into(), "--format".into(), "json".into()]),
        (
            "merge",
            vec![
                "merge".into(),
                "-t".into(),
                r("REG/acme/app:1"),
                r(&format!("REG/acme/app@{digest}")),
                "--metadata-file".into(),
                "../out/metadata.json".into(),
            ],
        ),
        ("promote", vec!["promote".into(), r("REG/acme/app:1"), r("REG/acme/app:2")]),
        ("inspect", vec!["inspect".into(), r("REG/acme/app:1")]),
    ]
}

/// The CI's environment: its metadata, its output files (under `out`), its default image.
fn ci_env(d: Dialect, ctx: &Path, out: &Path, registry: &str) -> Vec<(String, String)> {
    let p = |n: &str| out.join(n).display().to_string();
    let c = ctx.display().to_string();
    let mut env: Vec<(&str, String)> = match d {
        Dialect::GitHub => vec![
            ("GITHUB_ACTIONS", "true".into()),
            ("GITHUB_WORKSPACE", c),
            ("GITHUB_REPOSITORY", "acme/app".into()),
            ("GITHUB_REF", "refs/heads/main".into()),
            ("GITHUB_REF_NAME", "main".into()),
            ("GITHUB_REF_TYPE", "branch".into()),
            ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567".into()),
            ("GITHUB_EVENT_NAME", "push".into()),
            ("GITHUB_ACTOR", "octocat".into()),
            ("GITHUB_OUTPUT", p("github_output")),
            ("GITHUB_STEP_SUMMARY", p("summary.md")),
        ],
        Dialect::GitLab => vec![
            ("GITLAB_CI", "true".into()),
            ("CI_PROJECT_DIR", c),
            ("CI_COMMIT_BRANCH", "main".into()),
            ("CI_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567".into()),
            ("CI_REGISTRY", registry.into()),
            ("CI_REGISTRY_USER", "gitlab-ci-token".into()),
            ("ARCHWAY_DOTENV", p("archway.env")),
        ],
        Dialect::BitbucketPipe | Dialect::BitbucketStep => {
            let mut e = vec![
                ("BITBUCKET_BUILD_NUMBER", "7".into()),
                ("BITBUCKET_CLONE_DIR", c),
                ("BITBUCKET_BRANCH", "main".into()),
                ("BITBUCKET_COMMIT", "0123456789abcdef0123456789abcdef01234567".into()),
                ("BITBUCKET_PIPELINES_VARIABLES_PATH", p("variables")),
                ("BITBUCKET_PIPE_SHARED_STORAGE_DIR", p("shared")),
            ];
            if d == Dialect::BitbucketPipe {
                e.push(("BITBUCKET_PIPE_STORAGE_DIR", p("pipe")));
            }
            e
        }
        Dialect::Local => vec![],
    };
    env.push((d.var(&vars::PLATFORMS), "linux/amd64,linux/arm64".into()));
    env.push((d.var(&vars::PUSH), "false".into()));
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Every secret input × every subcommand × every CI dialect × every artefact: no secret in
/// anything archway wrote. Prints the coverage (`--nocapture`).
#[test]
fn no_secret_input_leaks_from_any_subcommand_in_any_ci() {
    // A registry that asks for Basic credentials and refuses them, at the first request each
    // subcommand makes (each run has one of its own: the scripted server keeps to its order).
    let refusing = |method: &str, path: &str| {
        let server = Server::start();
        let challenge = Step::new(method, path).status(401).header("WWW-Authenticate", "Basic realm=\"scripted\"");
        server.script(challenge.times(4));
        server
    };
    let mut sent: Vec<String> = Vec::new();
    let mut coverage: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut leaks = Vec::new();
    let mut artefacts_seen: BTreeMap<String, usize> = BTreeMap::new();
    for d in DIALECTS {
        for i in 0..subcommands("R").len() {
            let server = match subcommands("R")[i].0 {
                "promote" | "inspect" => refusing("GET", "/v2/acme/app/manifests/1"),
                _ => refusing("POST", "/v2/acme/app/blobs/uploads/"),
            };
            let registry = server.host();
            let (sub, args) = subcommands(&registry).swap_remove(i);
            let dir = tempfile::tempdir().unwrap();
            let (ctx, out, inputs) = (dir.path().join("src"), dir.path().join("out"), dir.path().join("inputs"));
            for p in [&ctx, &out, &inputs, &out.join("shared"), &out.join("pipe")] {
                std::fs::create_dir_all(p).unwrap();
            }
            std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nARG NAME\nCOPY app.txt /app.txt\nLABEL name=$NAME\n")
                .unwrap();
            // Controls: a file copied into a layer and a build arg in a label, which the same
            // search must find (in a gunzipped layer, in the config blob).
            std::fs::write(ctx.join("app.txt"), "CONTROL-file-4471\n").unwrap();
            let (secrets, secret_env) = secret_inputs(d, &inputs, &registry);
            let empty = inputs.join("empty");
            std::fs::create_dir_all(&empty).unwrap();
            let mut c = support::spawn::archway();
            c.args(&args)
                .current_dir(&ctx)
                .env("PATH", &empty)
                .env("HOME", &empty)
                .env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
            for (k, v) in ci_env(d, &ctx, &out, &registry).into_iter().chain(secret_env) {
                c.env(k, v);
            }
            c.env(d.var(&vars::BUILD_ARGS), "NAME=CONTROL-arg-5531");
            let o = c.output().expect("the archway binary runs");
            let seen = server.seen();
            let used_registry = !seen.is_empty();
            sent.extend(seen.iter().filter_map(|s| s.header("authorization").map(String::from)));
            let mut written = vec![("stdout".to_string(), o.stdout.clone()), ("stderr".to_string(), o.stderr.clone())];
            written.extend(files_under(&out));
            for (name, bytes) in &written {
                if !bytes.is_empty() {
                    let kind =
                        Path::new(name).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                    let kind = if name.contains("/blobs/") { "layout blob".into() } else { kind };
                    *artefacts_seen.entry(kind).or_default() += 1;
                }
                for line in bytes.split(|b| *b == b'\n') {
                    if line.starts_with(b"::add-mask::") && name == "stderr" && d == Dialect::GitHub {
                        continue;
                    }
                    for (label, value) in &secrets {
                        if needles(value).iter().any(|n| contains(line, n)) {
                            leaks.push(format!(
                                "{d:?} {sub}: {label} in {name}: {}",
                                String::from_utf8_lossy(line).chars().take(300).collect::<String>()
                            ));
                        }
                    }
                }
            }
            let status = o.status.code().map_or("killed".into(), |c| format!("exit {c}"));
            let reg = if used_registry { ", asked the registry" } else { "" };
            coverage
                .entry(sub.to_string())
                .or_default()
                .push(format!("{d:?}: {status}{reg}, {} artefacts", written.len()));
            if sub == "build (layout)" {
                assert!(o.status.success(), "{d:?}: {}", String::from_utf8_lossy(&o.stderr));
                let found = |needle: &str, gunzipped: bool| {
                    written.iter().any(|(n, b)| {
                        n.contains("/blobs/")
                            && n.ends_with("(gunzipped)") == gunzipped
                            && contains(b, needle.as_bytes())
                    })
                };
                assert!(found("CONTROL-file-4471", true), "{d:?}: the search reads the layers, gunzipped");
                assert!(found("CONTROL-arg-5531", false), "{d:?}: the search reads the config");
            }
            if sub == "build --push" || sub == "promote" || sub == "inspect" || sub == "merge" {
                assert!(!o.status.success(), "{d:?} {sub}: the registry refuses everything");
                assert!(used_registry, "{d:?} {sub}: the registry was asked: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
    }
    // The credentials were really in play: the registry was sent the password input of each CI
    // (as Basic credentials), so a leak had every chance to happen.
    for d in DIALECTS {
        let pw = secret_value(&format!("password input {}", d.var(&vars::PASSWORD)));
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("robot:{pw}")));
        assert!(sent.contains(&basic), "{d:?}: the registry never saw the password input; it saw {sent:?}");
    }
    for (sub, rows) in &coverage {
        eprintln!("{sub}: {}", rows.join("; "));
    }
    eprintln!("artefacts searched (non-empty, by kind): {artefacts_seen:?}");
    assert!(leaks.is_empty(), "{} leaks:\n{}", leaks.len(), leaks.join("\n"));
    for kind in [
        "stdout",
        "stderr",
        "github_output",
        "summary.md",
        "archway.env",
        "variables",
        "archway-result.json",
        "metadata.json",
        "index.json",
        "layout blob",
    ] {
        assert!(artefacts_seen.contains_key(kind), "{kind} was never written, so never searched: {artefacts_seen:?}");
    }
}
