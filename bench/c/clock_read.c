/* What one wall-clock read costs here: clock_gettime(CLOCK_REALTIME) through the vDSO, the
 * userspace twin of the kernel's ktime_get_real() (same clocksource, same seqlock), which the
 * kernel calls once per received packet while receive timestamps are on. Best of 5 rounds of
 * 10 million reads; prints the nanoseconds per read. Benchmark tooling only.
 * usage: clock_read */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>

static double mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(void) {
    const long n = 10000000;
    double best = 1e18;
    volatile long sink = 0;
    for (int round = 0; round < 5; round++) {
        double t0 = mono();
        for (long i = 0; i < n; i++) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            sink += t.tv_nsec;
        }
        double per = (mono() - t0) / (double)n;
        if (per < best) best = per;
    }
    printf("%.1f\n", best);
    return sink == 42;
}
