//! A dispute ticket's lifecycle at the relay (issue 22 §1 item 4): only the org's master closes
//! a ticket, with a statement it signed about that ticket; a closed ticket takes no decision and
//! justifies no release; enough rejections close it; a close ends the legal hold and is logged
//! as a notice in the conversation, signed by the relay's log key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    audit::AuditEvent,
    ids::EpochRange,
    release::{
        ArbiterDecision, ClosedBecause, DisputeClose, DisputeTicket, ErasureRequest, Justification,
        ReleaseRequest, Verdict,
    },
    wire::{ErrorCode, Item, Request, Response, TicketState},
};
use sealdesk_tests::{Org, RawClient, now, rng, spawn_relay, stop_relay};

/// The org's master opens a ticket on a fresh conversation of customer 0; returns the
/// customer's and master's connections and the ticket.
async fn ticket(url: &str, org: &Org, seed: u64) -> (RawClient, RawClient, DisputeTicket) {
    let mut customer = RawClient::login(url, &org.customers[0]).await;
    let chat = org.start_chat(&mut customer, 0, seed).await;
    let t = DisputeTicket::open(
        &mut rng(seed + 1),
        &org.master.keys,
        &org.policy,
        chat.id,
        EpochRange::single(0),
        "chargeback",
        3600,
        now(),
    )
    .unwrap();
    let mut master = RawClient::login(url, &org.master).await;
    master.ok(Request::OpenTicket(t.clone())).await;
    (customer, master, t)
}

/// The ticket as the master lists it.
async fn state(master: &mut RawClient, t: &DisputeTicket) -> TicketState {
    match master.request(Request::ListTickets).await {
        Response::Tickets(all) => all.into_iter().find(|s| s.ticket.id == t.id).unwrap(),
        other => panic!("expected tickets, got {other:?}"),
    }
}

/// The customer asks to erase the ticket's conversation.
fn erasure(org: &Org, t: &DisputeTicket) -> Request {
    Request::Erase(ErasureRequest::sign(
        &org.customers[0].keys,
        t.conversation,
        now(),
    ))
}

#[tokio::test]
async fn only_the_master_closes_and_a_closed_ticket_releases_nothing() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 71, "closeco", 1, 1).await;
    let (mut customer, mut master, t) = ticket(&url, &org, 710).await;
    let arbiter = &org.arbiters[0];
    let mut a = RawClient::login(&url, arbiter).await;

    // While open: erasure is refused (legal hold).
    assert_eq!(
        customer.refused(erasure(&org, &t)).await,
        ErrorCode::LegalHold
    );

    // An arbiter's own close: refused (not the master).
    let by_arbiter = DisputeClose::sign(&arbiter.keys, &t, "done", now());
    assert_eq!(
        a.refused(Request::CloseTicket(by_arbiter.clone())).await,
        ErrorCode::Forbidden
    );
    // The master's name on it with another key's signature, sent by the master: refused.
    let mut forged = DisputeClose::sign(&org.master.keys, &t, "done", now());
    forged.signature = by_arbiter.signature;
    assert_eq!(
        master.refused(Request::CloseTicket(forged)).await,
        ErrorCode::BadRequest
    );
    // The master's genuine close of another ticket's hash: refused.
    let mut other = t.clone();
    other.reason = "something else".into();
    let wrong = DisputeClose::sign(&org.master.keys, &other, "done", now());
    assert_eq!(
        master.refused(Request::CloseTicket(wrong)).await,
        ErrorCode::BadRequest
    );
    assert!(state(&mut master, &t).await.closed.is_none(), "still open");

    // Two approvals (2 of 3): the ticket would justify a release.
    let decisions: Vec<ArbiterDecision> = org.arbiters[..2]
        .iter()
        .map(|x| ArbiterDecision::sign(&x.keys, &t, Verdict::Approve, now()).unwrap())
        .collect();
    a.ok(Request::Decide(decisions[0].clone())).await;

    // The master closes it.
    master
        .ok(Request::CloseTicket(DisputeClose::sign(
            &org.master.keys,
            &t,
            "settled with the customer",
            now(),
        )))
        .await;
    let st = state(&mut master, &t).await;
    let closed = st.closed.expect("closed");
    assert_eq!(
        closed.because,
        ClosedBecause::Master("settled with the customer".into())
    );

    // Closed: no decision, no release request, no second close.
    let mut a2 = RawClient::login(&url, &org.arbiters[1]).await;
    assert_eq!(
        a2.refused(Request::Decide(decisions[1].clone())).await,
        ErrorCode::TicketClosed
    );
    let request = ReleaseRequest::sign(
        &mut rng(712),
        &org.master.keys,
        &org.policy,
        EpochRange::single(0),
        Justification::Dispute {
            ticket: t.clone(),
            decisions,
        },
        now(),
    )
    .unwrap();
    assert_eq!(
        master.refused(Request::SubmitRelease(request)).await,
        ErrorCode::TicketClosed
    );
    assert_eq!(
        master
            .refused(Request::CloseTicket(DisputeClose::sign(
                &org.master.keys,
                &t,
                "again",
                now()
            )))
            .await,
        ErrorCode::TicketClosed
    );

    // The customer was told, in the conversation, by an entry the relay's log key signed.
    let Response::Items { items, .. } = customer
        .request(Request::History {
            conversation: t.conversation,
            after: 0,
            limit: 50,
        })
        .await
    else {
        panic!("no history")
    };
    let notice = items
        .iter()
        .find_map(|s| match &s.item {
            Item::Notice { entry, .. } => match &entry.event {
                AuditEvent::DisputeClosed { ticket, .. } if *ticket == t.id => Some(entry.clone()),
                _ => None,
            },
            _ => None,
        })
        .expect("a close notice in the conversation");
    notice.verify().unwrap();
    assert_eq!(notice.signer, customer.challenge().relay_key);

    // The legal hold ended with the close.
    customer.ok(erasure(&org, &t)).await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn rejections_that_make_approval_impossible_close_the_ticket() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 72, "rejectco", 1, 1).await;
    let (mut customer, mut master, t) = ticket(&url, &org, 720).await;
    let reject = |i: usize| {
        ArbiterDecision::sign(
            &org.arbiters[i].keys,
            &t,
            Verdict::Reject("no evidence".into()),
            now(),
        )
        .unwrap()
    };
    // One of three rejects: two can still approve (2 of 3): open.
    let mut a0 = RawClient::login(&url, &org.arbiters[0]).await;
    a0.ok(Request::Decide(reject(0))).await;
    assert!(state(&mut master, &t).await.closed.is_none());
    assert_eq!(
        customer.refused(erasure(&org, &t)).await,
        ErrorCode::LegalHold
    );
    // Two reject: approval is impossible, the ticket closes and the hold ends.
    let mut a1 = RawClient::login(&url, &org.arbiters[1]).await;
    a1.ok(Request::Decide(reject(1))).await;
    let closed = state(&mut master, &t).await.closed.expect("closed");
    assert_eq!(closed.because, ClosedBecause::Rejected);
    customer.ok(erasure(&org, &t)).await;
    stop_relay(relay).await;
}
