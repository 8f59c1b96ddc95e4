//! `sealdesk transcript verify` as a process: exit statuses 0 (verified), 1 (refused, or only
//! unanchored without `--no-anchor`) and 2 (could not check), the anchors from flags or from the
//! pins of `--home`, and `--json`'s `ok` agreeing with the exit status. The export is the genuine
//! one of a real end-to-end release (real relay, real trustees).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::transcript::{FORMAT_V1, sign_export};
use sealdesk_protocol::release::Scope;
use sealdesk_tests::transcript::{Genuine, genuine};

/// Runs `sealdesk` with `args` (no relay is contacted by `transcript verify`).
async fn sealdesk(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .args(args)
        .env_remove("SEALDESK_HOME")
        .env("SEALDESK_PASSPHRASE", sealdesk_tests::world::PASS)
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cli_verify_exit_codes_follow_the_verdict_and_the_anchors() {
    let Genuine {
        w,
        master,
        carol,
        anchors,
        full,
        ..
    } = genuine(Scope::Full).await;
    carol.close().await;
    let dir = w.dir.path();
    let good = dir.join("good.json");
    std::fs::write(&good, serde_json::to_string(&full).unwrap()).unwrap();
    let mut forged = full.clone();
    forged.messages[1].text = "my card is safe".into();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, serde_json::to_string(&forged).unwrap()).unwrap();
    // A version-1 file has no end marker, omitted items, certificates or last seq.
    let mut v1 = serde_json::to_value(&full).unwrap();
    v1["format"] = FORMAT_V1.into();
    for k in ["end", "omitted", "certificates", "last_seq"] {
        v1.as_object_mut().unwrap().remove(k);
    }
    let old = dir.join("v1.json");
    std::fs::write(&old, v1.to_string()).unwrap();
    let fp = anchors.org_fingerprint.clone().unwrap();
    let log = hex::encode(master.session().welcome().log_key.as_bytes());
    let good_s = good.to_str().unwrap();

    // Anchored and genuine: exit 0.
    let (code, out, err) = sealdesk(&[
        "transcript",
        "verify",
        good_s,
        "--org-fingerprint",
        &fp,
        "--log-key",
        &log,
    ])
    .await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("VERDICT: the transcript verifies"), "{out}");

    // The pins of carol's home are anchors too.
    let carol_home = w.home("carol");
    let (code, out, err) = sealdesk(&[
        "--home",
        carol_home.to_str().unwrap(),
        "transcript",
        "verify",
        good_s,
    ])
    .await;
    assert_eq!(code, Some(0), "{out}\n{err}");

    // A wrong fingerprint: exit 1, the named reason in --json.
    let (code, out, _) = sealdesk(&[
        "transcript",
        "verify",
        good_s,
        "--org-fingerprint",
        "11111 22222 33333 44444 55555 66666",
        "--log-key",
        &log,
        "--json",
    ])
    .await;
    assert_eq!(code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["ok"], false);
    assert!(
        json["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["reason"] == "wrong_master"),
        "{json}"
    );

    // A forged text: exit 1 with its reason.
    let (code, out, _) = sealdesk(&[
        "transcript",
        "verify",
        bad.to_str().unwrap(),
        "--org-fingerprint",
        &fp,
        "--log-key",
        &log,
    ])
    .await;
    assert_eq!(code, Some(1));
    assert!(
        out.contains("[text_mismatch]") && out.contains("does NOT verify"),
        "{out}"
    );

    // No anchor: the verdict says so and the exit status is 1, unless --no-anchor.
    let (code, out, _) = sealdesk(&["transcript", "verify", good_s]).await;
    assert_eq!(code, Some(1));
    assert!(
        out.contains("NOTHING WAS VERIFIED AGAINST A TRUSTED KEY"),
        "{out}"
    );
    let (code, out, _) = sealdesk(&["transcript", "verify", good_s, "--no-anchor"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("NOTHING WAS VERIFIED AGAINST A TRUSTED KEY"),
        "{out}"
    );
    // --no-anchor does not excuse a forgery.
    let (code, _, _) =
        sealdesk(&["transcript", "verify", bad.to_str().unwrap(), "--no-anchor"]).await;
    assert_eq!(code, Some(1));

    // A version-1 export: refused, asking for a new export.
    let (code, out, err) =
        sealdesk(&["transcript", "verify", old.to_str().unwrap(), "--no-anchor"]).await;
    assert_eq!(code, Some(1));
    assert!(
        format!("{out}{err}").contains("export it again"),
        "{out}\n{err}"
    );
    // ... and its --json verdict names the reason; `ok` agrees with the exit status.
    let (code, out, _) = sealdesk(&[
        "transcript",
        "verify",
        old.to_str().unwrap(),
        "--no-anchor",
        "--json",
    ])
    .await;
    assert_eq!(code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(
        json["failures"][0]["reason"], "unsupported_format",
        "{json}"
    );
    // A v2 file missing a field: undecodable, exit 1.
    let mut cut = serde_json::to_value(&full).unwrap();
    cut.as_object_mut().unwrap().remove("releases");
    let cut_path = dir.join("cut.json");
    std::fs::write(&cut_path, cut.to_string()).unwrap();
    let (code, out, _) = sealdesk(&[
        "transcript",
        "verify",
        cut_path.to_str().unwrap(),
        "--no-anchor",
        "--json",
    ])
    .await;
    assert_eq!(code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["failures"][0]["reason"], "undecodable", "{json}");
    // A file that cannot be read: nothing could be checked, exit 2 (not a refusal's 1).
    let (code, _, err) = sealdesk(&[
        "transcript",
        "verify",
        dir.join("absent.json").to_str().unwrap(),
        "--no-anchor",
    ])
    .await;
    assert_eq!(code, Some(2), "{err}");
    // A v2 file with no policy: nothing was checked, so --no-anchor does not make it pass.
    let mut bare = full.clone();
    bare.policies.clear();
    sign_export(&mut bare, master.account().keys()).unwrap();
    let bare_path = dir.join("bare.json");
    std::fs::write(&bare_path, serde_json::to_string(&bare).unwrap()).unwrap();
    let (code, out, _) = sealdesk(&[
        "transcript",
        "verify",
        bare_path.to_str().unwrap(),
        "--no-anchor",
    ])
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("[no_policy]") && out.contains("does NOT verify"),
        "{out}"
    );
    // --no-anchor with the org anchored (no log key): not "nothing was verified", and the JSON
    // `ok` is the exit status.
    let (code, out, _) = sealdesk(&[
        "transcript",
        "verify",
        good_s,
        "--org-fingerprint",
        &fp,
        "--no-anchor",
    ])
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("NOTHING WAS VERIFIED"), "{out}");
    assert!(
        out.contains("NOT checked against a trusted audit log"),
        "{out}"
    );
    let (code, out, _) = sealdesk(&["transcript", "verify", good_s, "--no-anchor", "--json"]).await;
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["verified"], false, "{json}");
    master.close().await;
}
