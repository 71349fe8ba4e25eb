//! Against Debian's real CrowdSec LAPI (`testbed::lapi`), run in a throwaway namespace: the
//! LAPI in the testbed's server namespace on 192.0.2.1:8080, scanban's side in the attacker
//! namespace, reaching it over the veth pair.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testbed::lapi::Lapi;
use testbed::{wait_for, Testbed, SERVER_V4};

use super::*;
use crate::fleet::{Applied, Decision, DecisionSink, Delta, Target};

const WAIT: Duration = Duration::from_secs(20);

/// Records every delta it is handed.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Delta>>>);

impl DecisionSink for Recorder {
    fn apply(&mut self, delta: Delta) -> Applied {
        let applied = Applied {
            added: delta.new.len() as u64,
            lifted: delta.deleted.len() as u64,
            ..Applied::default()
        };
        self.0.lock().unwrap().push(delta);
        applied
    }
}

impl Recorder {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The first decision at `target` in `new` (or `deleted`) of deltas from index `from` on.
    fn find(&self, from: usize, target: Target, deleted: bool) -> Option<Decision> {
        let deltas = self.0.lock().unwrap();
        deltas.iter().skip(from).find_map(|d| {
            let list = if deleted { &d.deleted } else { &d.new };
            list.iter().find(|x| x.target == target).cloned()
        })
    }
}

fn target(addr: &str, prefix_len: u8) -> Target {
    Target {
        addr: addr.parse::<IpAddr>().unwrap(),
        prefix_len,
    }
}

fn setup(tag: &str) -> Option<(Testbed, Lapi)> {
    let tb = Testbed::new(tag)?;
    let lapi = Lapi::start(&tb.server, &format!("{SERVER_V4}:8080"))?;
    Some((tb, lapi))
}

fn url(lapi: &Lapi) -> Url {
    Url::parse(&lapi.url()).unwrap()
}

#[test]
fn bouncer_streams_cscli_decisions_and_catches_up_after_downtime() {
    let Some((tb, mut lapi)) = setup("lapib") else {
        return;
    };
    let (key, _) = lapi.add_bouncer("b1");
    let sink = Recorder::default();
    let stop = Stop::new();
    let config = BouncerConfig {
        url: url(&lapi),
        api_key: Secret::new(key),
        poll: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
    };
    let bouncer = tb
        .in_attacker(|| Bouncer::spawn(config, Box::new(sink.clone()), stop.clone()))
        .unwrap();
    // The startup answer comes first, even when empty.
    wait_for(WAIT, || (sink.len() > 0).then_some(())).expect("no startup answer");

    lapi.cscli_ok(&["decisions", "add", "--ip", "192.0.2.77", "--duration", "2h"]);
    let one = target("192.0.2.77", 32);
    let d = wait_for(WAIT, || sink.find(0, one, false)).expect("--ip decision never came");
    assert_eq!(&*d.origin, "cscli");
    assert!(
        d.duration_ms > 7_000_000 && d.duration_ms <= 7_200_000,
        "{d:?}"
    );

    lapi.cscli_ok(&[
        "decisions",
        "add",
        "--range",
        "198.51.100.0/24",
        "--duration",
        "3h",
    ]);
    let range = target("198.51.100.0", 24);
    wait_for(WAIT, || sink.find(0, range, false)).expect("--range decision never came");
    lapi.cscli_ok(&[
        "decisions",
        "add",
        "--range",
        "2001:db8:9::/48",
        "--duration",
        "1h",
    ]);
    wait_for(WAIT, || sink.find(0, target("2001:db8:9::", 48), false))
        .expect("IPv6 --range decision never came");

    lapi.cscli_ok(&["decisions", "delete", "--ip", "192.0.2.77"]);
    let gone = wait_for(WAIT, || sink.find(0, one, true)).expect("delete never came");
    assert_eq!(gone.id, d.id);

    // A captcha decision is not a ban: counted as skipped, never handed over.
    lapi.cscli_ok(&[
        "decisions",
        "add",
        "--ip",
        "192.0.2.78",
        "--type",
        "captcha",
    ]);
    wait_for(WAIT, || {
        (bouncer.counters.skipped.load(Ordering::Relaxed) > 0).then_some(())
    })
    .expect("captcha not counted");
    assert!(sink.find(0, target("192.0.2.78", 32), false).is_none());

    // Down: errors counted; back: startup=true again, so the active range comes once more.
    lapi.stop();
    wait_for(WAIT, || {
        (bouncer.counters.poll_errors.load(Ordering::Relaxed) > 0).then_some(())
    })
    .expect("the outage went unnoticed");
    let before = sink.len();
    lapi.restart();
    wait_for(Duration::from_secs(30), || sink.find(before, range, false))
        .expect("no full list after the LAPI came back");
    // That full list also names what was deleted before (LAPI 1.4.6 lists expired and deleted
    // decisions in a startup answer's `deleted`), so a sink can lift what went meanwhile.
    assert!(
        sink.find(before, one, true).is_some(),
        "startup answer without the deletion"
    );

    stop.stop();
    bouncer.thread.join().unwrap();
    assert!(bouncer.counters.polls.load(Ordering::Relaxed) >= 3);
}

