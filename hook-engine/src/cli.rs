//! `hoody-api hook run`: runs a hook against a sample request (and a sample response) and
//! prints what it decided, what it changed and what it logged, so authors can test a
//! module without deploying it.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;

use crate::{
    Changes, EngineConfig, HeaderEdit, HeaderList, HookEngine, HookOutcome, HookSpec,
    LocalResponse, LogRecord, RequestContext, RequestParts, ResponseParts,
};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The hook module (.wasm, or .wat text).
    pub module: PathBuf,
    /// Plugin configuration handed to proxy_on_configure.
    #[arg(long, default_value = "")]
    pub config: String,
    /// The sample request line, e.g. 'GET /api/items?page=2'.
    #[arg(long)]
    pub request: String,
    /// A request header, 'name: value' (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// A request body.
    #[arg(long)]
    pub body: Option<String>,
    /// The request's host (authority).
    #[arg(long, default_value = "app.localhost")]
    pub host: String,
    /// Status of the sample upstream response the response phase sees.
    #[arg(long, default_value_t = 200)]
    pub response_status: u16,
    /// Timeout per phase, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Matched access group exposed as the `hoody.matched_group` property.
    #[arg(long)]
    pub group: Option<String>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let report = run_report(&args)?;
    print!("{report}");
    Ok(())
}

/// Runs the hook and renders the report `run` prints.
pub fn run_report(args: &RunArgs) -> anyhow::Result<String> {
    let wasm = std::fs::read(&args.module)
        .with_context(|| format!("reading {}", args.module.display()))?;
    let engine = HookEngine::new(EngineConfig::default())?;
    let is_text = args.module.extension().is_some_and(|e| e == "wat");
    let module = if is_text {
        engine.compile_text(&String::from_utf8_lossy(&wasm))?
    } else {
        engine.compile(&wasm)?
    };
    let mut request = parse_request(args)?;
    let mut spec = HookSpec::new(hook_name(&args.module), module.clone());
    spec.config = args.config.as_bytes().to_vec();
    spec.timeout = Duration::from_millis(args.timeout_ms);
    spec.fresh_instance = true;
    let context = RequestContext {
        container_id: "local".into(),
        source: "127.0.0.1:50000".parse().ok(),
        matched_group: args.group.clone(),
        ..RequestContext::default()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "module: {} ({} bytes, sha256 {}, abi {})",
        args.module.display(),
        module.size(),
        module.sha256(),
        module.abi_version().unwrap_or("unmarked")
    );
    let mut session = engine.session(&spec, context);
    let outcome = session.on_request(&mut request);
    render_phase(&mut out, "request", &outcome);
    if matches!(outcome, HookOutcome::Continue(_)) {
        let _ = writeln!(
            out,
            "forwarded: {} {} (host {})",
            request.method, request.path, request.authority
        );
        let mut response = ResponseParts {
            status: args.response_status,
            headers: [("content-type", "text/plain")].into_iter().collect(),
            body: None,
            trailers: HeaderList::new(),
        };
        let outcome = session.on_response(&mut response);
        render_phase(&mut out, "response", &outcome);
    }
    render_log(&mut out, &session.finish());
    Ok(out)
}

fn hook_name(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "hook".to_string())
}

fn parse_request(args: &RunArgs) -> anyhow::Result<RequestParts> {
    let mut words = args.request.split_whitespace();
    let (Some(method), Some(path), None) = (words.next(), words.next(), words.next()) else {
        bail!(
            "--request must look like 'GET /path', got {:?}",
            args.request
        );
    };
    if !path.starts_with('/') {
        bail!("the request path must start with '/', got {path:?}");
    }
    let mut request = RequestParts::new(method, path, &args.host);
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            bail!("-H must look like 'name: value', got {header:?}");
        };
        request
            .headers
            .push_lowercase(name.trim().as_bytes(), value.trim().as_bytes());
    }
    if let Some(body) = &args.body {
        request.body = Some(body.as_bytes().to_vec());
        request
            .headers
            .push(b"content-length", body.len().to_string().as_bytes());
    }
    Ok(request)
}

