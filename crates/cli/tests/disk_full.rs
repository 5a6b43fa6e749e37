//! A full disk under the durable store (a small tmpfs): a join never waits in silence for a sync
//! that cannot come, and `/healthz` says the store cannot take writes from the first moment.
//!
//! Mounting needs root; without it each test says so and passes without running.

use iii_stream_client::{ServerProcess, WAIT, poll_until};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs of `size`, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("SKIPPED: mounting a tmpfs needs root; the disk-full cases did not run");
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().to_owned();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: cannot mount a tmpfs here; the disk-full cases did not run");
            return None;
        }
        Some(Self { path, _dir: dir })
    }

    /// Fills the file system: a file of zeros written until the disk says no.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 << 10];
        while file.write_all(&block).is_ok() {}
        // Whatever fit in smaller pieces too.
        while file.write_all(&[0u8; 512]).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn durable_server(store: &Path) -> ServerProcess {
    let config = format!(
        "      adapter: {{ name: kv, config: {{ store_method: file_based, file_path: {:?} }} }}\n      shutdown_timeout_ms: 3000",
        store.display().to_string()
    );
    ServerProcess::start(env!("CARGO_BIN_EXE_iii-stream"), &config).expect("the server starts")
}

#[tokio::test]
async fn a_join_on_a_change_that_cannot_become_durable_is_refused_with_a_reason() {
    let Some(disk) = Tmpfs::mount("8m") else {
        return;
    };
    let server = durable_server(&disk.path.join("store"));
    let engine = server.engine().await;
    engine.set("s", "g", "a", json!({"v": 1})).await.unwrap();
    engine
        .set("s", "other", "a", json!({"v": 1}))
        .await
        .unwrap();
    disk.fill();
    // Too large to fit in pages the database already has: its commit must fail.
    let big = json!({"blob": "x".repeat(1 << 20)});
    let failed = engine.set("s", "g", "b", big).await;
    assert!(failed.is_err(), "a write on a full disk was acknowledged");

    let mut subscriber = server.subscriber().await;
    subscriber.join("sub-g", "s", "g", None);
    let Some(frame) = subscriber.next_frame(WAIT).await else {
        panic!("no answer to the join:\n{}", server.log_text());
    };
    assert_eq!(frame["event"]["type"], "unauthorized", "{frame}");
    assert_eq!(frame["reason"], "store_unavailable", "{frame}");
    assert_eq!(frame["subscriptionId"], "sub-g");
    // A group whose data is all durable still syncs.
    subscriber.join("sub-other", "s", "other", None);
    let frame = subscriber.frame(WAIT).await;
    assert_eq!(frame["event"]["type"], "sync", "{frame}");
    assert_eq!(frame["event"]["data"], json!([{"v": 1}]));
    assert_eq!(server.healthz(), Some(503));
}

#[tokio::test]
async fn a_restart_on_a_full_disk_reports_unhealthy_at_once_and_recovers() {
    let Some(disk) = Tmpfs::mount("8m") else {
        return;
    };
    let mut server = durable_server(&disk.path.join("store"));
    let engine = server.engine().await;
    engine.set("s", "g", "a", json!({"v": 1})).await.unwrap();
    drop(engine);
    server.signal("TERM").unwrap();
    assert!(server.wait(WAIT).is_some_and(|s| s.success()));
    let filler = disk.fill();

    server.start_again(503).unwrap();
    let (_, body) = iii_stream_client::http_get(server.stream_port, "/healthz").unwrap();
    assert!(body.contains("cannot take a write"), "{body}");
    let engine = server.engine().await;
    let refused = engine
        .set("s", "g", "b", json!({"v": 2}))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("cannot take a write"),
        "{refused}"
    );
    // What is stored is still served.
    assert_eq!(
        engine.get("s", "g", "a").await.unwrap(),
        Some(json!({"v": 1}))
    );

    std::fs::remove_file(filler).unwrap();
    let healthy = poll_until(WAIT, || async {
        (server.healthz() == Some(200)).then_some(())
    })
    .await;
    assert!(healthy.is_some(), "healthy again once the disk has room");
    engine.set("s", "g", "b", json!({"v": 2})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(engine.list("s", "g").await.unwrap().len(), 2);
}
