//! The human-readable table of a [`Report`]: absolute figures of both systems side by side,
//! their ratios, and the goals.

use std::fmt::Write as _;

use super::{AbuseFigures, GroupCommitFigures, Percentiles, Report, RunFigures};

/// `v` for the table: thousands separated, fewer decimals the larger it is, `-` if not finite.
pub(super) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v.abs() >= 100.0 {
        let int = v.round() as i64;
        let digits = int.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        if int < 0 {
            out.insert(0, '-');
        }
        out
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1e3)
}

fn row(out: &mut String, name: &str, a: String, b: String, ratio: String) {
    let _ = writeln!(out, "  {name:<38} {a:>14} {b:>14} {ratio:>9}");
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

/// The human-readable table.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let m = &r.machine;
    let load = |l: Option<[f64; 3]>| {
        l.map(|l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]))
            .unwrap_or_else(|| "?".into())
    };
    let _ = writeln!(
        out,
        "Sealdesk load generator — {} run, {} CPUs, kernel {}, load average {} → {}",
        r.mode,
        m.cpus,
        m.kernel.as_deref().unwrap_or("?"),
        load(m.loadavg_start),
        load(m.loadavg_end)
    );
    let _ = writeln!(
        out,
        "Servers run in child processes; CPU and RSS are theirs alone (/proc/<pid>). \
         Runs are interleaved ABBA.\n"
    );
    let header = |out: &mut String, title: String| {
        let _ = writeln!(out, "{title}");
        row(
            out,
            "",
            "sealdesk".into(),
            "baseline".into(),
            "ratio".into(),
        );
    };
    if let Some(f) = &r.fanout {
        header(
            &mut out,
            format!(
                "fan-out — {} conversations of 2 ({} agents), {} B bodies, closed loop, window {}",
                f.conversations, f.agents, f.message_bytes, f.window
            ),
        );
        let (a, b) = (&f.sealdesk, &f.baseline);
        row(
            &mut out,
            "deliveries/s",
            num(a.deliveries_per_s),
            num(b.deliveries_per_s),
            ratio(a.deliveries_per_s, b.deliveries_per_s),
        );
        row(
            &mut out,
            "durable acks/s",
            num(a.acks_per_s),
            "-".into(),
            "".into(),
        );
        row(
            &mut out,
            "server CPU µs/delivery",
            num(a.server_cpu_us_per_delivery),
            num(b.server_cpu_us_per_delivery),
            ratio(a.server_cpu_us_per_delivery, b.server_cpu_us_per_delivery),
        );
        row(
            &mut out,
            "client CPU µs/delivery (crypto, both)",
            num(a.client_cpu_us_per_delivery),
            num(b.client_cpu_us_per_delivery),
            ratio(a.client_cpu_us_per_delivery, b.client_cpu_us_per_delivery),
        );
        row(
            &mut out,
            "server cores busy",
            num(a.server_cores),
            num(b.server_cores),
            "".into(),
        );
        row(
            &mut out,
            "client cores busy",
            num(a.client_cores),
            num(b.client_cores),
            "".into(),
        );
        row(
            &mut out,
            "delivery latency p50 ms",
            ms(a.latency.p50_us),
            ms(b.latency.p50_us),
            ratio(a.latency.p50_us, b.latency.p50_us),
        );
        row(
            &mut out,
            "delivery latency p99 ms",
            ms(a.latency.p99_us),
            ms(b.latency.p99_us),
            ratio(a.latency.p99_us, b.latency.p99_us),
        );
        let per_run: Vec<String> = f
            .runs
            .iter()
            .map(|r| format!("{} {}", r.system.name(), num(r.deliveries_per_s)))
            .collect();
        let _ = writeln!(out, "  runs (deliveries/s): {}", per_run.join(", "));
        group_commit_line(&mut out, &f.runs);
        let errors: u64 = f.runs.iter().map(|r| r.errors).sum();
        if errors > 0 {
            let first = f.runs.iter().find_map(|r| r.first_error.clone());
            let _ = writeln!(
                out,
                "  errors: {errors} (first: {})",
                first.unwrap_or_default()
            );
        }
        out.push('\n');
    }
    if let Some(d) = &r.durable {
        let _ = writeln!(
            out,
            "durable ack — group commit (max delay {} µs) vs one fsync per message, same disk",
            d.commit_max_delay_us
        );
        let p = |p: &Percentiles| {
            format!(
                "p50 {} / p99 {} / p99.9 {} / max {} ms",
                ms(p.p50_us),
                ms(p.p99_us),
                ms(p.p999_us),
                ms(p.max_us)
            )
        };
        let _ = writeln!(
            out,
            "  ack latency, max load:   {}",
            p(&d.ack_latency_closed_loop)
        );
        if let Some(h) = &d.ack_latency_half_load {
            let load = match &r.latency {
                Some(l) if !l.half_load => "latency rate",
                _ => "half load",
            };
            let _ = writeln!(out, "  ack latency, {load}:  {}", p(h));
        }
        let _ = writeln!(
            out,
            "  durable acks/s {}  vs  file write+fdatasync {}/s ({:.1}x)  vs  sled insert+flush {}/s ({:.1}x)",
            num(d.durable_acks_per_s),
            num(d.file_fsync_per_s),
            d.ratio_vs_file,
            num(d.sled_flush_per_s),
            d.ratio_vs_sled
        );
        if let Some(a) = &d.relay_alone {
            let bound = if a.ran_out {
                " (presealed messages ran out: a lower bound)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  relay alone (messages sealed ahead, counted unopened): durable acks/s {}{bound} \
                 ({:.1}x file, {:.1}x sled), relay CPU {:.1} µs/message, {:.2} cores busy",
                num(a.acks_per_s),
                a.ratio_vs_file,
                a.ratio_vs_sled,
                a.server_cpu_us_per_message,
                a.server_cores
            );
            if let Some(g) = &a.group_commit {
                let _ = writeln!(out, "    relay group commit: {}", group_commit_text(g));
            }
        }
        out.push('\n');
    }
    if let Some(l) = &r.latency {
        header(
            &mut out,
            format!(
                "latency — open loop at {} messages/s ({}), from the intended send time to verified+decrypted",
                num(l.rate_per_s),
                if l.half_load {
                    "half of Sealdesk's maximum"
                } else {
                    "set by --latency-rate"
                }
            ),
        );
        let (a, b) = (&l.sealdesk, &l.baseline);
        for (name, x, y) in [
            ("p50 ms", a.p50_us, b.p50_us),
            ("p99 ms", a.p99_us, b.p99_us),
            ("p99.9 ms", a.p999_us, b.p999_us),
            ("max ms", a.max_us, b.max_us),
        ] {
            row(&mut out, name, ms(x), ms(y), ratio(x, y));
        }
        let _ = writeln!(out, "  samples: {} / {}", a.count, b.count);
        let _ = writeln!(
            out,
            "  stages, p99 / max ms: sender late · sealing to frame read (wire and server) · open"
        );
        for f in &l.runs {
            let st = &f.stages;
            let _ = writeln!(
                out,
                "    {:<8} {} / {} · {} / {} · {} / {}",
                f.system.name(),
                ms(st.late.p99_us),
                ms(st.late.max_us),
                ms(st.transit.p99_us),
                ms(st.transit.max_us),
                ms(st.open.p99_us),
                ms(st.open.max_us),
            );
        }
        group_commit_line(&mut out, &l.runs);
        out.push('\n');
    }
    if let Some(i) = &r.idle {
        header(
            &mut out,
            format!(
                "idle memory and connect storm — {} connections, {} handshakes in flight, fresh server each",
                i.connections, i.concurrency
            ),
        );
        row(
            &mut out,
            "RSS per idle connection KiB",
            format!("{:.1}", i.sealdesk_rss_per_connection / 1024.0),
            format!("{:.1}", i.baseline_rss_per_connection / 1024.0),
            ratio(i.sealdesk_rss_per_connection, i.baseline_rss_per_connection),
        );
        row(
            &mut out,
            "storm seconds (Sealdesk: + auth)",
            format!("{:.2}", i.sealdesk_seconds),
            format!("{:.2}", i.baseline_seconds),
            ratio(i.sealdesk_seconds, i.baseline_seconds),
        );
        for s in &i.runs {
            let _ = writeln!(
                out,
                "  {:<8} {} ok, {} failed, {:.2} s, {} handshakes/s, {} µs server CPU each, RSS {} → {} MiB{}",
                s.system.name(),
                s.connections,
                s.failed,
                s.seconds,
                num(s.handshakes_per_s),
                num(s.server_cpu_us_per_handshake),
                num(s.rss_before as f64 / 1048576.0),
                num(s.rss_after as f64 / 1048576.0),
                s.first_error
                    .as_ref()
                    .map(|e| format!(" (first failure: {e})"))
                    .unwrap_or_default()
            );
        }
        out.push('\n');
    }
    if let Some(c) = &r.crypto {
        let _ = writeln!(
            out,
            "client crypto, one thread — epoch creation with 2-of-3 escrow {:.3} ms; 10,000 messages ({} B) verified+decrypted in {:.3} s\n",
            c.epoch_create_ms, c.transcript_body_bytes, c.transcript_10k_s
        );
    }
    if let Some(a) = &r.abuse {
        abuse(&mut out, a);
    }
    if let Some(c) = &r.cluster {
        super::cluster::cluster_table(&mut out, c);
    }
    if let Some(p) = &r.pgbench {
        super::cluster::pgbench_table(&mut out, p);
    }
    let _ = writeln!(out, "goals");
    for g in &r.goals {
        let verdict = match g.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        };
        let _ = writeln!(
            out,
            "  {:<6} {:<52} {:<18} {}",
            verdict, g.goal, g.target, g.measured
        );
    }
    out
}

