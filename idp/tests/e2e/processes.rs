//! The harness's guards: a test that fails after starting processes leaves none behind, and the
//! servers it starts listen where the harness says.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Whether a process still runs (a zombie has ended: only its exit status is left to collect).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until the process has ended; false if it still runs after a minute (SIGKILL takes
/// effect at once, so only a process nobody killed gets anywhere near that).
fn ends(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while running(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn a_test_that_panics_after_starting_a_process_tree_leaves_no_process_behind() {
    // A shell that starts a grandchild (as chromedriver starts Chromium and nginx its workers),
    // says both pids, and waits.
    let (tx, rx) = std::sync::mpsc::channel();
    let failed = std::thread::spawn(move || {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 600 & echo \"pids $$ $!\"; wait"]);
        let (_guard, pids) = Proc::spawn_announcing("sh", &mut cmd, |line| {
            let mut it = line.strip_prefix("pids ")?.split(' ').map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        });
        tx.send(pids).unwrap();
        assert!(running(pids.0) && running(pids.1));
        panic!("an assertion fails while the processes run");
    })
    .join();
    assert!(failed.is_err(), "the test body panicked");
    let (shell, grandchild) = rx.recv().unwrap();
    assert!(ends(shell), "the child (pid {shell}) outlived the failed test");
    assert!(ends(grandchild), "the grandchild (pid {grandchild}) outlived the failed test");
}

#[test]
fn a_test_that_panics_after_starting_the_idp_and_a_simulator_leaves_neither_running() {
    let (tx, rx) = std::sync::mpsc::channel();
    let failed = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut idp = Idp::new();
            idp.start().await;
            let mut cmd = Command::new(workspace_binary("health-simulator"));
            cmd.args(["--bind", "127.0.0.1:0", "--national-id", MING]).stderr(std::process::Stdio::null());
            let (sim, _) = Proc::spawn_listening("health-simulator", &mut cmd);
            tx.send((idp.pid().unwrap(), sim.id())).unwrap();
            panic!("an assertion fails while both run");
        })
    })
    .join();
    assert!(failed.is_err(), "the test body panicked");
    let (idp, sim) = rx.recv().unwrap();
    assert!(ends(idp), "idp serve (pid {idp}) outlived the failed test");
    assert!(ends(sim), "the simulator (pid {sim}) outlived the failed test");
}

#[tokio::test]
async fn the_idp_serves_the_socket_the_harness_handed_it_across_restarts() {
    let mut idp = Idp::new();
    idp.start().await;
    let log = std::fs::read_to_string(idp.log_path()).unwrap();
    // The text log colours field names; the words are what matters.
    let mut parts = log.split('\x1b');
    let mut plain = parts.next().unwrap_or_default().to_string();
    for part in parts {
        plain.push_str(part.split_once('m').map_or(part, |(_, rest)| rest));
    }
    assert!(plain.contains("socket_activation=true"), "the server took the passed socket: {plain}");
    idp.stop();
    // Between a stop and a start the port stays the instance's: a connection waits (it is not
    // refused), and nothing else can bind the address.
    let addr = format!("127.0.0.1:{}", idp.port());
    assert!(std::net::TcpListener::bind(&addr).is_err(), "{addr} stays taken while the server is down");
    idp.start().await;
    let r = reqwest::get(format!("{}/healthz", idp.base)).await.unwrap();
    assert!(r.status().is_success());
}
