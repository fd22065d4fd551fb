//! A scripted HTTP/1.1 server on `127.0.0.1:0`: a list of expected requests, each with the
//! answer to give — a status with headers and body, after a delay if asked, or a broken answer
//! (the connection dropped before any answer, or in the middle of the body). Requests must come
//! in the scripted order; every request is recorded, so a test can assert what a registry
//! would have seen (methods, paths, queries, `Authorization`, `Content-Range`, body sizes).
//!
//! The server runs on a thread of its own with its own runtime, so it serves both a
//! `#[tokio::test]` driving `archway::registry::Client` and an `archway` process started by a
//! synchronous test. A request that does not match the next step, or comes after the last
//! one, gets a `599` and is reported by [`Server::finish`], which also fails when steps were
//! left unused.
//!
//! [`Server::routes`] starts one that answers from a route table instead (any order; every
//! step answers every request that fits it, the first fitting one wins; a path ending in `*`
//! matches a prefix): a hostile registry behind a whole `archway` run, whose exact request
//! sequence the test need not know. Hostile answers: a body that trickles, one generated while
//! sent (100 MiB without ever being in memory), with or without `Content-Length`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What to do with a request once read.
#[derive(Debug, Clone)]
enum Action {
    /// The whole answer.
    Answer,
    /// Headers (with the full `Content-Length`) and only this many bytes of the body, then close.
    CutBody(usize),
    /// Close the connection without answering.
    Drop,
    /// The body one byte at a time, this long apart (with its full `Content-Length`).
    Trickle(Duration),
}

/// A body made while it is sent: `prefix`, then `len` times `fill`, then `suffix`.
#[derive(Debug, Clone)]
struct Generated {
    prefix: Vec<u8>,
    fill: u8,
    len: u64,
    suffix: Vec<u8>,
}

impl Generated {
    fn total(&self) -> u64 {
        self.prefix.len() as u64 + self.len + self.suffix.len() as u64
    }
}

/// One expected request and its answer.
#[derive(Debug, Clone)]
pub struct Step {
    method: String,
    path: String,
    query_has: Vec<String>,
    /// (lower-case header name, value prefix) the request must carry.
    header_has: Vec<(String, String)>,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
    action: Action,
    generated: Option<Generated>,
    /// No `Content-Length`: the body ends when the connection closes.
    unframed: bool,
}

impl Step {
    /// Expects `method` on `path` (the query is not compared, see [`Step::query_has`]);
    /// answers `200` with no body unless told otherwise.
    pub fn new(method: &str, path: &str) -> Step {
        Step {
            method: method.into(),
            path: path.into(),
            query_has: vec![],
            header_has: vec![],
            status: 200,
            headers: vec![],
            body: vec![],
            delay: Duration::ZERO,
            action: Action::Answer,
            generated: None,
            unframed: false,
        }
    }

    pub fn get(path: &str) -> Step {
        Step::new("GET", path)
    }

    /// The request's query must contain `part` (e.g. `digest=sha256:…`).
    pub fn query_has(mut self, part: &str) -> Step {
        self.query_has.push(part.into());
        self
    }

    /// The request must carry header `name` with a value starting with `prefix` (a route
    /// for requests that bear a token, before the one that challenges those that do not).
    pub fn when_header(mut self, name: &str, prefix: &str) -> Step {
        self.header_has.push((name.to_ascii_lowercase(), prefix.into()));
        self
    }