fn render_phase(out: &mut String, phase: &str, outcome: &HookOutcome) {
    match outcome {
        HookOutcome::Continue(changes) => {
            let _ = writeln!(out, "{phase} decision: continue");
            render_changes(out, changes);
        }
        HookOutcome::LocalResponse(response) => {
            let _ = writeln!(out, "{phase} decision: local response");
            render_response(out, response);
        }
        HookOutcome::Failed(failure) => {
            let _ = writeln!(
                out,
                "{phase} decision: failed ({:?}, policy {:?}): {}",
                failure.kind, failure.policy, failure.message
            );
            render_response(out, &failure.response);
        }
    }
}

fn render_changes(out: &mut String, changes: &Changes) {
    if changes.is_empty() {
        let _ = writeln!(out, "  no changes");
        return;
    }
    for edit in changes.headers.iter() {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let _ = match edit {
            HeaderEdit::Add(name, value) => writeln!(out, "  + {}: {}", text(name), text(value)),
            HeaderEdit::Replace(name, value) => {
                writeln!(out, "  = {}: {}", text(name), text(value))
            }
            HeaderEdit::Remove(name) => writeln!(out, "  - {}", text(name)),
            HeaderEdit::Clear => writeln!(out, "  - (every header)"),
        };
    }
    let fields = [
        ("path", changes.path().map(str::to_string)),
        ("method", changes.method().map(str::to_string)),
        ("host", changes.authority().map(str::to_string)),
        ("status", changes.status.map(|s| s.to_string())),
    ];
    for (label, value) in fields {
        if let Some(value) = value {
            let _ = writeln!(out, "  {label} -> {value}");
        }
    }
    if changes.body_replaced {
        let _ = writeln!(out, "  body replaced");
    }
}

fn render_response(out: &mut String, response: &LocalResponse) {
    let _ = writeln!(out, "  status: {}", response.status);
    for (name, value) in &response.headers {
        let _ = writeln!(out, "  {name}: {}", String::from_utf8_lossy(value));
    }
    if !response.body.is_empty() {
        let _ = writeln!(out, "  body: {}", String::from_utf8_lossy(&response.body));
    }
}

fn render_log(out: &mut String, log: &[LogRecord]) {
    let _ = writeln!(out, "log:");
    if log.is_empty() {
        let _ = writeln!(out, "  (empty)");
    }
    for record in log {
        let _ = writeln!(out, "  [{}] {}", record.level.as_str(), record.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RunArgs,
    }

    #[test]
    fn parses_the_documented_command_line() {
        Wrapper::command().debug_assert();
        let parsed = Wrapper::try_parse_from([
            "hook",
            "m.wasm",
            "--config",
            "x",
            "--request",
            "POST /p?q=1",
            "-H",
            "A: b",
            "-H",
            "c: d",
            "--body",
            "hi",
        ])
        .expect("parses");
        let request = parse_request(&parsed.args).expect("valid request");
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/p?q=1")
        );
        assert_eq!(request.header("a"), Some(&b"b"[..]));
        assert_eq!(request.header("content-length"), Some(&b"2"[..]));
        assert_eq!(request.body.as_deref(), Some(&b"hi"[..]));
    }

    #[test]
    fn rejects_malformed_requests_and_headers() {
        let parse = |request: &str, header: &str| {
            let mut argv = vec!["hook", "m.wasm", "--request", request];
            if !header.is_empty() {
                argv.extend(["-H", header]);
            }
            let parsed = Wrapper::try_parse_from(argv).expect("parses");
            parse_request(&parsed.args)
        };
        assert!(parse("GET", "").is_err());
        assert!(parse("GET path", "").is_err());
        assert!(parse("GET /", "no-colon").is_err());
        assert!(parse("GET /", "k: v").is_ok());
    }
}
