/work/main/target-old/release/deps/detector-0aab7b9af42b6f12.d: detector/src/lib.rs detector/src/allowlist.rs detector/src/config.rs detector/src/evidence.rs detector/src/offenders.rs detector/src/packet.rs detector/src/pcap.rs detector/src/ratelimit.rs detector/src/replay.rs detector/src/source.rs detector/src/table.rs

/work/main/target-old/release/deps/libdetector-0aab7b9af42b6f12.rlib: detector/src/lib.rs detector/src/allowlist.rs detector/src/config.rs detector/src/evidence.rs detector/src/offenders.rs detector/src/packet.rs detector/src/pcap.rs detector/src/ratelimit.rs detector/src/replay.rs detector/src/source.rs detector/src/table.rs

/work/main/target-old/release/deps/libdetector-0aab7b9af42b6f12.rmeta: detector/src/lib.rs detector/src/allowlist.rs detector/src/config.rs detector/src/evidence.rs detector/src/offenders.rs detector/src/packet.rs detector/src/pcap.rs detector/src/ratelimit.rs detector/src/replay.rs detector/src/source.rs detector/src/table.rs

detector/src/lib.rs:
detector/src/allowlist.rs:
detector/src/config.rs:
detector/src/evidence.rs:
detector/src/offenders.rs:
detector/src/packet.rs:
detector/src/pcap.rs:
detector/src/ratelimit.rs:
detector/src/replay.rs:
detector/src/source.rs:
detector/src/table.rs:
