//! What a hostile relay does to the clients behind the [`Proxy`], for the hostile tests
//! (`tests/tests/hostile_*.rs`): hooks that edit the items delivered to one account
//! ([`edit_for`], [`replace_for`]) or rewrite its answers ([`answer_for`]), identities it makes
//! up ([`impostor`]), and the audit log it serves with its own key ([`forge_log`],
//! [`forge_log_with_notice`]). [`carol_sends_numbered`] is the conversation the ordering tests
//! start from.
//!
//! [`Proxy`]: crate::proxy::Proxy

use std::sync::Arc;

use sealdesk_client::Client;
use sealdesk_protocol::{
    audit::AuditEntry,
    card::Role,
    ids::ConversationId,
    wire::{Frame, Item, Request, Response, Sequenced},
};

use crate::{
    identity::Identity,
    proxy::{Ctx, Dir, LogForger, edit_items},
    world::{Via, World, open_chat},
};

/// A hook that applies `edit` to every conversation item delivered to `victim` (pages of
/// `History` and pushed items alike) and passes everything else through.
pub fn edit_for(
    victim: &'static str,
    mut edit: impl FnMut(&mut Sequenced) + Send + 'static,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    move |ctx, frame| {
        if ctx.dir == Dir::ToClient && ctx.account == Some(victim) {
            vec![edit_items(frame, &mut edit)]
        } else {
            vec![frame]
        }
    }
}

/// A hook that delivers `item` to `victim` in place of item `seq` of `conv`: the relay reuses a
/// sequence number it owns to slip in something of its choosing.
pub fn replace_for(
    victim: &'static str,
    conv: ConversationId,
    seq: u64,
    item: Item,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    edit_for(victim, move |s| {
        if s.conversation == conv && s.seq == seq {
            s.item = item.clone();
        }
    })
}

/// A hook that rewrites the relay's answers to `victim` with `answer(request, response)`.
pub fn answer_for(
    victim: &'static str,
    mut answer: impl FnMut(&Request, Response) -> Response + Send + 'static,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    move |ctx, frame| match (ctx.account, ctx.request, frame) {
        (Some(a), Some(req), Frame::Response { id, body }) if a == victim => {
            vec![Frame::Response {
                id,
                body: answer(req, body),
            }]
        }
        (_, _, frame) => vec![frame],
    }
}

/// An identity the hostile relay made up (cards are self-signed: anyone can make one).
pub fn impostor(seed: u64, name: &str, role: Role) -> Identity {
    Identity::new(seed, name, role)
}

/// Has the proxy serve `forger`'s audit log (and its proofs and heads) to every account.
pub fn forge_log(w: &World, forger: &Arc<LogForger>) {
    let f = Arc::clone(forger);
    w.proxy()
        .set_hook(move |ctx, frame| vec![f.rewrite(ctx, frame)]);
}

/// As [`forge_log`], and carol is delivered `entry` (at index `index` of the forged log) as a
/// notice in `conv` in place of item `seq`.
pub fn forge_log_with_notice(
    w: &World,
    forger: &Arc<LogForger>,
    conv: ConversationId,
    seq: u64,
    entry: AuditEntry,
    index: u64,
) {
    let f = Arc::clone(forger);
    let mut replace = replace_for("carol", conv, seq, Item::Notice { entry, index });
    w.proxy().set_hook(move |ctx, frame| {
        let frame = f.rewrite(ctx, frame);
        replace(ctx, frame)
    });
}

/// Org `acme` (agent alice, `rotate` as [`World::org_master`]) and customer carol, connected
/// directly, in a new chat where she sent `n` messages "m0", "m1", …; with their sequence
/// numbers.
pub async fn carol_sends_numbered(
    w: &World,
    rotate: Option<u32>,
    n: usize,
) -> (Client, Client, ConversationId, Vec<u64>) {
    let master = w.org_master(&["alice"], rotate).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    let mut seqs = Vec::new();
    for i in 0..n {
        seqs.push(carol.send_text(&conv, &format!("m{i}")).await.unwrap());
    }
    (master, carol, conv, seqs)
}