    pub fn status(mut self, status: u16) -> Step {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Step {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Step {
        self.body = body.into();
        self
    }

    /// A body with its `Content-Type`.
    pub fn typed(self, content_type: &str, body: impl Into<Vec<u8>>) -> Step {
        self.header("Content-Type", content_type).body(body)
    }

    /// A registry error document, `{"errors":[{"code":…,"message":…}]}`.
    pub fn error(self, status: u16, code: &str, message: &str) -> Step {
        let doc = serde_json::json!({"errors": [{"code": code, "message": message}]});
        self.status(status).typed("application/json", doc.to_string())
    }

    /// Waits this long before answering.
    pub fn delay(mut self, d: Duration) -> Step {
        self.delay = d;
        self
    }

    /// Sends the headers and the first `n` bytes of the body, then closes the connection.
    pub fn cut_body_after(mut self, n: usize) -> Step {
        self.action = Action::CutBody(n);
        self
    }

    /// Reads the request, then closes the connection without an answer.
    pub fn drop_connection(mut self) -> Step {
        self.action = Action::Drop;
        self
    }

    /// Sends the body one byte at a time, `every` apart.
    pub fn trickle(mut self, every: Duration) -> Step {
        self.action = Action::Trickle(every);
        self
    }

    /// A body of `prefix`, `len` bytes `fill`, then `suffix`, generated while it is sent: never
    /// held in memory, by the server or the test.
    pub fn generated_body(mut self, prefix: &[u8], fill: u8, len: u64, suffix: &[u8]) -> Step {
        self.generated = Some(Generated { prefix: prefix.into(), fill, len, suffix: suffix.into() });
        self
    }

    /// Sends no `Content-Length` (and `Connection: close`): the body ends when the connection
    /// does.
    pub fn without_length(mut self) -> Step {
        self.unframed = true;
        self
    }

    /// Whether this step answers `seen`: method, path (a trailing `*` matches a prefix), query.
    fn fits(&self, seen: &Seen) -> bool {
        let path = seen.path();
        let path_fits = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => self.path == path,
        };
        self.method == seen.method
            && path_fits
            && self.query_has.iter().all(|q| seen.query().contains(q))
            && self.header_has.iter().all(|(k, v)| seen.header(k).is_some_and(|h| h.starts_with(v.as_str())))
    }

    /// This step `n` times.
    pub fn times(self, n: usize) -> Vec<Step> {
        vec![self; n]
    }
}

/// A request as the server read it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Names lower-cased, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// `GET /v2/…` (the path without its query), for comparing request sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path())
    }
}

#[derive(Default)]
struct State {
    /// Answer from a route table (`Server::routes`) rather than a script.
    routed: bool,
    steps: VecDeque<Step>,
    seen: Vec<Seen>,
    wrong: Vec<String>,
}

