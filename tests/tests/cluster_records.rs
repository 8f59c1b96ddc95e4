//! Read-modify-write records across cluster nodes (issue 24): a release request's shares, a
//! dispute ticket's decisions, a witness's cosignature. Each is updated by a conditional write
//! (`ConversationLog::replace_if`, `ConversationLog::insert_if_absent_now`) and made again from
//! a fresh read when another node wrote first (`Service::update_record`).
//!
//! - at store level, two engines on one database (two nodes) update one record at once, each
//!   from what it read before the other wrote: the second is refused, reads again, and both
//!   updates are kept; the same for a record's first write;
//! - at relay level, real relay processes on one throwaway PostgreSQL: two arbiters approve
//!   tickets through two nodes at the same instant, and both decisions are on every ticket; two
//!   trustees answer one release request through two nodes, and the master collects both shares;
//! - deterministically, with one node's group commit held back (its commit gate closed) while
//!   the other node writes, then let go: a release entry whose notice lost its sequence number
//!   is appended again and answered (and, sent again, answered with the same index, appended
//!   once); a ticket close refused by a decision stored meanwhile is made again and keeps it.
//!
//! Skipped, loudly, only when the machine has no PostgreSQL binaries (CI installs them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sealdesk_protocol::{
    ids::EpochRange,
    release::{ArbiterDecision, DisputeTicket, Verdict},
    wire::{Request, Response, TicketState},
};
use sealdesk_server::store::{Collection, ConversationLog, Store};
use sealdesk_tests::{
    Org, RawClient,
    cluster::{TwoNodes, slow_and_quick, three_nodes, two_stores},
    eventually, now, pg, rng,
};

/// Two nodes add an arbiter's decision to one ticket, each from the record as it read it
/// before the other wrote. A plain put would keep only the later commit's decision.
#[test]
fn a_ticket_two_nodes_decide_at_once_keeps_both_decisions() {
    let Some(url) = pg::fresh_database("ticket") else {
        return;
    };
    let (a, b) = two_stores(&url);
    let k = b"ticket-1";
    a.put(Collection::Tickets, k, b"decisions:").unwrap();
    a.flush().unwrap();
    let read_a = a.get(Collection::Tickets, k).unwrap().unwrap();
    let read_b = b.get(Collection::Tickets, k).unwrap().unwrap();
    assert!(
        a.replace_if(Collection::Tickets, k, &read_a, b"decisions:approve-1")
            .unwrap()
    );
    assert!(
        !b.replace_if(Collection::Tickets, k, &read_b, b"decisions:approve-2")
            .unwrap(),
        "b read the ticket before a's decision: refused, not overwritten"
    );
    let again = b.get(Collection::Tickets, k).unwrap().unwrap();
    assert!(
        b.replace_if(
            Collection::Tickets,
            k,
            &again,
            b"decisions:approve-1,approve-2"
        )
        .unwrap()
    );
    assert_eq!(
        a.get(Collection::Tickets, k).unwrap().as_deref(),
        Some(b"decisions:approve-1,approve-2".as_slice()),
        "both decisions kept"
    );
}

/// A witness's first cosignature, sent through two nodes at once: the first write of a record
/// is conditional too. The node that lost reads the other's and decides from it (the relay
/// keeps the larger head); a plain insert would overwrite, and one checked only when its batch
/// commits would fail every other write of the losing node's batch.
#[test]
fn a_cosignature_first_written_by_two_nodes_at_once_is_written_once() {
    let Some(url) = pg::fresh_database("cosign") else {
        return;
    };
    let (a, b) = two_stores(&url);
    let k = b"cosignature-w";
    // Each node's earlier writes, staged: committed with the conditional insert, not lost.
    a.put(Collection::Meta, b"a-staged", b"1").unwrap();
    b.put(Collection::Meta, b"b-staged", b"1").unwrap();
    assert_eq!(a.get(Collection::Meta, k).unwrap(), None);
    assert_eq!(b.get(Collection::Meta, k).unwrap(), None);
    assert!(
        a.insert_if_absent_now(Collection::Meta, k, b"head-9")
            .unwrap()
    );
    assert!(
        !b.insert_if_absent_now(Collection::Meta, k, b"head-5")
            .unwrap(),
        "b read nothing before a wrote: refused, not overwritten"
    );
    assert_eq!(
        b.get(Collection::Meta, k).unwrap().as_deref(),
        Some(b"head-9".as_slice()),
        "the first write stands"
    );
    // b's staged write went in with its attempt; a's too.
    for (node, key) in [(&a, b"b-staged"), (&b, b"a-staged")] {
        assert_eq!(
            node.get(Collection::Meta, key).unwrap().as_deref(),
            Some(b"1".as_slice())
        );
    }
}

