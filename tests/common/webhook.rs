//! A webhook receiver for push jobs.

use super::*;

/// A webhook receiver on 127.0.0.1: answers every POST with 200 and keeps
/// the JSON bodies, in arrival order.
pub struct WebhookSink {
    pub url: String,
    bodies: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl WebhookSink {
    pub async fn start() -> WebhookSink {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/push", listener.local_addr().expect("address"));
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = bodies.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: headers, then content-length bytes of body.
                        let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:"))
                            .and_then(|value| value.trim().parse().ok())
                            .unwrap_or(0);
                        while buffer.len() < end + 4 + length {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                            }
                        }
                        let body: Vec<u8> = buffer.drain(..end + 4 + length).skip(end + 4).collect();
                        if let Ok(json) = serde_json::from_slice::<Value>(&body) {
                            store.lock().expect("webhook store").push(json);
                        }
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        WebhookSink { url, bodies }
    }

    pub fn received(&self) -> Vec<Value> {
        self.bodies.lock().expect("webhook store").clone()
    }

    /// Waits until `ready` accepts what was received; fails with `what` at the deadline.
    pub async fn wait_for(&self, what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        eventually(what, WAIT, async || {
            let received = self.received();
            if ready(&received) { Ok(received) } else { Err(received) }
        })
        .await
    }
}