#[test]
fn sensor_alerts_come_back_as_decisions_and_survive_downtime() {
    let Some((tb, mut lapi)) = setup("lapis") else {
        return;
    };
    let creds_path = lapi.add_machine("sensor1", "Secr3tPass-test");
    let (key, _) = lapi.add_bouncer("b1");
    let credentials = MachineCredentials::load(&creds_path).unwrap();
    assert_eq!(credentials.url.as_deref(), Some(lapi.url().as_str()));
    let stop = Stop::new();
    let config = SensorConfig {
        url: url(&lapi),
        credentials,
        timeout: Duration::from_secs(5),
    };
    let sensor = tb
        .in_attacker(|| Sensor::spawn(config, stop.clone()))
        .unwrap();
    let now = time::unix_ms_now();
    let alert = |addr: &str, len: u8| BanAlert {
        target: target(addr, len),
        duration_ms: 3_600_000,
        ports: "tcp/21 tcp/22 tcp/23".into(),
        score: 21,
        distinct_ports: 9,
        probes: 11,
        first_seen_ms: now - 2_000,
        last_seen_ms: now,
        summary: "score 21 from 9 ports (tcp/21,22,23 ...)".into(),
    };
    sensor.queue.push(alert("192.0.2.66", 32));
    sensor.queue.push(alert("2001:db8:5::", 64));
    wait_for(WAIT, || {
        (sensor.counters.pushed.load(Ordering::Relaxed) == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("alerts not pushed: {}", lapi.log()));

    let bconf = BouncerConfig {
        url: url(&lapi),
        api_key: Secret::new(key),
        poll: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    };
    let read = tb.in_attacker(|| bouncer::fetch(&bconf, true)).unwrap();
    for t in [target("192.0.2.66", 32), target("2001:db8:5::", 64)] {
        let d = read
            .delta
            .new
            .iter()
            .find(|d| d.target == t)
            .unwrap_or_else(|| panic!("{t:?} not in {:?}", read.delta));
        assert_eq!(&*d.scenario, watcher::SCENARIO);
        assert!(
            d.duration_ms > 3_500_000 && d.duration_ms <= 3_600_000,
            "{d:?}"
        );
    }

    // The LAPI down: the alert is kept, the failure counted; it arrives once the LAPI is back.
    lapi.stop();
    sensor.queue.push(alert("192.0.2.67", 32));
    wait_for(WAIT, || {
        (sensor.counters.failed.load(Ordering::Relaxed) > 0).then_some(())
    })
    .expect("the outage went unnoticed");
    assert_eq!(sensor.counters.pending.load(Ordering::Relaxed), 1);
    lapi.restart();
    wait_for(Duration::from_secs(90), || {
        (sensor.counters.pushed.load(Ordering::Relaxed) == 3).then_some(())
    })
    .expect("the kept alert was never pushed");
    let read = tb.in_attacker(|| bouncer::fetch(&bconf, true)).unwrap();
    assert!(read
        .delta
        .new
        .iter()
        .any(|d| d.target == target("192.0.2.67", 32)));
    assert_eq!(sensor.counters.dropped.load(Ordering::Relaxed), 0);

    stop.stop();
    sensor.thread.join().unwrap();
}

#[test]
fn wrong_credentials_are_counted_never_fatal() {
    let Some((tb, lapi)) = setup("lapiw") else {
        return;
    };
    lapi.add_machine("sensor1", "right-password");
    let stop = Stop::new();
    let config = SensorConfig {
        url: url(&lapi),
        credentials: MachineCredentials::parse("login: sensor1\npassword: wrong\n").unwrap(),
        timeout: Duration::from_secs(5),
    };
    let sensor = tb
        .in_attacker(|| Sensor::spawn(config, stop.clone()))
        .unwrap();
    sensor.queue.push(BanAlert {
        target: target("192.0.2.66", 32),
        duration_ms: 60_000,
        ports: String::new(),
        score: 21,
        distinct_ports: 7,
        probes: 7,
        first_seen_ms: time::unix_ms_now(),
        last_seen_ms: time::unix_ms_now(),
        summary: String::new(),
    });
    wait_for(WAIT, || {
        (sensor.counters.failed.load(Ordering::Relaxed) > 0).then_some(())
    })
    .expect("the refused login was not counted");
    assert_eq!(sensor.counters.pushed.load(Ordering::Relaxed), 0);
    stop.stop();
    sensor.thread.join().unwrap();

    let bconf = BouncerConfig {
        url: url(&lapi),
        api_key: Secret::new("not-a-key".into()),
        poll: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    };
    let e = tb.in_attacker(|| bouncer::fetch(&bconf, true)).unwrap_err();
    assert_eq!(e, "LAPI answered 403: access forbidden");
}

/// HTTPS (feature `tls`): the sensor's alert and the bouncer's stream over TLS, the LAPI's
/// certificate checked against `lapi-ca`.
#[cfg(feature = "tls")]
#[test]
fn https_with_lapi_ca() {
    let Some(tb) = Testbed::new("lapit") else {
        return;
    };
    let Some(lapi) = Lapi::start_tls(&tb.server, &format!("{SERVER_V4}:8443")) else {
        return;
    };
    let creds = lapi.add_machine("sensor1", "Secr3tPass-tls");
    let (_, key_file) = lapi.add_bouncer("b1");
    let settings = crate::settings::Settings {
        lapi_url: Some(lapi.url()),
        lapi_credentials: Some(creds),
        lapi_bouncer_key: Some(key_file),
        lapi_ca: Some(lapi.ca_path()),
        ..crate::settings::Settings::default()
    };
    let sensor_conf = sensor_config(&settings).unwrap().unwrap();
    assert!(sensor_conf.url.to_string().starts_with("https://"));
    let stop = Stop::new();
    let sensor = tb
        .in_attacker(|| Sensor::spawn(sensor_conf, stop.clone()))
        .unwrap();
    let now = time::unix_ms_now();
    sensor.queue.push(BanAlert {
        target: target("192.0.2.66", 32),
        duration_ms: 600_000,
        ports: "tcp/22".into(),
        score: 21,
        distinct_ports: 7,
        probes: 7,
        first_seen_ms: now,
        last_seen_ms: now,
        summary: String::new(),
    });
    wait_for(WAIT, || {
        (sensor.counters.pushed.load(Ordering::Relaxed) == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("not pushed over https: {}", lapi.log()));
    let bconf = bouncer_config(&settings).unwrap().unwrap();
    let read = tb.in_attacker(|| bouncer::fetch(&bconf, true)).unwrap();
    assert!(read
        .delta
        .new
        .iter()
        .any(|d| d.target == target("192.0.2.66", 32)));

    // Without lapi-ca an https URL is refused up front.
    let no_ca = crate::settings::Settings {
        lapi_ca: None,
        ..settings
    };
    assert_eq!(bouncer_config(&no_ca).err().unwrap().setting, "lapi-ca");
    stop.stop();
    sensor.thread.join().unwrap();
}
