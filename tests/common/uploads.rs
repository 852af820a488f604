//! Media uploads through the HTTP API.

use super::*;

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

pub fn absolute(server: &Server, url: &str) -> String {
    if url.starts_with("http") { url.to_string() } else { format!("{}{url}", server.api.base) }
}

/// PUTs `bytes` to an upload URL (absolute, or a path on the gateway).
/// PUTs `bytes` as an honest client does: to a presigned S3 URL with the
/// checksum header of the bytes it sends (the slot's `headers` when they are
/// the declared bytes).
pub async fn put_bytes(server: &Server, url: &str, bytes: Vec<u8>) -> (u16, Value) {
    let headers = match url.contains("X-Amz-Signature") {
        true => {
            use base64::Engine;
            use sha2::Digest;
            let checksum = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&bytes));
            json!({"x-amz-checksum-sha256": checksum})
        }
        false => json!({}),
    };
    put_with_headers(server, url, bytes, &headers).await
}

/// PUTs `bytes` with exactly these headers (an upload slot's `headers`).
pub async fn put_with_headers(server: &Server, url: &str, bytes: Vec<u8>, headers: &Value) -> (u16, Value) {
    let mut request = server.api.http.put(absolute(server, url)).body(bytes);
    for (name, value) in headers.as_object().into_iter().flatten() {
        request = request.header(name.as_str(), value.as_str().expect("header value"));
    }
    let response = request.send().await.expect("PUT");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Starts, PUTs and completes an upload; returns the media id.
pub async fn upload(server: &Server, token: &str, slot: Value, bytes: &[u8]) -> String {
    let (status, started) = server.api.post("/v1/media/uploads", Some(token), &slot).await.expect("upload start");
    assert_eq!(status, 200, "{started}");
    let media_id = started["media_id"].as_str().expect("media id").to_string();
    let (status, body) = put_bytes(server, started["upload_url"].as_str().expect("url"), bytes.to_vec()).await;
    assert_eq!(status, 200, "{body}");
    let complete = format!("/v1/media/uploads/{media_id}/complete");
    let (status, done) = server.api.post(&complete, Some(token), &json!({})).await.expect("complete");
    assert_eq!(status, 200, "{done}");
    media_id
}

pub fn slot(kind: &str, content_type: &str, bytes: &[u8]) -> Value {
    json!({"kind": kind, "content_type": content_type, "size": bytes.len(), "sha256": sha256_hex(bytes)})
}
