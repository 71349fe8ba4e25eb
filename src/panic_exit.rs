//! A panic in any thread ends the whole process with a failure code.
//!
//! With `panic = unwind` (the OpenWrt feed's profile, debug builds) a panicking queue thread
//! would just end, and the process would keep running with nothing reading that queue: the
//! service manager sees a healthy daemon while detection has stopped. Exiting instead lets
//! procd or systemd restart scanban, which finds its table and bans in the kernel as it left
//! them. With `panic = abort` (this repository's release profile) the process ends anyway; the
//! hook then only adds the exit code and the line that says why.

/// The exit code after a panic (EX_SOFTWARE: an internal error).
pub const EXIT_PANIC: i32 = 70;

/// Installs the hook; must run before any thread is spawned, so no panic can miss it.
pub fn install() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The default report first: thread name, message, location (and backtrace if asked).
        report(info);
        eprintln!(
            "scanban: a thread panicked; exiting with code {EXIT_PANIC} so that the service \
             manager restarts scanban"
        );
        std::process::exit(EXIT_PANIC);
    }));
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    /// Set in the child process this test starts: it runs the same test, which then panics.
    const CHILD: &str = "SCANBAN_PANIC_EXIT_CHILD";

    /// Runs in a child process (a re-execution of this test binary, test profile: panics
    /// unwind), so that the forced panic needs no switch in the product: the hook, then a worker
    /// thread that panics while the main thread waits as the daemon's loop does, never joining
    /// it. Without the hook the child would wait out its bound and exit 0.
    #[test]
    fn a_panic_in_a_worker_thread_ends_the_process_with_a_failure() {
        if std::env::var_os(CHILD).is_some() {
            super::install();
            let _worker = std::thread::Builder::new()
                .name("queue-0".into())
                .spawn(|| panic!("forced panic in a queue thread"))
                .expect("spawning a thread");
            // The bound on how long the child lives if the hook does not end it.
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        let out = Command::new(exe)
            .args([
                "--exact",
                "panic_exit::tests::a_panic_in_a_worker_thread_ends_the_process_with_a_failure",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .expect("running the child");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(super::EXIT_PANIC), "{stderr}");
        assert!(
            stderr.contains("forced panic in a queue thread"),
            "the panic itself is reported: {stderr}"
        );
        assert!(
            stderr.contains("so that the service manager restarts"),
            "{stderr}"
        );
    }
}