/// The relay's group commit during each Sealdesk run, from its `/metrics`: the flush rate, the
/// writers each flush served, the mean flush time and the flushes over 25 ms (the disk's tail,
/// which every acknowledgement and push of their batch waited for).
fn group_commit_line(out: &mut String, runs: &[RunFigures]) {
    let commits: Vec<String> = runs
        .iter()
        .filter_map(|r| r.group_commit.as_ref())
        .map(group_commit_text)
        .collect();
    if !commits.is_empty() {
        let _ = writeln!(out, "  relay group commit: {}", commits.join("; "));
    }
}

/// One run's group commit, in words.
fn group_commit_text(g: &GroupCommitFigures) -> String {
    let bound = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v}"));
    format!(
        "{} flushes/s, {:.1} writers/flush, {:.2} ms/flush (p99 ≤ {} ms), {} over 25 ms, {} store ops over 5 ms, relay's own ack p50 ≤ {} / p99 ≤ {} ms, of which commit wait p99 ≤ {} ms",
        num(g.flushes_per_s),
        g.mean_batch,
        g.mean_flush_ms,
        bound(g.flush_p99_ms),
        g.slow_flushes,
        g.slow_store_ops,
        bound(g.ack_p50_ms),
        bound(g.ack_p99_ms),
        bound(g.commit_wait_p99_ms),
    )
}

