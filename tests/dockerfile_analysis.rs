//! What `dockerfile::analyze` decides, table-tested: which stages a target needs, each stage's
//! platform, and per target platform whether foreign code runs and which line decides it; plus
//! the errors BuildKit would also raise. Pure: the analysis reads no files.

use archway::dockerfile::{Analysis, AnalysisError, AnalyzeInput, analyze};
use archway::platform::Platform;

fn platform(s: &str) -> Platform {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

struct Run<'a> {
    dockerfile: &'a str,
    build: &'a str,
    platforms: &'a [&'a str],
    build_args: &'a [(&'a str, &'a str)],
    target: Option<&'a str>,
}

impl Run<'_> {
    fn analyze(&self) -> Result<Analysis, AnalysisError> {
        let build = platform(self.build);
        let platforms: Vec<Platform> = self.platforms.iter().map(|p| platform(p)).collect();
        let build_args: Vec<(String, String)> =
            self.build_args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        analyze(&AnalyzeInput {
            text: self.dockerfile,
            file: "Dockerfile",
            build_args: &build_args,
            target: self.target,
            build_platform: &build,
            platforms: &platforms,
        })
    }
}

fn run(dockerfile: &str) -> Run<'_> {
    Run { dockerfile, build: "linux/amd64", platforms: &["linux/amd64", "linux/arm64"], build_args: &[], target: None }
}

struct Case {
    name: &'static str,
    dockerfile: &'static str,
    build: &'static str,
    platforms: &'static [&'static str],
    build_args: &'static [(&'static str, &'static str)],
    target: Option<&'static str>,
    /// Per target platform: whether foreign code runs, and the line of the deciding RUN.
    want: &'static [(&'static str, Option<usize>)],
    /// The stages the target needs.
    needed: &'static [&'static str],
}

const AMD64_BUILD: &str = "linux/amd64";

const CROSS_COMPILE: &str = "\
FROM --platform=$BUILDPLATFORM golang:1.22 AS build
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /out/app .
FROM scratch
COPY --from=build /out/app /app
";

const UNUSED_STAGE: &str = "\
FROM alpine AS tests
RUN make test
FROM --platform=$BUILDPLATFORM alpine AS build
RUN make
FROM scratch
COPY --from=build /app /app
";

const VARIANT_BY_ARG: &str = "\
ARG VARIANT=slim
FROM debian AS full
RUN apt-get install -y everything
FROM --platform=$BUILDPLATFORM debian AS slim
RUN echo light
FROM ${VARIANT} AS chosen
FROM scratch
COPY --from=chosen / /
";

const STAGE_PER_ARCH: &str = "\
FROM --platform=$BUILDPLATFORM alpine AS amd64
RUN echo native
FROM alpine AS arm64
RUN echo emulated
FROM ${TARGETARCH} AS final
";

const BUILDER_PLATFORM_ARG: &str = "\
ARG BUILDER_PLATFORM=$BUILDPLATFORM
FROM --platform=${BUILDER_PLATFORM} alpine AS build
RUN make
FROM scratch
COPY --from=build /app /app
";

const CONTINUATIONS_AND_HEREDOCS: &str = "\
# syntax=docker/dockerfile:1
FROM --platform=$BUILDPLATFORM alpine AS tools
RUN apk add \\
    curl
FROM alpine
COPY <<EOF /etc/motd
RUN this is file content, not an instruction
EOF
ENV A=1 \\
    B=2
RUN <<EOF
apk add curl
EOF
RUN echo last
";

