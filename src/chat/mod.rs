//! `missive chat`: a terminal client for people, end-to-end encrypted, on
//! the reference client library (`missive_client::secure`). Each command
//! opens the device's profile directory (keys, sessions, the chats it has
//! read), does its work over the server's WebSocket and HTTP API, and saves
//! the profile again; `talk` stays in a chat, reading lines to send and
//! printing what arrives. Every command prints JSON lines, so scripts and
//! tests drive it as a person would.

mod store;
mod verify;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use missive_client::secure::{Received, SecureDevice, To};
use missive_client::{Api, code_from_sink_file};
use serde_json::{Value, json};

use store::Chats;

#[derive(clap::Args)]
pub struct ChatArgs {
    /// The server (`http://host:port`).
    #[arg(long, env = "MISSIVE_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    server: String,
    /// This device's profile directory (keys, sessions, chats; owner-only).
    #[arg(long, env = "MISSIVE_PROFILE", default_value = "./missive-profile", global = true)]
    profile: PathBuf,
    #[command(subcommand)]
    command: ChatCommand,
}

#[derive(clap::Subcommand)]
enum ChatCommand {
    /// Register this device with a phone number (E.164) and the code sent to it.
    Register {
        phone: String,
        /// The code; without it, read from `--sms-file` (a server's file sink) or asked for on the terminal.
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        sms_file: Option<PathBuf>,
        #[arg(long, default_value = "missive chat")]
        device_name: String,
    },
    /// The chats this device has, newest first.
    Chats,
    /// A chat's messages with their ticks (`user:<id>`, a bare user id, or `group:<id>`).
    Open { chat: String },
    /// Send a message (and, with `--file`, a picture or document sealed on this device).
    Send {
        chat: String,
        text: String,
        #[arg(long)]
        file: Option<PathBuf>,
        /// The file's kind: image, video, voice or document.
        #[arg(long, default_value = "image")]
        kind: String,
        #[arg(long, default_value = "image/jpeg")]
        content_type: String,
    },
    /// Read what arrived: print new messages and ticks for `--wait` seconds.
    Read {
        #[arg(long, default_value_t = 2)]
        wait: u64,
    },
    /// Stay in a chat: each line typed is sent; what arrives is printed.
    Talk { chat: String },
    /// Create a group with these members; prints its id.
    Group { name: String, members: Vec<String> },
    /// The security code of your chat with `user`, to compare out of band
    /// (in person, or on a call): equal codes mean no one sits between you.
    Verify { user: String },
}

fn parse_chat(chat: &str) -> To {
    match chat.strip_prefix("group:") {
        Some(group) => To::Group(group.to_string()),
        None => To::User(chat.strip_prefix("user:").unwrap_or(chat).to_string()),
    }
}

fn ws_url(server: &str) -> String {
    format!("{}/v1/ws", server.trim_end_matches('/').replacen("http", "ws", 1))
}

fn print(line: Value) {
    println!("{line}");
}

pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server);
    if let ChatCommand::Register { phone, code, sms_file, device_name } = &args.command {
        let account = api
            .register(phone, device_name, |phone| async move {
                match (code.clone(), sms_file.clone()) {
                    (Some(code), _) => Ok(code),
                    (None, Some(file)) => code_from_sink_file(&file, &phone, Duration::from_secs(30)).await,
                    (None, None) => ask("code sent by SMS: "),
                }
            })
            .await?;
        let device = SecureDevice::start(api, &ws_url(&args.server), account).await?.with_profile(&args.profile)?;
        print(json!({"registered": device.account.user_id, "device_id": device.account.device_id}));
        return Ok(());
    }
    let mut device = SecureDevice::resume(api, &ws_url(&args.server), &args.profile).await.with_context(|| {
        format!("no usable profile in {}: run `missive chat register` first", args.profile.display())
    })?;
    let mut chats = Chats::load(&args.profile)?;
    let outcome = command(&mut device, &mut chats, args.command).await;
    // Whatever arrived meanwhile is kept, shown or not.
    let arrived = device.receive_for(Duration::ZERO).await.unwrap_or_default();
    record(&device, &mut chats, arrived, false);
    chats.save(&args.profile)?;
    device.save()?;
    outcome
}

async fn command(device: &mut SecureDevice, chats: &mut Chats, command: ChatCommand) -> anyhow::Result<()> {
    match command {
        ChatCommand::Register { .. } => bail!("this profile is registered already; use another --profile"),
        ChatCommand::Chats => {
            for line in chats.list() {
                print(line);
            }
        }
        ChatCommand::Open { chat } => {
            let conversation = device.conversation_of(&parse_chat(&chat))?;
            for line in chats.messages(&conversation) {
                print(line);
            }
        }
        ChatCommand::Send { chat, text, file, kind, content_type } => {
            let to = parse_chat(&chat);
            let client_msg_id = format!("chat-{}", missive_client::now_ms());
            let sent = match file {
                Some(path) => {
                    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    device.send_media(&to, &client_msg_id, &bytes, (&kind, &content_type), &text).await?
                }
                None => device.send(&to, &client_msg_id, &json!({"text": text}), json!({})).await?,
            };
            if sent["type"] != "sent" {
                bail!("not sent: {sent}");
            }
            chats.sent(&device.conversation_of(&to)?, &sent, &text, &chat);
            print(
                json!({"sent": sent["message_id"], "conversation_id": sent["conversation_id"], "conv_seq": sent["conv_seq"], "ticks": "sent"}),
            );
        }
        ChatCommand::Read { wait } => {
            let arrived = device.receive_for(Duration::from_secs(wait)).await?;
            record(device, chats, arrived, true);
        }
        ChatCommand::Talk { chat } => talk(device, chats, &chat).await?,
        ChatCommand::Group { name, members } => {
            let token = device.account.access_token.clone();
            let (status, group) =
                device.api.post("/v1/groups", Some(&token), &json!({"name": name, "members": members})).await?;
            if status != 200 {
                bail!("creating the group answered {status}: {group}");
            }
            let id = group["conversation_id"].as_str().unwrap_or_default();
            chats.name(id, &format!("group:{id}"), &name);
            print(json!({"group": id, "name": name, "members": group["members"]}));
        }
        ChatCommand::Verify { user } => {
            let mine = device.account.user_id.clone();
            let code = verify::security_code(device, &mine, &user).await?;
            print(json!({"with": user, "security_code": code}));
        }
    }
    Ok(())
}

/// Keeps what arrived in the chats (and prints it when `show`).
fn record(device: &SecureDevice, chats: &mut Chats, arrived: Vec<Received>, show: bool) {
    for item in arrived {
        let line = match item {
            Received::Message { entry, payload } => chats.received(&entry, &payload, &device.account.user_id),
            Received::Unreadable { entry, error } => Some(json!({"unreadable": entry["message_id"], "why": error})),
            Received::Other(entry) if entry["kind"] == "receipt" => chats.receipt(&entry),
            Received::Other(entry) if entry["kind"] == "group" => {
                let id = entry["conversation_id"].as_str().unwrap_or_default();
                chats.name(id, &format!("group:{id}"), entry["name"].as_str().unwrap_or_default());
                Some(json!({"group": id, "change": entry["change"], "name": entry["name"]}))
            }
            Received::Other(entry) if entry["kind"] == "devices_changed" => {
                Some(json!({"security_code_changed": entry["user"], "chat": entry["conversation_id"]}))
            }
            Received::Other(_) => None,
        };
        if let (true, Some(line)) = (show, line) {
            print(line);
        }
    }
}

/// A chat on the terminal: lines typed are sent, what arrives is printed.
async fn talk(device: &mut SecureDevice, chats: &mut Chats, chat: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let to = parse_chat(chat);
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    eprintln!("missive chat: talking in {chat}; type a line to send it, end with Ctrl-D");
    loop {
        // Whichever comes first; both reads are safe to drop half-way.
        let input = tokio::select! {
            line = lines.next_line() => Input::Line(line?),
            frame = device.connection.next_frame(Duration::from_secs(30)) => Input::Frame(frame),
        };
        match input {
            Input::Line(None) => return Ok(()),
            Input::Line(Some(text)) if text.trim().is_empty() => {}
            Input::Line(Some(text)) => {
                let client_msg_id = format!("chat-{}", missive_client::now_ms());
                let sent = device.send(&to, &client_msg_id, &json!({"text": text}), json!({})).await?;
                chats.sent(&device.conversation_of(&to)?, &sent, &text, chat);
                print(json!({"sent": sent["message_id"], "ticks": "sent"}));
                let arrived = device.receive_for(Duration::ZERO).await?;
                record(device, chats, arrived, true);
            }
            Input::Frame(Ok(Some(frame))) => {
                let received = device.take_frame(frame).await?;
                record(device, chats, vec![received], true);
            }
            Input::Frame(Ok(None)) => device.reconnect().await?,
            // Quiet for a while: keep the connection alive.
            Input::Frame(Err(_)) => device.connection.send_json(&json!({"type": "ping"})).await?,
        }
    }
}

enum Input {
    Line(Option<String>),
    Frame(anyhow::Result<Option<Value>>),
}

fn ask(prompt: &str) -> anyhow::Result<String> {
    use std::io::Write;
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim().to_string())
}