/// The abuse scenario's section.
fn abuse(out: &mut String, a: &AbuseFigures) {
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let _ = writeln!(
        out,
        "abuse — {} conversations chatting at {} messages/s (open loop), one source flooding \
         connections, registrations and opens",
        a.conversations,
        num(a.rate_per_s)
    );
    let _ = writeln!(
        out,
        "  chat delivery p99: {} ms without the flood, {} ms during it ({:.2}x); p50 {} / {} ms",
        ms(a.quiet.p99_us),
        ms(a.flood.p99_us),
        a.p99_ratio,
        ms(a.quiet.p50_us),
        ms(a.flood.p50_us)
    );
    let runs: Vec<String> = a
        .runs
        .iter()
        .map(|r| format!("{} deliveries/s", num(r.deliveries_per_s)))
        .collect();
    let _ = writeln!(out, "  runs (quiet, flood, quiet): {}", runs.join(", "));
    let t = &a.tally;
    let _ = writeln!(
        out,
        "  flood: {} connections tried, {} refused with 429, {} failed; {} registered, {} \
         registrations refused; {} opened, {} opens refused; {} other; {} refused in all",
        t.attempts,
        t.refused_connections,
        t.failed_connections,
        t.registered,
        t.refused_registrations,
        t.opened,
        t.refused_opens,
        t.other,
        t.refused()
    );
    let limited: Vec<String> = a
        .relay_limited
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "  relay's sealdesk_limited_total over the scenario: {}",
        if limited.is_empty() {
            "none".to_owned()
        } else {
            limited.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  relay RSS: {:.1} MiB before the flood, {:.1} at its end, {:.1} after\n",
        mib(a.rss_before),
        mib(a.rss_flood_end),
        mib(a.rss_after)
    );
}
