//! Callbacks a module exports that do nothing: their bodies are empty, or only
//! return a constant the host ignores. SDKs built around one object per plugin
//! (ours) export `proxy_on_context_create`, `proxy_on_done` and `proxy_on_delete`
//! as such stubs, and each call into a guest costs a few hundred instructions of
//! entering and leaving wasm: the host skips calling them, which no guest can
//! tell apart from calling them.

use wasmparser::{ExternalKind, Operator, Parser, Payload};

/// The per-request callbacks whose results the host does not use: skipping an
/// inert one changes nothing.
const SKIPPABLE: [&str; 4] = [
    "proxy_on_context_create",
    "proxy_on_done",
    "proxy_on_log",
    "proxy_on_delete",
];

/// The skippable callbacks of `wasm` (a valid module with `imported_functions`
/// imported functions) whose bodies do nothing. Anything unexpected in the
/// module counts as "does something".
pub(crate) fn inert_callbacks(wasm: &[u8], imported_functions: u32) -> Vec<&'static str> {
    let mut wanted: Vec<(u32, &'static str)> = Vec::new();
    let mut inert = Vec::new();
    let mut defined = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else {
            return Vec::new();
        };
        match payload {
            Payload::ExportSection(exports) => {
                for export in exports.into_iter().flatten() {
                    let name = SKIPPABLE.iter().find(|n| **n == export.name);
                    if let (ExternalKind::Func, Some(name)) = (export.kind, name) {
                        wanted.push((export.index, name));
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let index = imported_functions + defined;
                defined += 1;
                if let Some((_, name)) = wanted.iter().find(|(at, _)| *at == index) {
                    if does_nothing(&body) {
                        inert.push(*name);
                    }
                }
            }
            _ => {}
        }
    }
    inert
}

/// A body of `end` alone, or of one constant and `end`.
fn does_nothing(body: &wasmparser::FunctionBody<'_>) -> bool {
    let Ok(mut operators) = body.get_operators_reader() else {
        return false;
    };
    let mut read = || operators.read().ok();
    match read() {
        Some(Operator::End) => true,
        Some(Operator::I32Const { .. }) => matches!(read(), Some(Operator::End)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_or_constant_bodies_are_inert() {
        let wasm = crate::compile::wat_to_wasm(
            r#"(module
                 (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
                 (global $g (mut i32) (i32.const 0))
                 (func (export "proxy_on_context_create") (param i32 i32))
                 (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
                 (func (export "proxy_on_delete") (param i32) (global.set $g (local.get 0)))
                 (func (export "proxy_on_log") (param i32)
                   (drop (call $log (i32.const 2) (i32.const 0) (i32.const 0))))
                 (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
                   (i32.const 0)))"#,
        )
        .expect("wat");
        assert_eq!(
            inert_callbacks(&wasm, 1),
            ["proxy_on_context_create", "proxy_on_done"]
        );
        assert!(inert_callbacks(b"not wasm", 0).is_empty());
    }
}
