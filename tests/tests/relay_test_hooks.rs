//! The relay's test hooks exist only in a build with `sealdesk-server`'s `test-hooks` feature
//! (the binaries the web suites drive). The relay these tests build has no such feature (no
//! crate of the workspace turns it on), so `SEALDESK_TEST_EXTENSION_ENTRY`, which makes a
//! test-hooks relay append an audit entry of a kind this version cannot read at start, is
//! ignored: the log stays empty, and the relay's log says the variable was ignored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::wire::{Request, Response};
use sealdesk_tests::{
    Org, RawClient, STEP,
    child::{RelayProcess, relay_binary},
};

/// The hook's variable (`server/src/relay/service/extension_hook.rs`).
const EXTENSION_ENTRY_ENV: &str = "SEALDESK_TEST_EXTENSION_ENTRY";

#[test]
fn a_relay_built_without_test_hooks_ignores_the_extension_entry_variable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    std::fs::create_dir_all(&data).unwrap();
    // Index 0: a test-hooks relay would append the entry at start, before anything else.
    let mut relay =
        RelayProcess::spawn_with_env(relay_binary(), &data, &[], &[(EXTENSION_ENTRY_ENV, "9@0")])
            .unwrap();
    relay.wait_ready(STEP).unwrap();
    let url = relay.ws_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let size = rt.block_on(async {
        let org = Org::setup(&url, 91, "hookcorp", 1, 1).await;
        let mut c = RawClient::login(&url, &org.customers[0]).await;
        let head = match c.request(Request::GetTreeHead).await {
            Response::TreeHead(h) => h,
            other => panic!("expected a tree head, got {other:?}"),
        };
        c.close().await;
        head.size
    });
    assert_eq!(
        size, 0,
        "the relay appended the test entry without test hooks"
    );
    let log = relay.log_tail();
    assert!(
        log.contains(EXTENSION_ENTRY_ENV) && log.contains("ignored"),
        "the relay did not say it ignored the variable:\n{log}"
    );
    relay.kill().unwrap();
}
