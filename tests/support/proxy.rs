//! A fault-injecting HTTP/1.1 proxy in front of the lab registry, for tests of archway's
//! registry client. It forwards requests (plain HTTP, keep-alive, `Content-Length` or chunked
//! bodies) to the real registry, answers chosen ones with scripted faults, can stand in for a
//! bearer-token server, and records every request it saw. It never reads archway's code.
//!
//! Threads and blocking sockets, so it runs whatever the test's runtime does; stopped on drop.
//! The registry builds upload `Location`s from the `Host` header, which is passed through, so
//! an upload that starts at the proxy stays at the proxy.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a request is about, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `/v2/`
    Base,
    Manifest,
    Blob,
    /// `/v2/<repo>/blobs/uploads/…`: starting, sending, querying, finishing an upload.
    Upload,
    /// The proxy's own token endpoint.
    Token,
    Other,
}

impl Kind {
    fn of(path: &str) -> Kind {
        if path == "/token" {
            Kind::Token
        } else if path == "/v2/" || path == "/v2" {
            Kind::Base
        } else if path.contains("/blobs/uploads") {
            Kind::Upload
        } else if path.contains("/blobs/") {
            Kind::Blob
        } else if path.contains("/manifests/") {
            Kind::Manifest
        } else {
            Kind::Other
        }
    }
}

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and these headers; the registry never sees the request.
    Status(u16, Vec<(&'static str, String)>),
    /// 429 with `Retry-After` as an HTTP date at least this far ahead (whole seconds).
    TooManyUntil(Duration),
    /// Read half the request body, then close the connection. The registry sees nothing, as
    /// behind a load balancer that buffers request bodies.
    DropMidBody,
    /// Pass half the request body on to the registry, let it answer that, then close the
    /// client's connection: the registry holds a partial write.
    DropMidBodyForwarded,
    /// 307 to the same path on the proxy's other address (`localhost:PORT2`).
    RedirectToAlt,
    /// Forward, adding Docker Hub's rate-limit headers to the answer.
    RateLimit { limit: u64, remaining: u64 },
    /// Wait this long, then forward.
    Delay(Duration),
    /// Forward, then send the registry's headers (its `Content-Length` included) and half its
    /// body, and close the connection: a download broken halfway.
    CutAnswerBody,
}

struct Rule {
    method: String,
    kind: Kind,
    first: usize,
    times: usize,
    fault: Fault,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Arrived at the other address (`localhost:PORT2`), the redirect target.
    pub alt: bool,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: String,
    pub kind: Kind,
    /// An `Authorization` header arrived with it.
    pub authorization: bool,
    /// What the client got; 0 when the connection was dropped.
    pub status: u16,
    /// Request body bytes read from the client.
    pub body_bytes: u64,
    /// `sha256:…` of the body of a manifest `PUT` that reached the registry: which manifest
    /// (or index) a tag was put on.
    pub body_digest: Option<String>,
    /// Why the proxy answered itself: "missing token", "expired token", "fault", "token".
    pub note: &'static str,
}

struct State {
    upstream: String,
    addr: String,
    alt_addr: String,
    rules: Vec<Rule>,
    /// Requests per (method, kind) that got past the proxy's auth check.
    occurrences: HashMap<(String, Kind), usize>,
    log: Vec<Seen>,
    /// Uses each token allows, when the proxy demands bearer tokens.
    bearer: Option<u32>,
    tokens: HashMap<String, u32>,
    issued: u64,
    in_flight: usize,
    max_in_flight: usize,
}

pub struct Proxy {
    /// `127.0.0.1:PORT`: what tests give archway.
    pub addr: String,
    /// `localhost:PORT2`: another host name (and port) for the same proxy, for redirects.
    pub alt_addr: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    ports: Vec<u16>,
    threads: Vec<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Starts forwarding to `upstream` (`127.0.0.1:5000`).
    pub fn start(upstream: &str) -> Proxy {
        let main = TcpListener::bind("127.0.0.1:0").unwrap();
        let alt = TcpListener::bind("127.0.0.1:0").unwrap();
        let ports = vec![main.local_addr().unwrap().port(), alt.local_addr().unwrap().port()];
        let addr = format!("127.0.0.1:{}", ports[0]);
        let alt_addr = format!("localhost:{}", ports[1]);
        let state = Arc::new(Mutex::new(State {
            upstream: upstream.to_string(),
            addr: addr.clone(),
            alt_addr: alt_addr.clone(),
            rules: Vec::new(),
            occurrences: HashMap::new(),
            log: Vec::new(),
            bearer: None,
            tokens: HashMap::new(),
            issued: 0,
            in_flight: 0,
            max_in_flight: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let threads = [(main, false), (alt, true)]
            .into_iter()
            .map(|(listener, is_alt)| {
                let (state, stop, conns) = (state.clone(), stop.clone(), conns.clone());
                std::thread::spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        if let Ok(c) = conn.try_clone() {
                            conns.lock().unwrap().push(c);
                        }
                        let state = state.clone();
                        std::thread::spawn(move || {
                            let _ = serve(conn, &state, is_alt);
                        });
                    }
                })
            })
            .collect();
        Proxy { addr, alt_addr, state, stop, ports, threads, conns }
    }

    /// From the `first` (1-based) `method` request of `kind` that gets past the proxy's auth
    /// check, answers `times` of them (`usize::MAX`: all) with `fault`.
    pub fn fault(&self, method: &str, kind: Kind, first: usize, times: usize, fault: Fault) {
        self.state.lock().unwrap().rules.push(Rule { method: method.to_string(), kind, first, times, fault });
    }

    /// Demands `Authorization: Bearer` on the main address, with tokens from the proxy's
    /// `/token` that expire after `uses` requests.
    pub fn require_bearer(&self, uses: u32) {
        self.state.lock().unwrap().bearer = Some(uses);
    }

    /// Requests answered so far (or dropped), at both addresses.
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().log.len()
    }

    /// Requests of this method and kind at the main address.
    pub fn count(&self, method: &str, kind: Kind) -> usize {
        self.seen(|s| !s.alt && s.method == method && s.kind == kind).len()
    }

    /// Request body bytes read for this method and kind at the main address.
    pub fn body_bytes(&self, method: &str, kind: Kind) -> u64 {
        self.seen(|s| !s.alt && s.method == method && s.kind == kind).iter().map(|s| s.body_bytes).sum()
    }

    pub fn seen(&self, keep: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        self.state.lock().unwrap().log.iter().filter(|s| keep(s)).cloned().collect()
    }

    /// 401s the proxy answered, by reason ("missing token", "expired token").
    pub fn unauthorized(&self, note: &str) -> usize {
        self.seen(|s| s.status == 401 && s.note == note).len()
    }

    /// The most requests the proxy was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    /// `GET Manifest ×2, PUT Upload ×1, …` for test output.
    pub fn summary(&self) -> String {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for s in self.seen(|_| true) {
            let key = format!("{}{} {:?}", if s.alt { "alt " } else { "" }, s.method, s.kind);
            match counts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => counts.push((key, 1)),
            }
        }
        counts.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for p in &self.ports {
            let _ = TcpStream::connect(("127.0.0.1", *p));
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }
    fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
    fn chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
    fn content_length(&self) -> u64 {
        self.header("content-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }
}

struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16, headers: Vec<(&str, String)>, body: &[u8]) -> Response {
        Response {
            status,
            reason: reason(status).into(),
            headers: headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            body: body.to_vec(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    }
}

/// What to do with one request.
enum Plan {
    Answer(Response, &'static str),
    Drop {
        forward_half: bool,
    },
    /// Forward; with `cut`, answer with the registry's headers and half its body, then close
    /// (a download broken halfway).
    Forward {
        delay: Duration,
        extra: Vec<(String, String)>,
        cut: bool,
    },
}

fn serve(conn: TcpStream, state: &Mutex<State>, alt: bool) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let Some(req) = read_head(&mut reader)? else {
            return Ok(());
        };
        let close = req.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let authorization = req.header("authorization").is_some();
        {
            let mut s = state.lock().unwrap();
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
        }
        let plan = plan(&mut state.lock().unwrap(), &req, alt);
        let mut seen = Seen {
            alt,
            method: req.method.clone(),
            path: req.path().to_string(),
            query: req.query().to_string(),
            kind: Kind::of(req.path()),
            authorization,
            status: 0,
            body_bytes: 0,
            body_digest: None,
            note: "",
        };
        let mut logged = false;
        let result = (|| -> io::Result<bool> {
            match plan {
                Plan::Answer(resp, note) => {
                    let body = read_body(&mut reader, &req)?;
                    seen.body_bytes = body.len() as u64;
                    seen.status = resp.status;
                    seen.note = note;
                    record(state, &mut logged, seen.clone());
                    write_response(&mut out, &req, resp, &[], close)?;
                    Ok(true)
                }
                Plan::Drop { forward_half } => {
                    let half = read_half_body(&mut reader, &req)?;
                    seen.body_bytes = half.len() as u64;
                    seen.note = "dropped";
                    if forward_half {
                        let upstream = state.lock().unwrap().upstream.clone();
                        // The registry reads the half, then the end of its input, and answers.
                        let _ = forward(&upstream, &req, &half, true);
                    }
                    record(state, &mut logged, seen.clone());
                    let _ = out.shutdown(Shutdown::Both);
                    Ok(false)
                }
                Plan::Forward { delay, extra, cut } => {
                    let body = read_body(&mut reader, &req)?;
                    seen.body_bytes = body.len() as u64;
                    if seen.kind == Kind::Manifest && req.method == "PUT" {
                        seen.body_digest = Some(super::lab::sha256(&body));
                    }
                    std::thread::sleep(delay);
                    let upstream = state.lock().unwrap().upstream.clone();
                    let resp = match forward(&upstream, &req, &body, false) {
                        Ok(r) => r,
                        Err(e) => Response::new(502, vec![], format!("proxy: upstream: {e}").as_bytes()),
                    };
                    seen.status = resp.status;
                    if cut {
                        seen.note = "answer cut";
                    }
                    record(state, &mut logged, seen.clone());
                    if !cut {
                        write_response(&mut out, &req, resp, &extra, close)?;
                        return Ok(true);
                    }
                    let mut whole = Vec::new();
                    let body_len = resp.body.len();
                    write_response(&mut whole, &req, resp, &extra, true)?;
                    let _ = out.write_all(&whole[..whole.len() - body_len / 2 - body_len % 2]);
                    let _ = out.flush();
                    let _ = out.shutdown(Shutdown::Both);
                    Ok(false)
                }
            }
        })();
        if !logged {
            // The client went away mid-request: it is in the log all the same.
            record(state, &mut logged, seen);
        }
        if !result? || close {
            return Ok(());
        }
    }
}

/// Logs a request before the client hears the answer, so counts read after a client call
/// returns are complete.
fn record(state: &Mutex<State>, logged: &mut bool, seen: Seen) {
    *logged = true;
    let mut s = state.lock().unwrap();
    s.in_flight -= 1;
    s.log.push(seen);
}

fn plan(s: &mut State, req: &Request, alt: bool) -> Plan {
    let kind = Kind::of(req.path());
    if alt {
        return Plan::Forward { delay: Duration::ZERO, extra: vec![], cut: false };
    }
    if kind == Kind::Token {
        s.issued += 1;
        let token = format!("tok-{}", s.issued);
        s.tokens.insert(token.clone(), s.bearer.unwrap_or(u32::MAX));
        let body = format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#);
        return Plan::Answer(
            Response::new(200, vec![("Content-Type", "application/json".into())], body.as_bytes()),
            "token",
        );
    }
    if s.bearer.is_some() {
        let presented = req.header("authorization").and_then(|v| v.strip_prefix("Bearer ")).map(str::to_string);
        let valid = match presented.as_ref().and_then(|t| s.tokens.get_mut(t)) {
            Some(uses) if *uses > 0 => {
                *uses -= 1;
                true
            }
            _ => false,
        };
        if !valid {
            let repo = req
                .path()
                .strip_prefix("/v2/")
                .and_then(|p| p.split("/manifests/").next())
                .map(|p| p.split("/blobs/").next().unwrap_or(p))
                .unwrap_or("");
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="proxy",scope="repository:{repo}:pull,push""#,
                s.addr
            );
            let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            let note = if presented.is_some() { "expired token" } else { "missing token" };
            return Plan::Answer(Response::new(401, vec![("WWW-Authenticate", challenge)], body), note);
        }
    }
    let n = {
        let c = s.occurrences.entry((req.method.clone(), kind)).or_default();
        *c += 1;
        *c
    };
    let rule = s
        .rules
        .iter()
        .find(|r| r.method == req.method && r.kind == kind && n >= r.first && n < r.first.saturating_add(r.times));
    let Some(rule) = rule else {
        return Plan::Forward { delay: Duration::ZERO, extra: vec![], cut: false };
    };
    let injected = br#"{"errors":[{"code":"UNAVAILABLE","message":"injected by the test proxy"}]}"#;
    match &rule.fault {
        Fault::Status(code, headers) => Plan::Answer(Response::new(*code, headers.clone(), injected), "fault"),
        Fault::TooManyUntil(d) => {
            let when = SystemTime::now() + *d + Duration::from_secs(1);
            Plan::Answer(Response::new(429, vec![("Retry-After", http_date(when))], injected), "fault")
        }
        Fault::DropMidBody => Plan::Drop { forward_half: false },
        Fault::DropMidBodyForwarded => Plan::Drop { forward_half: true },
        Fault::RedirectToAlt => {
            let location = format!("http://{}{}", s.alt_addr, req.target);
            Plan::Answer(Response::new(307, vec![("Location", location)], b""), "fault")
        }
        Fault::RateLimit { limit, remaining } => Plan::Forward {
            delay: Duration::ZERO,
            extra: vec![
                ("RateLimit-Limit".into(), format!("{limit};w=21600")),
                ("RateLimit-Remaining".into(), format!("{remaining};w=21600")),
            ],
            cut: false,
        },
        Fault::Delay(d) => Plan::Forward { delay: *d, extra: vec![], cut: false },
        Fault::CutAnswerBody => Plan::Forward { delay: Duration::ZERO, extra: vec![], cut: true },
    }
}

