//! The relay's test hooks exist only in a build with `sealdesk-server`'s `test-hooks` feature.
//! The tests crate's dev-dependency turns it on, so the relay library these tests run in
//! process and the relay binary `cargo test` builds for them both have it: the gates and
//! switches the end-to-end tests set (`sealdesk_server::test_hooks::VARIABLES`) work. Had the
//! feature been lost, those tests would wait on a gate that holds nothing; these say so first.
//! That a normal build ignores every variable is `.ci/run`'s "a normal build has none" step
//! (and the unit tests of `server/src/test_hooks.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::wire::{Request, Response};
use sealdesk_server::relay::EXTENSION_ENTRY_ENV;
use sealdesk_tests::{
    Org, RawClient, STEP,
    child::{RelayProcess, relay_binary},
};

/// The library: checked when this file compiles (a tests crate built without the feature
/// does not compile it).
#[test]
fn the_relay_library_the_tests_run_has_the_test_hooks() {
    const {
        assert!(
            sealdesk_server::test_hooks::ENABLED,
            "sealdesk-server was built without `test-hooks`: see the tests crate's dev-dependencies"
        );
    }
}

/// The binary: with `SEALDESK_TEST_EXTENSION_ENTRY=9@0` it appends an audit entry of a kind
/// this version cannot read at start (index 0), and it does not say it ignored the variable.
#[test]
fn the_relay_binary_the_tests_start_has_the_test_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    std::fs::create_dir_all(&data).unwrap();
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
    let log = relay.log_tail();
    assert!(
        size == 1,
        "the relay did not append the test entry: {} was built without test hooks \
         (see the tests crate's dev-dependencies and SEALDESK_RELAY_BIN):\n{log}",
        relay_binary().display()
    );
    assert!(
        !log.contains("this build has no test hooks"),
        "the relay said it ignored its test variables:\n{log}"
    );
    relay.kill().unwrap();
}
