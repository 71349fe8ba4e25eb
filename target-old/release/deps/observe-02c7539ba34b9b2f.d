/work/main/target-old/release/deps/observe-02c7539ba34b9b2f.d: detector/benches/observe.rs

/work/main/target-old/release/deps/observe-02c7539ba34b9b2f: detector/benches/observe.rs

detector/benches/observe.rs:
