//! A TCP proxy in front of Redis or PostgreSQL that a test can stop, hang, resume or have cut one
//! connection mid-statement: an outage (refused connections), a hung server (accepted connections
//! that never answer) or a dropped connection, without touching the servers the other tests share.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const UP: u8 = 0;
const DOWN: u8 = 1;
const HUNG: u8 = 2;

/// The proxy; it stops when dropped.
pub struct TcpProxy {
    port: u16,
    /// Bytes that, once seen in what a client sends, close that connection instead (once).
    ambush: Ambush,
    mode: Arc<AtomicU8>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    accept: JoinHandle<()>,
}

type Ambush = Arc<Mutex<Option<Vec<u8>>>>;

/// The proxy in front of Redis.
pub type RedisProxy = TcpProxy;

impl TcpProxy {
    /// Proxies a local port to the Redis at `redis_url` (`redis://host:port[/db]`).
    pub async fn start(redis_url: &str) -> Self {
        let upstream = redis_url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap_or("127.0.0.1:6379")
            .to_owned();
        Self::to(upstream).await
    }

    /// Proxies a local port to `upstream` (`host:port`).
    pub async fn to(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let mode = Arc::new(AtomicU8::new(UP));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let ambush: Ambush = Arc::default();
        let accept = tokio::spawn({
            let (mode, connections, held, ambush) = (
                mode.clone(),
                connections.clone(),
                held.clone(),
                ambush.clone(),
            );
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    match mode.load(Ordering::SeqCst) {
                        DOWN => drop(client),
                        HUNG => held.lock().expect("lock").push(client),
                        _ => {
                            let (upstream, ambush) = (upstream.clone(), ambush.clone());
                            let task = tokio::spawn(async move {
                                if let Ok(server) = TcpStream::connect(&upstream).await {
                                    forward(client, server, ambush).await;
                                }
                            });
                            connections.lock().expect("lock").push(task);
                        }
                    }
                }
            }
        });
        Self {
            port,
            ambush,
            mode,
            connections,
            held,
            accept,
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The local port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next client to send `marker` (e.g. a statement's text) loses its connection instead:
    /// neither the bytes nor anything after them reach the server.
    pub fn cut_at(&self, marker: &[u8]) {
        *self.ambush.lock().expect("lock") = Some(marker.to_vec());
    }

    /// Whether the connection awaited by [`Self::cut_at`] was cut.
    pub fn sprung(&self) -> bool {
        self.ambush.lock().expect("lock").is_none()
    }

    fn cut(&self) {
        for task in self.connections.lock().expect("lock").drain(..) {
            task.abort();
        }
    }

    /// Cuts every connection and refuses new ones.
    pub fn stop(&self) {
        self.mode.store(DOWN, Ordering::SeqCst);
        self.cut();
        self.held.lock().expect("lock").clear();
    }

    /// Cuts every connection and accepts new ones that never get an answer.
    pub fn hang(&self) {
        self.mode.store(HUNG, Ordering::SeqCst);
        self.cut();
    }

    /// Forwards again (closing the connections held while hung).
    pub fn resume(&self) {
        self.mode.store(UP, Ordering::SeqCst);
        self.held.lock().expect("lock").clear();
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
        self.accept.abort();
    }
}

/// Copies both ways until either side closes, closing both when a client sends the ambush's
/// marker.
async fn forward(client: TcpStream, server: TcpStream, ambush: Ambush) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    let requests = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            let chunk = &buffer[..read];
            {
                let mut ambush = ambush.lock().expect("lock");
                let hit = ambush.as_ref().is_some_and(|marker| {
                    chunk
                        .windows(marker.len())
                        .any(|window| window == marker.as_slice())
                });
                if hit {
                    *ambush = None;
                    return;
                }
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    // Either side closing (or the ambush) ends both: the halves drop, the sockets close.
    tokio::select! {
        () = answers => {}
        () = requests => {}
    }
}
