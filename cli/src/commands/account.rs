//! Account commands: `init` (a new encrypted home), `whoami`, `register`, and the key commands
//! `keys fingerprint` / `keys trust`.

use std::path::Path;

use anyhow::Result;
use sealdesk_client::{Account, Client};
use sealdesk_protocol::card::Role;
use serde_json::json;

use super::{Relay, connect, open_account, passphrase};
use crate::kdf;
use crate::print::Output;

/// `init`: a new encrypted home with fresh identity keys ([`crate::kdf`] picks the hashing).
pub(super) fn init(home: &Path, name: &str, role: Role) -> Result<Output> {
    let (params, warning) = kdf::for_new_vault();
    let pass = passphrase(true)?;
    // A customer's keys come from a recovery code, shown once (crate::commands::recover).
    let (account, code) = if role == Role::Customer {
        let made = Account::create_with_code(home, &pass, params, name)?;
        (made.account, Some(made.code.reveal()))
    } else {
        (Account::create(home, &pass, params, name, role)?, None)
    };
    let fp = account.fingerprint().to_string();
    let mut text = format!(
        "created {role} account {name} in {}\nfingerprint: {fp}\nnext: sealdesk --home {} register",
        home.display(),
        shell_word(&home.display().to_string())
    );
    if let Some(code) = &code {
        text.push_str(&format!(
            "\nrecovery code: {}\n  shown only now: write it down and keep it offline. With it, \
             `sealdesk recover --name {name}` restores this account on a new machine; anyone \
             who has it can act as you.",
            code.as_str()
        ));
    }
    let value = json!({
        "name": name,
        "role": role.name(),
        "fingerprint": fp,
        "home": home,
        "recovery_code": code.as_ref().map(|c| c.as_str()),
    });
    let out = Output::new(text, value);
    Ok(match warning {
        Some(w) => out.warn(w),
        None => out,
    })
}

/// `word` as one shell word, to be copied into a command line: as it is when it holds only
/// characters no shell treats specially, else in single quotes.
pub(super) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `whoami`: this account's name, role, fingerprint and pinned relays.
pub(super) fn whoami(home: &Path) -> Result<Output> {
    let a = open_account(home)?;
    let fp = a.fingerprint().to_string();
    let relays: Vec<String> = a.pins()?.relays.keys().cloned().collect();
    Ok(Output::new(
        format!(
            "{} ({})\nfingerprint: {fp}\nhome: {}\nrelays pinned: {}",
            a.name(),
            a.role(),
            home.display(),
            if relays.is_empty() {
                "none yet".to_owned()
            } else {
                relays.join(", ")
            }
        ),
        json!({"name": a.name(), "role": a.role().name(), "fingerprint": fp, "home": home, "relays": relays,
               "card": hex::encode(sealdesk_protocol::wire::to_cbor(a.card().card())?)}),
    ))
}

/// `keys fingerprint NAME`: our own, a pinned peer's (and a changed key it now presents), or
/// else the relay's answer, marked as not pinned.
pub(super) async fn fingerprint(home: &Path, relay: &Relay, name: &str) -> Result<Output> {
    let account = open_account(home)?;
    if name == account.name() {
        let fp = account.fingerprint().to_string();
        return Ok(Output::new(
            format!("{name} (you): {fp}"),
            json!({"name": name, "fingerprint": fp, "source": "own"}),
        ));
    }
    if let Some(pin) = account.pins()?.peers.get(name) {
        let fp = pin.card.clone().verify()?.fingerprint().to_string();
        let pending = match &pin.pending {
            Some(p) => Some(p.clone().verify()?.fingerprint().to_string()),
            None => None,
        };
        let mut text = format!("{name} (pinned): {fp}");
        if let Some(p) = &pending {
            text.push_str(&format!(
                "\n{name} NOW PRESENTS A DIFFERENT KEY: {p}\ncompare it out of band, then `sealdesk keys trust {name}`"
            ));
        }
        return Ok(Output::new(
            text,
            json!({"name": name, "fingerprint": fp, "source": "pinned", "pending": pending}),
        ));
    }
    let c = Client::connect_with(account, &relay.url, &relay.tls).await?;
    let card = c.fetch_card(name).await?;
    let fp = card.fingerprint().to_string();
    c.close().await;
    Ok(Output::new(
        format!("{name} (from the relay, not pinned yet): {fp}"),
        json!({"name": name, "fingerprint": fp, "source": "relay"}),
    ))
}

/// `register`: publishes this account's card on the relay.
pub(super) async fn register(home: &Path, relay: &Relay) -> Result<Output> {
    let mut c = connect(home, relay, true).await?;
    c.register().await?;
    let out = Output::new(
        format!("registered {} on {}", c.account().name(), relay.url),
        json!({"ok": true, "name": c.account().name(), "relay": relay.url}),
    );
    c.close().await;
    Ok(out)
}

/// `keys trust NAME`: accepts a peer's changed key, which unblocks sending to it.
pub(super) async fn trust(home: &Path, relay: &Relay, name: &str) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let before = c
        .account()
        .pins()?
        .peers
        .get(name)
        .map(|p| p.pending.is_some());
    let card = c.trust(name).await?;
    let fp = card.clone().verify()?.fingerprint().to_string();
    c.close().await;
    let (text, blocked) = match before {
        Some(true) => (
            format!("now trusting the new key of {name} (fingerprint {fp}); sending is unblocked"),
            true,
        ),
        Some(false) => (
            format!(
                "{name}'s key (fingerprint {fp}) was already trusted; nothing was blocked, \
                 nothing changed"
            ),
            false,
        ),
        None => (
            format!(
                "now trusting the key of {name} (fingerprint {fp}); nothing was blocked (it was \
                 not pinned before)"
            ),
            false,
        ),
    };
    Ok(Output::new(
        text,
        json!({"name": name, "fingerprint": fp, "unblocked": blocked}),
    ))
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn a_home_is_printed_as_one_shell_word() {
        assert_eq!(shell_word("/home/carol/sd/carol"), "/home/carol/sd/carol");
        assert_eq!(shell_word("./h/x-1.2"), "./h/x-1.2");
        assert_eq!(shell_word("/tmp/my home"), "'/tmp/my home'");
        assert_eq!(shell_word("/tmp/it's"), r"'/tmp/it'\''s'");
        assert_eq!(shell_word("~/sd"), "'~/sd'");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
        assert_eq!(shell_word(""), "''");
    }
}
