//! The metrics endpoint's HTTP side, driven by the event loop: the loop polls the fds
//! `interest` names and calls `service` when one is ready or `next_deadline` passed.
//! Nothing here blocks or waits: every socket is non-blocking, a request is read into a
//! small capped buffer, each connection has a fixed deadline from its accept (not
//! extended by activity, so trickling bytes buys nothing), and a new connection whose
//! request is already there is served on the spot, while one that must wait gets one
//! of a few slots or, with none free, is closed. Only `GET /metrics` and `GET /healthz` are
//! answered; anything else gets a short 4xx and is closed.

use super::Format;
use nix::poll::PollFlags;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// A request (line and headers) longer than this is refused: a scraper's is ~200 bytes.
pub const REQUEST_CAP: usize = 2048;
/// A connection must have sent its whole request this soon after its accept...
pub const READ_DEADLINE: Duration = Duration::from_secs(2);
/// ...and taken the whole reply this soon after it was ready.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once; more are accepted and closed at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Accepts per call, so that a connect flood cannot keep one wake-up of the loop busy.
const ACCEPTS_PER_CALL: usize = 16;
/// Reads per readable connection per call: the cap bounds the bytes, this the calls.
const READS_PER_CALL: usize = 4;

/// What the endpoint was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics(Format),
    Healthz,
}

/// What the loop answers a route with.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// What became of a connection, for `mcpinit_metrics_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Metrics,
    Healthz,
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
    Timeout,
    Busy,
    /// The client went away before its request was complete.
    Closed,
}

pub const OUTCOMES: [Outcome; 9] = [
    Outcome::Metrics,
    Outcome::Healthz,
    Outcome::NotFound,
    Outcome::MethodNotAllowed,
    Outcome::BadRequest,
    Outcome::TooLarge,
    Outcome::Timeout,
    Outcome::Busy,
    Outcome::Closed,
];

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Metrics => "metrics",
            Outcome::Healthz => "healthz",
            Outcome::NotFound => "not_found",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
            Outcome::Timeout => "timeout",
            Outcome::Busy => "busy",
            Outcome::Closed => "closed",
        }
    }
}

enum Phase {
    Reading,
    Writing { out: Vec<u8>, written: usize },
}

struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    phase: Phase,
    deadline: Instant,
}

pub struct Server {
    listener: TcpListener,
    conns: Vec<Conn>,
    counts: [u64; OUTCOMES.len()],
}

impl Server {
    /// Listen on `address`, non-blocking and close-on-exec (std sets `SOCK_CLOEXEC`
    /// on the listener and on every accepted socket), so the child inherits none of it.
    pub fn bind(address: SocketAddr) -> std::io::Result<Server> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            conns: Vec::new(),
            counts: [0; OUTCOMES.len()],
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Connections handled so far, by outcome (in the order of `OUTCOMES`).
    pub fn counts(&self) -> [u64; OUTCOMES.len()] {
        self.counts
    }

    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// The fds to poll and for what: the listener first, then each connection. The
    /// answer to a poll goes back to `service` in the same order.
    pub fn interest(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut fds = Vec::with_capacity(1 + self.conns.len());
        fds.push((self.listener.as_fd(), PollFlags::POLLIN));
        for conn in &self.conns {
            let events = match conn.phase {
                Phase::Reading => PollFlags::POLLIN,
                Phase::Writing { .. } => PollFlags::POLLOUT,
            };
            fds.push((conn.stream.as_fd(), events));
        }
        fds
    }

    /// The earliest connection deadline: the loop must call `service` by then.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|c| c.deadline).min()
    }

    /// Do what is ready: `ready[0]` for the listener, `ready[1 + i]` for the i-th
    /// connection of the last `interest` (missing entries count as not ready). Drops
    /// the connections whose deadline passed. `respond` is called once per complete,
    /// valid request.
    pub fn service(
        &mut self,
        ready: &[bool],
        now: Instant,
        mut respond: impl FnMut(Route) -> Reply,
    ) {
        let is_ready = |i: usize| ready.get(i).copied().unwrap_or(false);
        let mut kept = Vec::with_capacity(self.conns.len());
        for (i, mut conn) in std::mem::take(&mut self.conns).into_iter().enumerate() {
            let slot = 1 + i;
            let outcome = if now >= conn.deadline {
                // A reply that was too slow to leave was counted when it was made.
                let reading = matches!(conn.phase, Phase::Reading);
                Step::Done(reading.then_some(Outcome::Timeout))
            } else if is_ready(slot) {
                conn.step(now, &mut respond)
            } else {
                Step::Keep
            };
            match outcome {
                Step::Keep => kept.push(conn),
                Step::Replied(outcome) => {
                    self.count(outcome);
                    if conn.is_written() {
                        conn.finish();
                    } else {
                        kept.push(conn);
                    }
                }
                Step::Done(outcome) => {
                    if let Some(outcome) = outcome {
                        self.count(outcome);
                    }
                    conn.finish();
                }
            }
        }
        self.conns = kept;
        if is_ready(0) {
            self.accept(now, &mut respond);
        }
    }

    fn count(&mut self, outcome: Outcome) {
        if let Some(i) = OUTCOMES.iter().position(|&o| o == outcome) {
            self.counts[i] += 1;
        }
    }

    /// Take new connections, and serve each at once if its request is already there
    /// (a scraper sends it with the handshake): slow clients holding every slot then
    /// cost an honest one nothing. One that must wait gets a slot, or, with none free,
    /// is closed.
    fn accept(&mut self, now: Instant, respond: &mut impl FnMut(Route) -> Reply) {
        for _ in 0..ACCEPTS_PER_CALL {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                // WouldBlock: the backlog is empty. Anything else (ECONNABORTED, EMFILE)
                // is left for the next readiness: never an error of the loop's.
                Err(_) => return,
            };
            if stream.set_nonblocking(true).is_err() {
                self.count(Outcome::Busy);
                continue; // dropped: closed
            }
            let mut conn = Conn {
                stream,
                request: Vec::with_capacity(512),
                phase: Phase::Reading,
                deadline: now + READ_DEADLINE,
            };
            let room = self.conns.len() < MAX_CONNECTIONS;
            match conn.step(now, respond) {
                Step::Keep if room => self.conns.push(conn),
                Step::Keep => self.count(Outcome::Busy),
                Step::Replied(outcome) => {
                    self.count(outcome);
                    if conn.is_written() || !room {
                        conn.finish();
                    } else {
                        self.conns.push(conn);
                    }
                }
                Step::Done(outcome) => {
                    if let Some(outcome) = outcome {
                        self.count(outcome);
                    }
                    conn.finish();
                }
            }
        }
    }
}