/// Tickets opened at once, each approved by two arbiters at the same instant.
const TICKETS: u64 = 6;

/// Two arbiters approve each of several tickets at the same instant, one through node B and
/// one through node C: every ticket ends with both approvals. Without the conditional write,
/// both nodes read the ticket before either stored its decision, and the later commit drops
/// the earlier decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_arbiters_approving_through_two_nodes_at_once_both_count() {
    let Some([a, b, c]) = three_nodes("arbiters") else {
        return;
    };
    let org = Org::setup(&a.url, 2401, "rmwco", 1, 3).await;
    let mut master = RawClient::login(&a.url, &org.master).await;
    let mut tickets = Vec::new();
    for i in 0..TICKETS {
        // Two conversations per customer: under the relay's open-conversations quota.
        let who = usize::try_from(i / 2).unwrap();
        let mut customer = RawClient::login(&a.url, &org.customers[who]).await;
        let chat = org.start_chat(&mut customer, who, 2410 + i).await;
        let t = DisputeTicket::open(
            &mut rng(2420 + i),
            &org.master.keys,
            &org.policy,
            chat.id,
            EpochRange::single(0),
            "chargeback",
            3600,
            now(),
        )
        .unwrap();
        master.ok(Request::OpenTicket(t.clone())).await;
        tickets.push(t);
    }
    let mut first = RawClient::login(&b.url, &org.arbiters[0]).await;
    let mut second = RawClient::login(&c.url, &org.arbiters[1]).await;
    for t in &tickets {
        let d1 = ArbiterDecision::sign(&org.arbiters[0].keys, t, Verdict::Approve, now()).unwrap();
        let d2 = ArbiterDecision::sign(&org.arbiters[1].keys, t, Verdict::Approve, now()).unwrap();
        tokio::join!(
            first.ok(Request::Decide(d1)),
            second.ok(Request::Decide(d2))
        );
    }
    let listed: Vec<TicketState> = match master.request(Request::ListTickets).await {
        Response::Tickets(all) => all,
        other => panic!("expected tickets, got {other:?}"),
    };
    for t in &tickets {
        let st = listed.iter().find(|s| s.ticket.id == t.id).unwrap();
        let mut arbiters: Vec<_> = st.decisions.iter().map(|d| d.arbiter).collect();
        arbiters.sort_by_key(|k| k.to_bytes());
        let mut want = vec![
            org.arbiters[0].keys.signing_public(),
            org.arbiters[1].keys.signing_public(),
        ];
        want.sort_by_key(|k| k.to_bytes());
        assert_eq!(arbiters, want, "ticket {}: a decision was lost", t.id);
        assert!(st.closed.is_none());
    }
}

