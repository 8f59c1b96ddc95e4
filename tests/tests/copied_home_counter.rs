//! A copied home never seals under a counter its twin used (SECURITY.md, "Two devices of one
//! agent"). Two devices of one account — here a copy of the customer's home taken after her
//! first line — share the epoch's key; a message counter is the AES-GCM nonce's input, so one
//! sealed twice would put two ciphertexts under one key and nonce. When a device reads a message
//! its own key signed elsewhere, it moves its next counter in that epoch past it: its next seal
//! comes after its twin's, and the relay never sees an (epoch, counter) twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_tests::world::{TwoDevices, World, carol_on_two_devices, texts};

#[tokio::test]
async fn a_copied_home_seals_after_its_twins_counter_never_under_it() {
    let w = World::with_proxy().await;
    let TwoDevices {
        mut laptop,
        mut phone,
        conv,
    } = carol_on_two_devices(&w, None).await;

    // The laptop seals its next line; the phone, a copy from before it, reads it.
    laptop.send_text(&conv, "from the laptop").await.unwrap();
    phone.sync_all().await.unwrap();
    // The phone's copied vault made epoch 0 too: it seals there, after the laptop's counter.
    phone.send_text(&conv, "from the phone").await.unwrap();
    laptop.sync_all().await.unwrap();

    let want = [
        "carol: first",
        "carol: from the laptop",
        "carol: from the phone",
    ];
    assert_eq!(texts(&phone, &conv), want, "each line once, in order");
    assert_eq!(texts(&laptop, &conv), want, "each line once, in order");

    // No (epoch, counter) of the account was ever sealed twice, refused or not.
    let sealed = w.assert_no_counter_sealed_twice("carol");
    assert_eq!(sealed.len(), 3, "three lines sealed");
}