pub struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts a server with no steps yet; add them with [`Server::script`] once its address is
    /// known (a bearer challenge names the server's own token endpoint).
    pub fn start() -> Server {
        Server::start_at("127.0.0.1", false)
    }

    /// Starts a server that answers from a route table on `ip` (a loopback address: `127.0.0.2`
    /// is another host than `127.0.0.1` to a client); add the routes with [`Server::script`].
    /// Nothing is consumed, and [`Server::finish`] only checks that every request had a route.
    pub fn routes(ip: &str) -> Server {
        Server::start_at(ip, true)
    }

    fn start_at(ip: &str, routed: bool) -> Server {
        let std_listener = std::net::TcpListener::bind((ip, 0)).expect("a loopback port");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State { routed, ..State::default() }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else { continue };
                        tokio::spawn(serve(stream, shared.clone()));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Server { addr, state, stop: Some(stop), thread: Some(thread) }
    }

    /// `IP:PORT`, the registry name of this server.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://IP:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Appends steps to the script.
    pub fn script(&self, steps: impl IntoIterator<Item = Step>) -> &Self {
        self.state.lock().unwrap().steps.extend(steps);
        self
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// `METHOD /path` of every request so far.
    pub fn lines(&self) -> Vec<String> {
        self.seen().iter().map(Seen::line).collect()
    }

    /// Panics when a request did not match its step or when steps were left unused; returns
    /// every request seen.
    pub fn finish(&self) -> Vec<Seen> {
        let st = self.state.lock().unwrap();
        let lines: Vec<String> = st.seen.iter().map(Seen::line).collect();
        assert!(st.wrong.is_empty(), "unexpected requests: {:#?}\nall requests: {lines:#?}", st.wrong);
        let left: Vec<String> =
            if st.routed { vec![] } else { st.steps.iter().map(|s| format!("{} {}", s.method, s.path)).collect() };
        assert!(left.is_empty(), "scripted requests never came: {left:#?}\nall requests: {lines:#?}");
        st.seen.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection: requests one after the other (keep-alive) until the client closes
/// it or a step breaks it.
async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut stream = BufReader::new(stream);
    loop {
        let Some(seen) = read_request(&mut stream).await else { return };
        let step = {
            let mut st = state.lock().unwrap();
            if st.routed {
                let route = st.steps.iter().find(|s| s.fits(&seen)).cloned();
                if route.is_none() {
                    st.wrong.push(format!("no route: {} {}", seen.method, seen.target));
                }
                st.seen.push(seen.clone());
                route
            } else {
                let step = st.steps.pop_front();
                let fits = step.as_ref().is_some_and(|s| s.fits(&seen));
                let step = match step {
                    Some(s) if fits => Some(s),
                    Some(s) => {
                        let want = format!("{} {} (query with {:?})", s.method, s.path, s.query_has);
                        st.wrong.push(format!("expected {want}, got {} {}", seen.method, seen.target));
                        // Keep the step for the request that should have come.
                        st.steps.push_front(s);
                        None
                    }
                    None => {
                        st.wrong.push(format!("after the last step: {} {}", seen.method, seen.target));
                        None
                    }
                };
                st.seen.push(seen.clone());
                step
            }
        };
        let Some(step) = step else {
            let _ = write_head(&mut stream, 599, &[], Some(0)).await;
            return;
        };
        if !step.delay.is_zero() {
            tokio::time::sleep(step.delay).await;
        }
        let head = seen.method == "HEAD";
        let body: &[u8] = if head { &[] } else { &step.body };
        let full_len = step.generated.as_ref().map_or(step.body.len() as u64, Generated::total);
        let len = (!step.unframed).then_some(full_len);
        let written = match step.action {
            Action::Drop => return,
            Action::Answer => {
                async {
                    write_head(&mut stream, step.status, &step.headers, len).await?;
                    match &step.generated {
                        Some(g) if !head => write_generated(stream.get_mut(), g).await?,
                        _ => stream.get_mut().write_all(body).await?,
                    }
                    stream.get_mut().flush().await
                }
                .await
                .is_ok()
                    && !step.unframed
            }
            Action::Trickle(every) => {
                let _ = async {
                    write_head(&mut stream, step.status, &step.headers, len).await?;
                    for b in body {
                        stream.get_mut().write_all(&[*b]).await?;
                        stream.get_mut().flush().await?;
                        tokio::time::sleep(every).await;
                    }
                    Ok::<_, std::io::Error>(())
                }
                .await;
                return;
            }
            Action::CutBody(n) => {
                let _ = write_head(&mut stream, step.status, &step.headers, len).await;
                let _ = stream.get_mut().write_all(&body[..n.min(body.len())]).await;
                let _ = stream.get_mut().flush().await;
                return;
            }
        };
        if !written {
            return;
        }
    }
}

/// Writes a generated body in pieces of 64 KiB.
async fn write_generated(stream: &mut TcpStream, g: &Generated) -> std::io::Result<()> {
    stream.write_all(&g.prefix).await?;
    let piece = vec![g.fill; 64 << 10];
    let mut left = g.len;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        stream.write_all(&piece[..n]).await?;
        left -= n as u64;
    }
    stream.write_all(&g.suffix).await
}

/// The status line and headers; `Content-Length: len`, or with `None` none and
/// `Connection: close`.
async fn write_head(
    stream: &mut BufReader<TcpStream>,
    status: u16,
    headers: &[(String, String)],
    len: Option<u64>,
) -> std::io::Result<()> {
    let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Scripted");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match len {
        Some(len) if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length")) => {
            head.push_str(&format!("Content-Length: {len}\r\n"))
        }
        Some(_) => {}
        None => head.push_str("Connection: close\r\n"),
    }
    head.push_str("\r\n");
    stream.get_mut().write_all(head.as_bytes()).await
}

/// Reads one request (head and body, by `Content-Length` or chunked); `None` at the end of the
/// connection or on anything unreadable.
async fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if stream.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if stream.read_line(&mut h).await.ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        stream.read_exact(&mut body).await.ok()?;
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            stream.read_line(&mut size).await.ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            stream.read_exact(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Seen { method, target, headers, body })
}
