//! Watches the HTTP calls of Go processes with the Go uprobes (`adi_probes::go::uprobes`): the
//! library API end to end, and the watcher of `benches/go_uprobes/run.sh`.
//!
//! ```text
//! sudo cargo run --release -p adi-probes --example go_http_watch -- [--print] PID...
//! ```
//!
//! Attaches to every PID, says `attached` on stderr, then counts (with `--print`, prints) one
//! event per call until its stdin closes; then prints `events N` and the kernel's counters.

use std::io::Read;

use adi_probes::go::uprobes::GoHttpProbes;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut print = false;
    let mut pids = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "--print" {
            print = true;
        } else {
            pids.push(arg.parse::<u32>()?);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (mut probes, mut events) = GoHttpProbes::new()?;
        for &pid in &pids {
            let target = probes.attach(pid)?;
            eprintln!(
                "pid {pid}: {} ({:?} offsets), client {}, server {}",
                target.go_version,
                target.offsets_source,
                target.client.is_some(),
                target.server.is_some()
            );
        }
        eprintln!("attached ({} uprobes)", probes.uprobe_count());
        // Stop when stdin closes.
        let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = stop_tx.send(());
        });
        let mut n = 0u64;
        loop {
            tokio::select! {
                e = events.next() => {
                    let e = e?;
                    n += 1;
                    if print {
                        println!("{e:?}");
                    }
                }
                _ = &mut stop => break,
            }
        }
        while let Some(e) = events.try_next() {
            n += 1;
            if print {
                println!("{e:?}");
            }
        }
        let unfinished = events.take_unfinished().len();
        eprintln!(
            "events {n} unfinished {unfinished} decode_errors {} {:?}",
            events.decode_errors,
            probes.stats()
        );
        probes.close();
        Ok(())
    })
}
