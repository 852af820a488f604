//! Security codes: 60 digits two people compare out of band. Both compute
//! them from the identity keys the server lists for both accounts, so
//! equal codes mean each sees the other's real keys; a server (or anyone
//! between) that swapped a key would show them different codes.

use missive_client::secure::SecureDevice;
use sha2::{Digest, Sha512};

/// The code of the chat between `me` and `them` (the same on both sides).
pub async fn security_code(device: &mut SecureDevice, me: &str, them: &str) -> anyhow::Result<String> {
    let mut users = [me.to_string(), them.to_string()];
    users.sort();
    let mut hasher = Sha512::new();
    hasher.update(b"missive/security-code/v1\n");
    for user in &users {
        let mut keys: Vec<String> =
            device.devices_of(user).await?.into_values().map(|identity| identity.ed25519).collect();
        // This device's own keys count too; the server lists them like any other.
        keys.sort();
        hasher.update(format!("{user}\n{}\n", keys.join(",")).as_bytes());
    }
    let digest = hasher.finalize();
    let groups: Vec<String> = digest[..60]
        .chunks(5)
        .map(|chunk| {
            let number = chunk.iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
            format!("{:05}", number % 100_000)
        })
        .collect();
    Ok(groups.join(" "))
}