const CASES: &[Case] = &[
    Case {
        name: "single stage with RUN",
        dockerfile: "FROM alpine\nRUN apk add curl\n",
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", None), ("linux/arm64", Some(2))],
        needed: &["0"],
    },
    Case {
        name: "single stage with RUN on an arm64 builder",
        dockerfile: "FROM alpine\nRUN apk add curl\n",
        build: "linux/arm64",
        platforms: &["linux/amd64", "linux/arm64", "linux/arm/v7"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", Some(2)), ("linux/arm64", None), ("linux/arm/v7", Some(2))],
        needed: &["0"],
    },
    Case {
        name: "single stage without RUN",
        dockerfile: "FROM alpine\nCOPY app /app\nCMD [\"/app\"]\n",
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/arm64", None)],
        needed: &["0"],
    },
    Case {
        name: "cross-compile: build stage on BUILDPLATFORM, scratch final",
        dockerfile: CROSS_COMPILE,
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64", "linux/arm/v7"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", None), ("linux/arm64", None), ("linux/arm/v7", None)],
        needed: &["build", "1"],
    },
    Case {
        name: "unused stage with RUN does not count",
        dockerfile: UNUSED_STAGE,
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/arm64", None)],
        needed: &["build", "2"],
    },
    Case {
        name: "--target selects an earlier stage, matched case-insensitively",
        dockerfile: UNUSED_STAGE,
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: Some("TESTS"),
        want: &[("linux/amd64", None), ("linux/arm64", Some(2))],
        needed: &["tests"],
    },
    Case {
        name: "RUN --mount=from= pulls in the stage it names",
        dockerfile: "\
FROM alpine AS deps
RUN apk add build-base
FROM --platform=$BUILDPLATFORM alpine AS build
RUN --mount=type=cache,from=deps,target=/x make
FROM scratch
COPY --from=build /app /app
",
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", None), ("linux/arm64", Some(2))],
        needed: &["deps", "build", "2"],
    },
    Case {
        name: "COPY --from by stage index",
        dockerfile: "FROM alpine\nRUN make\nFROM scratch\nCOPY --from=0 /app /app\n",
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/arm64", Some(2))],
        needed: &["0", "1"],
    },
    Case {
        name: "COPY --from an external image is not a stage",
        dockerfile: "FROM alpine AS alpine\nRUN make\nFROM scratch\nCOPY --from=alpine:3 /bin/busybox /busybox\n",
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/arm64", None)],
        needed: &["1"],
    },
    Case {
        name: "ARG picks the base stage (default: the BUILDPLATFORM one)",
        dockerfile: VARIANT_BY_ARG,
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/arm64", None)],
        needed: &["slim", "chosen", "3"],
    },
    Case {
        name: "ARG picks the base stage (build arg: the target-platform one)",
        dockerfile: VARIANT_BY_ARG,
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[("VARIANT", "full")],
        target: None,
        want: &[("linux/arm64", Some(3))],
        needed: &["full", "chosen", "3"],
    },
    Case {
        name: "FROM ${TARGETARCH} picks a stage per platform",
        dockerfile: STAGE_PER_ARCH,
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", None), ("linux/arm64", Some(4))],
        needed: &["amd64", "arm64", "final"],
    },
    Case {
        name: "global ARG BUILDPLATFORM with a default overrides the automatic value",
        dockerfile: "\
ARG BUILDPLATFORM=linux/arm64
FROM --platform=$BUILDPLATFORM alpine AS build
RUN make
FROM scratch
COPY --from=build /app /app
",
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", Some(3)), ("linux/arm64", Some(3))],
        needed: &["build", "1"],
    },
    Case {
        name: "a build arg overrides an automatic platform ARG",
        dockerfile: CROSS_COMPILE,
        build: AMD64_BUILD,
        platforms: &["linux/amd64"],
        build_args: &[("BUILDPLATFORM", "linux/riscv64")],
        target: None,
        want: &[("linux/amd64", Some(3))],
        needed: &["build", "1"],
    },
    Case {
        name: "global ARG used in --platform, default",
        dockerfile: BUILDER_PLATFORM_ARG,
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", None), ("linux/arm64", None)],
        needed: &["build", "1"],
    },
    Case {
        name: "global ARG used in --platform, overridden by a build arg",
        dockerfile: BUILDER_PLATFORM_ARG,
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[("BUILDER_PLATFORM", "linux/arm64")],
        target: None,
        want: &[("linux/amd64", Some(3)), ("linux/arm64", Some(3))],
        needed: &["build", "1"],
    },
    Case {
        name: "a build arg for an undeclared ARG changes nothing",
        dockerfile: "FROM --platform=${BUILDER_PLATFORM:-$BUILDPLATFORM} alpine\nRUN make\n",
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[("BUILDER_PLATFORM", "linux/arm64/v8")],
        target: None,
        want: &[("linux/arm64", None)],
        needed: &["0"],
    },
    Case {
        name: "an ARG declared inside a stage is not global",
        dockerfile: "FROM alpine\nARG P=linux/amd64\nFROM --platform=${P:-linux/arm64} alpine\nRUN make\n",
        build: AMD64_BUILD,
        platforms: &["linux/amd64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", Some(4))],
        needed: &["1"],
    },
    Case {
        name: "global ARG defaults use earlier globals, and quotes are removed",
        dockerfile: "ARG OS=linux\nARG P=\"$OS/arm64\"\nFROM --platform=$P alpine\nRUN make\n",
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", Some(4)), ("linux/arm64", Some(4))],
        needed: &["0"],
    },
    Case {
        name: "an empty --platform= is no flag, as in BuildKit",
        dockerfile: "FROM --platform= alpine\nRUN make\n",
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", None), ("linux/arm64", Some(2))],
        needed: &["0"],
    },
    Case {
        name: "constant --platform=linux/amd64 on an arm64 builder",
        dockerfile: "FROM --platform=linux/amd64 ubuntu\nRUN apt-get update\n",
        build: "linux/arm64",
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", Some(2)), ("linux/arm64", Some(2))],
        needed: &["0"],
    },
    Case {
        name: "a stage built on a stage takes its platform",
        dockerfile: "\
FROM --platform=$BUILDPLATFORM golang AS base
RUN go mod download
FROM base AS build
RUN go build
FROM scratch
COPY --from=build /app /app
",
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/arm64", None)],
        needed: &["base", "build", "2"],
    },
    Case {
        name: "a stage built on a stage ignores its own --platform, as BuildKit does",
        dockerfile: "FROM alpine AS base\nFROM --platform=$BUILDPLATFORM base AS build\nRUN make\n",
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", None), ("linux/arm64", Some(3))],
        needed: &["base", "build"],
    },
    Case {
        name: "ONBUILD RUN in a base stage runs in the stage built on it",
        dockerfile: "FROM alpine AS base\nONBUILD RUN make\nFROM --platform=$BUILDPLATFORM alpine\nRUN true\nFROM base\n",
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/arm64", Some(2))],
        needed: &["base", "2"],
    },
    Case {
        name: "scratch always takes the target platform, as BuildKit does",
        dockerfile: "\
FROM --platform=$BUILDPLATFORM scratch AS tools
COPY --from=busybox:musl /bin/busybox /bin/busybox
RUN [\"/bin/busybox\", \"true\"]
",
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/arm64", Some(3))],
        needed: &["tools"],
    },
    Case {
        name: "deciding line skips heredoc bodies and counts continuation lines",
        dockerfile: CONTINUATIONS_AND_HEREDOCS,
        build: AMD64_BUILD,
        platforms: &["linux/amd64", "linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/amd64", None), ("linux/arm64", Some(11))],
        needed: &["1"],
    },
    Case {
        name: "deciding line of a RUN that spans lines is its first line",
        dockerfile: "FROM alpine\n\n# install\nRUN apk add \\\n    # a comment inside\n\n    curl\nRUN echo again\n",
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/arm64", Some(4))],
        needed: &["0"],
    },
    Case {
        name: "the first foreign RUN in file order, across stages",
        dockerfile: "\
FROM alpine AS a
COPY x /x
FROM alpine AS b
RUN one
FROM a
RUN two
COPY --from=b /y /y
",
        build: AMD64_BUILD,
        platforms: &["linux/arm64"],
        build_args: &[],
        target: None,
        want: &[("linux/arm64", Some(4))],
        needed: &["a", "b", "2"],
    },
];