/// The request line and headers, or `None` at the end of the connection.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::other(format!("bad request line {line:?}")));
    };
    let (method, target) = (method.to_string(), target.to_string());
    let headers = read_headers(r)?;
    Ok(Some(Request { method, target, headers }))
}

fn read_headers(r: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(headers);
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

fn read_body(r: &mut impl BufRead, req: &Request) -> io::Result<Vec<u8>> {
    if req.chunked() {
        return read_chunked(r);
    }
    let mut body = vec![0; req.content_length() as usize];
    r.read_exact(&mut body)?;
    Ok(body)
}

fn read_half_body(r: &mut impl BufRead, req: &Request) -> io::Result<Vec<u8>> {
    if req.chunked() {
        // Half of the first chunk is enough to break a chunked body.
        let mut line = String::new();
        r.read_line(&mut line)?;
        let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        let mut half = vec![0; (size / 2) as usize];
        r.read_exact(&mut half)?;
        return Ok(half);
    }
    let mut half = vec![0; (req.content_length() / 2) as usize];
    r.read_exact(&mut half)?;
    Ok(half)
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            read_headers(r)?; // trailers
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size as usize, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        r.read_exact(&mut crlf)?;
    }
}

const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"];

/// Sends the request to the registry on a fresh connection and reads its whole answer.
/// `truncated`: `body` is only part of what `Content-Length` announces.
fn forward(upstream: &str, req: &Request, body: &[u8], truncated: bool) -> io::Result<Response> {
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        let lower = k.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) || lower == "content-length" {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let announced = if truncated { req.content_length() } else { body.len() as u64 };
    if announced > 0 || req.header("content-length").is_some() || req.chunked() {
        head.push_str(&format!("Content-Length: {announced}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(body)?;
    if truncated {
        up.shutdown(Shutdown::Write)?;
    }
    let mut raw = Vec::new();
    up.read_to_end(&mut raw)?;
    parse_response(&raw, req.method == "HEAD")
}

fn parse_response(raw: &[u8], head_request: bool) -> io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("the registry's answer has no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut sp = status_line.splitn(3, ' ');
    let _version = sp.next();
    let status: u16 = sp.next().and_then(|s| s.parse().ok()).ok_or_else(|| io::Error::other("bad status line"))?;
    let reason = sp.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let header = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let rest = &raw[split + 4..];
    let body = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        read_chunked(&mut BufReader::new(rest))?
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest[..n.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, reason, headers, body })
}

fn write_response(
    out: &mut impl Write,
    req: &Request,
    resp: Response,
    extra: &[(String, String)],
    close: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, resp.reason);
    // A HEAD answer, a 204 and a 304 have no body; a HEAD answer keeps the registry's length.
    let bodiless = req.method == "HEAD" || resp.status == 204 || resp.status == 304;
    let mut has_length = false;
    for (k, v) in &resp.headers {
        let lower = k.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) || (lower == "content-length" && !bodiless) {
            continue;
        }
        has_length |= lower == "content-length";
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length && resp.status != 204 && resp.status != 304 {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if !bodiless {
        out.write_all(&resp.body)?;
    }
    out.flush()
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), rounded down to the second.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