/// Two trustees answer one release request at the same time through two different nodes (the
/// customer on A, the master on A, trustee 1 on B, trustee 2 on C; the policy needs 2 of 3):
/// both shares are kept, so the master collects. Had one trustee's share been dropped by the
/// other's write, the master would wait for a second share that never comes; had a release
/// entry whose notice lost the race for its sequence number been refused `conflict` (not
/// appended again), that trustee would have stopped one share short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trustees_answering_through_two_nodes_at_once_the_master_collects() {
    use sealdesk_protocol::{
        card::Role,
        release::{Justification, Scope},
    };
    use sealdesk_tests::world::{MASTER, World, open_chat};

    let Some([a, b, c]) = three_nodes("trustees") else {
        return;
    };
    let mut w = World::new().await;
    w.url = a.url.clone();
    let org = w.org(&["alice"], None).await;
    for agent in org.agents {
        agent.close().await;
    }
    org.master.close().await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "order 1234").await.unwrap();
    let token = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "quality review")
        .await
        .unwrap();
    let mut master = w.reopen(MASTER).await;
    w.url = b.url.clone();
    let t1 = w.reopen("trustee-1").await;
    w.url = c.url.clone();
    let t2 = w.reopen("trustee-2").await;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let unlock = async {
        let out = master
            .unlock(
                &conv,
                Justification::Consent(token),
                None,
                Duration::from_secs(90),
                |_| {},
            )
            .await;
        let _ = stop.send(true);
        out
    };
    let (released, o1, o2) = tokio::join!(unlock, serve(t1, stopped.clone()), serve(t2, stopped));
    let released = released.unwrap_or_else(|e| {
        panic!(
            "the master did not collect: {e}; trustee 1: {o1:?}, trustee 2: {o2:?}\n\
             node A: {}\nnode B: {}\nnode C: {}",
            a.process.log_tail(),
            b.process.log_tail(),
            c.process.log_tail()
        )
    });
    assert_eq!(released.messages.len(), 1);
    for o in [&o1, &o2] {
        assert_eq!(
            o.iter().filter(|x| *x == "released").count(),
            1,
            "each trustee released once: {o1:?} {o2:?}"
        );
    }
}

/// A trustee serving release requests until `stopped`; what it did with each.
async fn serve(
    mut t: sealdesk_client::Client,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Vec<String> {
    let mut outcomes = Vec::new();
    t.trustee_serve(
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
        |o| outcomes.push(o.outcome.clone()),
    )
    .await
    .unwrap();
    t.close().await;
    outcomes
}

/// The size of the audit log as the node `c` is connected to shows it (staged entries too).
async fn tree_size(c: &mut RawClient) -> u64 {
    match c.request(Request::GetTreeHead).await {
        Response::TreeHead(h) => h.size,
        other => panic!("expected a tree head, got {other:?}"),
    }
}

/// A trustee logs a release entry through node A, whose group commit is held (its commit gate
/// closed), while the customer's message through node B takes the sequence number A staged the
/// entry's notice at: the database refuses A's notice, and with it the leaf and marker of its
/// transaction. A appends them again at the next number, and the trustee gets its normal
/// answer: the entry at the index A first gave it, its notice right after the message. The
/// same entry sent again is answered with the same index and appended nothing: one entry, one
/// notice. Without the append made again, the trustee is answered `conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_notice_another_node_took_the_number_of_is_appended_again() {
    use sealdesk_protocol::wire::Item;
    use sealdesk_tests::consent::release_entry;

    let Some((TwoNodes { a, b, .. }, gate)) = slow_and_quick("notice") else {
        return;
    };
    let org = Org::setup(&b.url, 2440, "noticeco", 1, 1).await;
    let mut customer = RawClient::login(&b.url, &org.customers[0]).await;
    let chat = org.start_chat(&mut customer, 0, 2441).await;
    let trustee = &org.trustees[0];
    let entry = release_entry(&org, chat.id, [24; 32], 2442);
    let mut watcher = RawClient::login(&a.url, &org.master).await;
    let before = tree_size(&mut watcher).await;
    let mut t = RawClient::login(&a.url, trustee).await;
    gate.close();
    let (answer, taken) = tokio::join!(t.request(Request::AppendAudit(entry.clone())), async {
        // A shows the entry in its tree head once staged, while its commit is held.
        eventually("node A to stage the entry", async || {
            (tree_size(&mut watcher).await > before).then_some(())
        })
        .await;
        let taken = customer
            .stored(Request::Send(chat.seal(&org.customers[0], 1, "taken")))
            .await;
        gate.open();
        taken
    });
    assert_eq!(
        taken,
        chat.epoch_seq + 1,
        "the message took the number A gave the notice"
    );
    match answer {
        Response::Appended { index, head } => {
            assert_eq!(index, before);
            assert_eq!(head.size, before + 1);
        }
        other => panic!("the trustee was not answered for its entry: {other:?}"),
    }
    // Sent again (an answer lost on the way): the same index, nothing appended.
    let mut again = RawClient::login(&b.url, trustee).await;
    match again.request(Request::AppendAudit(entry.clone())).await {
        Response::Appended { index, head } => {
            assert_eq!(index, before);
            assert_eq!(head.size, before + 1, "the entry is in the log once");
        }
        other => panic!("the same entry sent again: {other:?}"),
    }
    let items = match customer
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 100,
        })
        .await
    {
        Response::Items { items, .. } => items,
        other => panic!("expected items, got {other:?}"),
    };
    let notices: Vec<u64> = items
        .iter()
        .filter(|i| matches!(&i.item, Item::Notice { entry: e, .. } if *e == entry))
        .map(|i| i.seq)
        .collect();
    assert_eq!(
        notices,
        vec![chat.epoch_seq + 2],
        "one notice, after the message that took its first number"
    );
}