#[test]
fn foreign_code_per_platform() {
    let mut failures = Vec::new();
    for case in CASES {
        let r = Run {
            dockerfile: case.dockerfile,
            build: case.build,
            platforms: case.platforms,
            build_args: case.build_args,
            target: case.target,
        };
        let analysis = match r.analyze() {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{}: error: {e}", case.name));
                continue;
            }
        };
        let got: Vec<(String, Option<usize>)> = analysis
            .per_platform
            .iter()
            .map(|p| {
                assert_eq!(p.foreign_code, p.deciding.is_some(), "{}: foreign_code and deciding disagree", case.name);
                (p.platform.to_string(), p.deciding.as_ref().map(|d| d.line))
            })
            .collect();
        let want: Vec<(String, Option<usize>)> = case.want.iter().map(|(p, l)| (platform(p).to_string(), *l)).collect();
        if got != want {
            failures.push(format!("{}: per platform got {got:?}, want {want:?}", case.name));
        }
        let needed: Vec<&str> = analysis.stages.iter().filter(|s| s.needed).map(|s| s.name.as_str()).collect();
        if needed != case.needed {
            failures.push(format!("{}: needed stages got {needed:?}, want {:?}", case.name, case.needed));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

#[test]
fn deciding_location_names_file_line_stage_and_instruction() {
    let a = run(CONTINUATIONS_AND_HEREDOCS).analyze().unwrap();
    let arm = a.for_platform(&platform("linux/arm64")).unwrap();
    let d = arm.deciding.as_ref().unwrap();
    assert_eq!(
        (d.file.as_str(), d.line, d.stage.as_str(), d.instruction.as_str()),
        ("Dockerfile", 11, "1", "RUN <<EOF")
    );

    let long = format!("FROM alpine\nRUN {} \\\n  && done\n", "x".repeat(200));
    let a = run(&long).analyze().unwrap();
    let d = a.for_platform(&platform("linux/arm64")).unwrap().deciding.clone().unwrap();
    assert_eq!(d.line, 2);
    assert!(d.instruction.starts_with("RUN xxx") && d.instruction.chars().count() <= 80, "{}", d.instruction);
}

#[test]
fn stages_are_described() {
    let text = "\
ARG TAG=3.19
FROM --platform=$BUILDPLATFORM alpine:${TAG} AS Build
RUN make
RUN make install
FROM --platform=$TARGETPLATFORM alpine:${TAG}-$TARGETARCH
COPY --from=build /app /app
";
    let a = run(text).analyze().unwrap();
    assert_eq!(a.target, "1");
    let got: Vec<_> = a
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.base.as_str(), s.platform_flag.as_deref(), s.line, s.runs, s.needed))
        .collect();
    assert_eq!(
        got,
        [
            ("build", "alpine:3.19", Some("$BUILDPLATFORM"), 2, 2, true),
            ("1", "alpine:3.19-$TARGETARCH", Some("$TARGETPLATFORM"), 5, 0, true),
        ]
    );
}

