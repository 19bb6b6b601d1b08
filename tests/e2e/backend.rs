//! A zone's load balancer for tests: a real HTTP server on a loopback
//! address that a test can make healthy, failing, hung, slow, flapping or
//! stopped (its port closed, so connections are refused).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 200 OK.
    Healthy,
    /// 500 Internal Server Error.
    Error,
    /// Accepts the connection, reads the request, never answers.
    Hang,
    /// 200 OK after 150 ms.
    Slow,
    /// Alternates 200 and 500, request by request.
    Flapping,
    /// Like a process stopped with SIGSTOP: requests are read and held;
    /// [`Backend::resume`] answers every one still open at once, as the
    /// process would when continued.
    Stalled,
}

pub struct Backend {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    requests: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
    /// Held connections of hung requests, so they stay open.
    held: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// A healthy backend on `ip` (a loopback address) and a free port.
    pub fn start(ip: &str) -> Backend {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(ip.is_loopback(), "tests probe loopback only");
        let listener = TcpListener::bind((ip, 0)).expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let mut backend = Backend {
            addr,
            mode: Arc::new(AtomicU8::new(Mode::Healthy as u8)),
            requests: Arc::new(AtomicU64::new(0)),
            running: Arc::new(AtomicBool::new(false)),
            held: Arc::new(Mutex::new(Vec::new())),
            thread: None,
        };
        backend.serve(listener);
        backend
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Ends a stall: healthy from now on, and every held request that is
    /// still open gets its 200 now, together.
    pub fn resume(&self) {
        self.set_mode(Mode::Healthy);
        let port = self.addr.port();
        let mut stalled = STALLED.lock().unwrap();
        stalled.retain_mut(|stream| {
            if stream.local_addr().ok().map(|a| a.port()) != Some(port) {
                return true;
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            false
        });
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Closes the port: probes get connection refused.
    pub fn stop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        // Wake the accept loop so it drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.held.lock().unwrap().clear();
    }

    /// Opens the same address and port again.
    pub fn restart(&mut self) {
        assert!(self.thread.is_none(), "restart after stop");
        let listener = TcpListener::bind(self.addr).expect("rebind backend");
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        self.running.store(true, Ordering::SeqCst);
        let mode = self.mode.clone();
        let requests = self.requests.clone();
        let running = self.running.clone();
        let held = self.held.clone();
        self.thread = Some(std::thread::spawn(move || {
            for stream in listener.incoming() {
                if !running.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let n = requests.fetch_add(1, Ordering::SeqCst);
                let mode = mode.load(Ordering::SeqCst);
                let held = held.clone();
                std::thread::spawn(move || handle(stream, mode, n, &held));
            }
        }));
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

/// Requests held by stalled backends (each knows its own by local port).
static STALLED: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());

fn handle(mut stream: TcpStream, mode: u8, n: u64, held: &Mutex<Vec<TcpStream>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    }
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let err =
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfail";
    let reply = match mode {
        m if m == Mode::Healthy as u8 => ok,
        m if m == Mode::Stalled as u8 => {
            STALLED.lock().unwrap().push(stream);
            return;
        }
        m if m == Mode::Error as u8 => err,
        m if m == Mode::Slow as u8 => {
            std::thread::sleep(Duration::from_millis(150));
            ok
        }
        m if m == Mode::Flapping as u8 => {
            if n.is_multiple_of(2) {
                ok
            } else {
                err
            }
        }
        _ => {
            held.lock().unwrap().push(stream);
            return;
        }
    };
    let _ = stream.write_all(reply.as_bytes());
}
