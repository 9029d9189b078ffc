//! A TCP proxy in front of Redis that a test can stop, hang and resume: a Redis outage (refused
//! connections) or a hung Redis (accepted connections that never answer), without touching the
//! Redis that the other tests share.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const UP: u8 = 0;
const DOWN: u8 = 1;
const HUNG: u8 = 2;

/// The proxy; it stops when dropped.
pub struct RedisProxy {
    port: u16,
    mode: Arc<AtomicU8>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    accept: JoinHandle<()>,
}

impl RedisProxy {
    /// Proxies a local port to the Redis at `redis_url` (`redis://host:port[/db]`).
    pub async fn start(redis_url: &str) -> Self {
        let upstream = redis_url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap_or("127.0.0.1:6379")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let mode = Arc::new(AtomicU8::new(UP));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accept = tokio::spawn({
            let (mode, connections, held) = (mode.clone(), connections.clone(), held.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    match mode.load(Ordering::SeqCst) {
                        DOWN => drop(client),
                        HUNG => held.lock().expect("lock").push(client),
                        _ => {
                            let upstream = upstream.clone();
                            let task = tokio::spawn(async move {
                                if let Ok(mut server) = TcpStream::connect(&upstream).await {
                                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server)
                                        .await;
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

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.stop();
        self.accept.abort();
    }
}