#[test]
fn unknowns_say_what_the_file_cannot_tell() {
    // A base image used on a foreign platform may hide ONBUILD triggers; one note per image.
    let a = Run { platforms: &["linux/arm64", "linux/arm/v7"], ..run("FROM alpine AS a\nFROM alpine\nRUN x\n") }
        .analyze()
        .unwrap();
    assert_eq!(a.unknowns.len(), 1, "{:?}", a.unknowns);
    assert!(a.unknowns[0].contains("ONBUILD triggers in base image `alpine`"), "{}", a.unknowns[0]);
    assert!(a.unknowns[0].contains("linux/arm64 and linux/arm/v7"), "{}", a.unknowns[0]);

    // Built natively, nothing hidden can run as foreign code.
    let a = Run { platforms: &["linux/amd64"], ..run("FROM alpine\nRUN x\n") }.analyze().unwrap();
    assert!(a.unknowns.is_empty(), "{:?}", a.unknowns);

    // COPY --from an image: noted, and no foreign code.
    let a = run("FROM scratch\nCOPY --from=alpine:3 /bin/busybox /busybox\n").analyze().unwrap();
    assert!(a.per_platform.iter().all(|p| !p.foreign_code));
    assert_eq!(a.unknowns.len(), 1, "{:?}", a.unknowns);
    assert!(
        a.unknowns[0].starts_with("`COPY --from=alpine:3` (Dockerfile:2) reads image `alpine:3`"),
        "{}",
        a.unknowns[0]
    );

    // A --platform BuildKit ignores is pointed out.
    let a = run("FROM alpine AS base\nFROM --platform=$BUILDPLATFORM base\n").analyze().unwrap();
    assert!(a.unknowns.iter().any(|u| u.contains("ignores its `--platform=$BUILDPLATFORM`")), "{:?}", a.unknowns);
}

