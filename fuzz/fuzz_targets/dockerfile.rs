//! The Dockerfile parser (BuildKit's `parser.Parse` + `Node.Dump()`), the shell-word lexer and
//! the analysis (`archway::dockerfile::analyze`) on arbitrary text.
#![no_main]
use std::collections::HashMap;

use archway::dockerfile::{self, AnalyzeInput, ShellLex};
use archway::platform::Platform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(parsed) = dockerfile::parse(text) {
        let _ = dockerfile::dump(&parsed);
        // The lexer over every instruction's words, as `analyze` and the assembler use it.
        let lex = ShellLex::new(parsed.escape);
        let env: HashMap<String, String> = [("A", "a b"), ("EMPTY", ""), ("P", "linux/arm64")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for line in text.lines().take(16) {
            let _ = lex.process(line, &env);
        }
    }
    let build: Platform = "linux/amd64".parse().unwrap();
    let platforms: Vec<Platform> =
        ["linux/amd64", "linux/arm64", "linux/arm/v7"].iter().map(|p| p.parse().unwrap()).collect();
    let build_args = [("A".to_string(), "x".to_string()), ("BASE".to_string(), "alpine".to_string())];
    let input = AnalyzeInput {
        text,
        file: "Dockerfile",
        build_args: &build_args,
        target: None,
        build_platform: &build,
        platforms: &platforms,
    };
    match dockerfile::analyze(&input) {
        Ok(a) => {
            // Every stage as the target too.
            for s in a.stages.iter().take(4) {
                let _ = dockerfile::analyze(&AnalyzeInput { target: Some(&s.name), ..input.clone() });
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.hint());
        }
    }
});
