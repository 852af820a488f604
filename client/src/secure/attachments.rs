//! Sealed attachments: upload the ciphertext, send its reference with the
//! key inside the sealed body; download and open what others sent.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{SecureDevice, To};

impl SecureDevice {
    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http") { url.to_string() } else { format!("{}{url}", self.api.base) }
    }

    /// Seals `bytes`, uploads the ciphertext and sends it: the media
    /// reference travels in clear (the server must know whom to serve it
    /// to), its key, hash, type and `caption` only inside the sealed body.
    pub async fn send_media(
        &mut self,
        to: &To,
        client_msg_id: &str,
        bytes: &[u8],
        (kind, content_type): (&str, &str),
        caption: &str,
    ) -> anyhow::Result<Value> {
        let sealed = crate::media::seal_media(bytes);
        // The server sees an opaque document of the ciphertext's size.
        let slot = json!({
            "kind": "document", "content_type": "application/octet-stream",
            "size": sealed.bytes.len(), "sha256": sealed.secret["sha256"],
        });
        let token = self.account.access_token.clone();
        let (status, started) = self.api.post("/v1/media/uploads", Some(&token), &slot).await?;
        if status != 200 {
            bail!("starting an upload answered {status}: {started}");
        }
        let media_id = started["media_id"].as_str().context("media_id")?.to_string();
        let mut put = self.api.http.put(self.absolute(started["upload_url"].as_str().context("upload_url")?));
        for (name, value) in started["headers"].as_object().into_iter().flatten() {
            put = put.header(name.as_str(), value.as_str().unwrap_or_default());
        }
        let response = put.body(sealed.bytes.clone()).send().await?;
        if !response.status().is_success() {
            bail!("uploading answered {}: {}", response.status(), response.text().await.unwrap_or_default());
        }
        let (status, done) =
            self.api.post(&format!("/v1/media/uploads/{media_id}/complete"), Some(&token), &json!({})).await?;
        if status != 200 {
            bail!("completing the upload answered {status}: {done}");
        }
        let mut attachment = sealed.secret;
        attachment["media_id"] = json!(media_id);
        attachment["kind"] = json!(kind);
        attachment["content_type"] = json!(content_type);
        attachment["size"] = json!(bytes.len());
        let payload = json!({"text": caption, "attachment": attachment});
        self.send(to, client_msg_id, &payload, json!({"media": {"media_id": media_id}})).await
    }

    /// Downloads and opens the attachment of an opened message's payload.
    pub async fn download(&self, payload: &Value) -> anyhow::Result<Vec<u8>> {
        let attachment = &payload["attachment"];
        let media_id = attachment["media_id"].as_str().context("no attachment")?;
        // `/v1/media/{id}` answers 302 to a short-lived signed URL, or 307
        // to the gateway that holds the upload (asked again, signed in).
        let mut url = self.absolute(&format!("/v1/media/{media_id}"));
        let mut signed = None;
        for _hop in 0..3 {
            let response = self.api.http.get(&url).bearer_auth(&self.account.access_token).send().await?;
            let status = response.status().as_u16();
            let location = response.headers().get("location").and_then(|value| value.to_str().ok()).map(str::to_string);
            match (status, location) {
                // A path is on the gateway that answered, which may not be the first one.
                (307 | 308, Some(location)) => url = reqwest::Url::parse(&url)?.join(&location)?.to_string(),
                (302 | 303, Some(location)) => {
                    signed = Some(reqwest::Url::parse(&url)?.join(&location)?.to_string());
                    break;
                }
                _ => bail!("media {media_id} answered {status}"),
            }
        }
        let signed = signed.with_context(|| format!("media {media_id}: too many redirects"))?;
        let response = self.api.http.get(signed).send().await?;
        if !response.status().is_success() {
            bail!("downloading media {media_id} answered {}", response.status());
        }
        crate::media::open_media(&response.bytes().await?, attachment)
    }
}