#[test]
fn no_platforms_still_checks_and_finds_needed_stages() {
    let a = Run { platforms: &[], ..run(UNUSED_STAGE) }.analyze().unwrap();
    assert!(a.per_platform.is_empty());
    let needed: Vec<&str> = a.stages.iter().filter(|s| s.needed).map(|s| s.name.as_str()).collect();
    assert_eq!(needed, ["build", "2"]);
    let e = Run { platforms: &[], ..run("ARG BASE\nFROM $BASE\n") }.analyze().unwrap_err();
    assert!(matches!(e, AnalysisError::EmptyBase { line: 2, .. }), "{e}");
}

/// Each error names the file and line and says what was expected; its hint says how to fix it.
#[test]
fn errors_point_at_the_problem() {
    let cases: &[(&str, Option<&str>, &[&str])] = &[
        (
            UNUSED_STAGE,
            Some("buld"),
            &[
                "target stage `buld` not found in `Dockerfile`",
                "`tests`, `build`",
                "hint: did you mean `--target build`?",
            ],
        ),
        ("FROM alpine\nFROM alpine\n", Some("x"), &["names no stage"]),
        ("ARG BASE\nFROM $BASE\nRUN x\n", None, &["Dockerfile:2: FROM `$BASE` expands to an empty image name"]),
        (
            "ARG BUILDER=build\nFROM alpine AS build\nFROM scratch\nCOPY --from=${BUILDER} /a /a\n",
            None,
            &[
                "Dockerfile:4: `COPY --from=${BUILDER}`: BuildKit does not expand variables",
                "hint: declare the ARG before the first FROM, add a stage `FROM ${BUILDER} AS <name>`",
            ],
        ),
        (
            "FROM alpine AS deps\nFROM alpine\nRUN --mount=type=cache,from=$DEPS,target=/x make\n",
            None,
            &["Dockerfile:3: `--mount from=$DEPS`: BuildKit does not expand variables"],
        ),
        (
            "ARG NAME=x\nFROM alpine AS ${NAME}\n",
            None,
            &["Dockerfile:2: invalid stage name `${NAME}`", "hint: BuildKit does not expand ARGs in stage names"],
        ),
        ("FROM alpine AS a\nCOPY --from=a /x /y\n", None, &["Dockerfile:2: circular dependency: stage `a`"]),
        (
            "FROM alpine AS a\nCOPY --from=b /x /y\nFROM alpine AS b\nFROM a\n",
            None,
            &["Dockerfile:2: stage `a` uses stage `b`, which is defined later (line 3)"],
        ),
        (
            "FROM alpine\nFROM scratch\nCOPY --from=2 /x /y\n",
            None,
            &["Dockerfile:3: `COPY --from=2`: there is no stage 2; expected 0 to 1"],
        ),
        (
            "FROM alpine\nRUN <<EOF\necho\n",
            None,
            &[
                "Dockerfile:2: heredoc `EOF` is never terminated",
                "hint: end the heredoc with a line holding only `EOF`",
            ],
        ),
        ("FROM alpine\nRUNN make\n", None, &["Dockerfile:2: unknown instruction `RUNN`\nhint: did you mean `RUN`?"]),
        ("RUN make\nFROM alpine\n", None, &["Dockerfile:1: `RUN` comes before the first FROM"]),
        ("ARG X=1\n", None, &["has no FROM instruction"]),
        ("FROM --platform=$NOPE alpine\n", None, &["Dockerfile:1: `--platform=$NOPE` expands to an empty platform"]),
        ("FROM --platform=linux/sparc alpine\n", None, &["Dockerfile:1: `--platform=linux/sparc` gives `linux/sparc`"]),
        (
            "FROM alpine AS build\nFROM Build\n",
            None,
            &[
                "Dockerfile:2: FROM `Build` is not a valid image name",
                "hint: to build on stage `build`, write `FROM build`",
            ],
        ),
        (
            "FROM ${TAG:?set-TAG}\n",
            None,
            &["Dockerfile:1: cannot expand the FROM image `${TAG:?set-TAG}`", "TAG: set-TAG"],
        ),
    ];
    let mut failures = Vec::new();
    for (text, target, wants) in cases {
        match (Run { target: *target, ..run(text) }).analyze() {
            Ok(_) => failures.push(format!("{text:?}: accepted")),
            Err(e) => {
                let msg = format!("{e}\nhint: {}", e.hint());
                for want in *wants {
                    if !msg.contains(want) {
                        failures.push(format!("{text:?}: message {msg:?} lacks {want:?}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