enum Step {
    Keep,
    /// A reply is queued (maybe all written already).
    Replied(Outcome),
    /// Close now, counting the outcome if there is one.
    Done(Option<Outcome>),
}

impl Conn {
    fn step(&mut self, now: Instant, respond: &mut impl FnMut(Route) -> Reply) -> Step {
        match self.phase {
            Phase::Reading => self.read(now, respond),
            Phase::Writing { .. } => match self.write() {
                Ok(()) if self.is_written() => Step::Done(None),
                Ok(()) => Step::Keep,
                Err(()) => Step::Done(None),
            },
        }
    }

    fn read(&mut self, now: Instant, respond: &mut impl FnMut(Route) -> Reply) -> Step {
        let mut chunk = [0u8; 1024];
        for _ in 0..READS_PER_CALL {
            let room = (REQUEST_CAP - self.request.len()).min(chunk.len());
            match self.stream.read(&mut chunk[..room]) {
                Ok(0) => return Step::Done(Some(Outcome::Closed)),
                Ok(n) => self.request.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Step::Done(Some(Outcome::Closed)),
            }
            if head_complete(&self.request) || self.request.len() >= REQUEST_CAP {
                break;
            }
        }
        let (outcome, reply) = if head_complete(&self.request) {
            match parse(&self.request) {
                Ok(route) => {
                    let outcome = match route {
                        Route::Metrics(_) => Outcome::Metrics,
                        Route::Healthz => Outcome::Healthz,
                    };
                    (outcome, respond(route))
                }
                Err(outcome) => (outcome, refusal(outcome)),
            }
        } else if self.request.len() >= REQUEST_CAP {
            (Outcome::TooLarge, refusal(Outcome::TooLarge))
        } else {
            return Step::Keep;
        };
        self.phase = Phase::Writing {
            out: encode(&reply, outcome),
            written: 0,
        };
        self.deadline = now + WRITE_DEADLINE;
        match self.write() {
            Ok(()) => Step::Replied(outcome),
            Err(()) => Step::Done(Some(outcome)),
        }
    }

    /// Write what the socket takes now. Err: the client is gone.
    fn write(&mut self) -> Result<(), ()> {
        let Phase::Writing { out, written } = &mut self.phase else {
            return Ok(());
        };
        // Bounded: each pass writes at least one byte or stops.
        while *written < out.len() {
            // std writes to sockets with MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE.
            match self.stream.write(&out[*written..]) {
                Ok(0) => return Err(()),
                Ok(n) => *written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Err(()),
            }
        }
        Ok(())
    }

    fn is_written(&self) -> bool {
        matches!(&self.phase, Phase::Writing { out, written } if *written >= out.len())
    }

    /// Close: say we are done writing, and take what the client still sent (once,
    /// bounded), since closing with unread bytes queued makes the kernel reset the
    /// connection, which can cost the client the reply it has not read yet.
    fn finish(mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let mut sink = [0u8; 1024];
        let _ = self.stream.read(&mut sink);
    }
}

/// The request line and headers have all arrived.
fn head_complete(request: &[u8]) -> bool {
    request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n")
}

/// The route a request asks for, or why it is refused.
fn parse(request: &[u8]) -> Result<Route, Outcome> {
    let text = std::str::from_utf8(request).map_err(|_| Outcome::BadRequest)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Outcome::BadRequest);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Err(Outcome::BadRequest);
    }
    let path = target.split('?').next().unwrap_or(target);
    let known = matches!(path, "/metrics" | "/healthz");
    if method != "GET" {
        return Err(if known {
            Outcome::MethodNotAllowed
        } else {
            Outcome::NotFound
        });
    }
    match path {
        "/metrics" => {
            let accept = lines
                .take_while(|l| !l.is_empty())
                .filter_map(|l| l.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
                .map_or("", |(_, value)| value);
            Ok(Route::Metrics(Format::from_accept(accept)))
        }
        "/healthz" => Ok(Route::Healthz),
        _ => Err(Outcome::NotFound),
    }
}

fn refusal(outcome: Outcome) -> Reply {
    let (status, body) = match outcome {
        Outcome::NotFound => (404, "not found: try GET /metrics or GET /healthz\n"),
        Outcome::MethodNotAllowed => (405, "method not allowed: only GET\n"),
        Outcome::TooLarge => (431, "request too large\n"),
        _ => (400, "bad request\n"),
    };
    Reply {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.into(),
    }
}

fn encode(reply: &Reply, outcome: Outcome) -> Vec<u8> {
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let allow = if outcome == Outcome::MethodNotAllowed {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    let mut out = Vec::with_capacity(head.len() + reply.body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(reply.body.as_bytes());
    out
}

#[cfg(test)]
pub(super) fn parse_for_test(request: &[u8]) -> Result<Route, Outcome> {
    parse(request)
}