/// The master closes a ticket through node A, whose group commit is held (its commit gate
/// closed), while an arbiter's decision on the same ticket is stored through node B between A's read
/// and A's commit: the close is a conditional write of the ticket, so the database refuses it
/// (with the close's audit leaf and notice), and A closes again from a fresh read. The closed
/// ticket holds the decision; with a plain write of the closed ticket, it would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_closed_on_one_node_as_an_arbiter_decides_on_another_keeps_the_decision() {
    use sealdesk_protocol::release::DisputeClose;

    let Some((TwoNodes { a, b, .. }, gate)) = slow_and_quick("close") else {
        return;
    };
    let org = Org::setup(&b.url, 2450, "closeco", 1, 1).await;
    let mut customer = RawClient::login(&b.url, &org.customers[0]).await;
    let chat = org.start_chat(&mut customer, 0, 2451).await;
    let t = DisputeTicket::open(
        &mut rng(2452),
        &org.master.keys,
        &org.policy,
        chat.id,
        EpochRange::single(0),
        "chargeback",
        3600,
        now(),
    )
    .unwrap();
    let mut opener = RawClient::login(&b.url, &org.master).await;
    opener.ok(Request::OpenTicket(t.clone())).await;
    let mut watcher = RawClient::login(&a.url, &org.master).await;
    let before = tree_size(&mut watcher).await;
    let mut master = RawClient::login(&a.url, &org.master).await;
    let mut arbiter = RawClient::login(&b.url, &org.arbiters[0]).await;
    let close = DisputeClose::sign(&org.master.keys, &t, "settled", now());
    let decision =
        ArbiterDecision::sign(&org.arbiters[0].keys, &t, Verdict::Approve, now()).unwrap();
    gate.close();
    let (closed, ()) = tokio::join!(master.request(Request::CloseTicket(close)), async {
        // A shows the close's entry in its tree head once staged, while its commit is held.
        eventually("node A to stage the close", async || {
            (tree_size(&mut watcher).await > before).then_some(())
        })
        .await;
        arbiter.ok(Request::Decide(decision)).await;
        gate.open();
    });
    assert!(
        matches!(closed, Response::Ok),
        "the master's close: {closed:?}"
    );
    let listed: Vec<TicketState> = match opener.request(Request::ListTickets).await {
        Response::Tickets(all) => all,
        other => panic!("expected tickets, got {other:?}"),
    };
    let st = listed.iter().find(|s| s.ticket.id == t.id).unwrap();
    assert!(st.closed.is_some(), "the ticket is closed");
    assert_eq!(
        st.decisions.iter().map(|d| d.arbiter).collect::<Vec<_>>(),
        vec![org.arbiters[0].keys.signing_public()],
        "the decision stored while the close waited for its commit is in the closed ticket"
    );
}
