/work/main/target-old/release/deps/stats_alloc-c6cb2f1b2dc224c9.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/stats_alloc-0.1.10/src/lib.rs

/work/main/target-old/release/deps/libstats_alloc-c6cb2f1b2dc224c9.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/stats_alloc-0.1.10/src/lib.rs

/work/main/target-old/release/deps/libstats_alloc-c6cb2f1b2dc224c9.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/stats_alloc-0.1.10/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/stats_alloc-0.1.10/src/lib.rs:
