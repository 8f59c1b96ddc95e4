//! A `sealdesk chat --json` process driven through its pipes: lines typed on its input, every
//! output line parsed as one JSON event.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use sealdesk_tests::world::{PASS, World};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How long a test waits for an event before it fails (it never waits this long when the event
/// comes).
pub const EVENT_WAIT: Duration = Duration::from_secs(30);

/// A `sealdesk chat --json` process: its input, and its output's events, each parsed.
pub struct JsonChat {
    pub child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
    /// Every event seen so far, in order.
    pub seen: Vec<Value>,
}

impl JsonChat {
    /// Account `name` of `w` chatting in `conversation`.
    pub fn start(w: &World, name: &str, conversation: &str) -> Self {
        Self::start_with(w, name, Some(conversation), &[])
    }

    /// A chat in `conversation` (the latest when none), with more environment variables.
    pub fn start_with(
        w: &World,
        name: &str,
        conversation: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_at(w, name, &w.url, conversation, env)
    }

    /// [`Self::start_with`] through the relay at `relay` (a proxy in front of `w`'s, say).
    pub fn start_at(
        w: &World,
        name: &str,
        relay: &str,
        conversation: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealdesk"));
        cmd.arg("--home")
            .arg(w.home(name))
            .arg("--relay")
            .arg(relay)
            .args(["chat", "--json"]);
        if let Some(c) = conversation {
            cmd.args(["--conversation", c]);
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .env("SEALDESK_PASSPHRASE", PASS)
            .env("SEALDESK_INSECURE_FAST_KDF", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Every line is one JSON object.
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdin,
            events,
            seen: Vec::new(),
        }
    }

    /// Types `line` and Enter.
    pub async fn type_line(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Moves every event output so far and not yet waited for into `seen` (once the chat ended).
    pub fn drain(&mut self) {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
    }

    /// Types `/quit`, keeps every event until the output ends, and waits for the process to
    /// exit; all within `wait` (a chat asked to send many lines first may take longer than
    /// one [`EVENT_WAIT`]). The events are then all in `seen`.
    pub async fn quit_within(&mut self, wait: Duration) -> ExitStatus {
        self.type_line("/quit").await;
        let ended = async {
            while let Some(v) = self.events.recv().await {
                self.seen.push(v);
            }
            self.child.wait().await.unwrap()
        };
        tokio::time::timeout(wait, ended)
            .await
            .unwrap_or_else(|_| panic!("the chat did not end after /quit; saw {:#?}", self.seen))
    }

    /// Waits for the first event (from now on) that `pred` accepts.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let wait = async {
            while let Some(v) = self.events.recv().await {
                self.seen.push(v.clone());
                if pred(&v) {
                    return v;
                }
            }
            panic!("the chat ended before {what}; saw {:#?}", self.seen)
        };
        match tokio::time::timeout(EVENT_WAIT, wait).await {
            Ok(v) => v,
            Err(_) => panic!("no {what} in {:#?}", self.seen),
        }
    }
}

/// An event named `event`.
pub fn is(event: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["event"] == event
}
