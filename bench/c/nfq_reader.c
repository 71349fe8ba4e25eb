/*
 * The peer for bench/queue-reader.sh: a minimal NFQUEUE reader on Debian's libnetfilter_queue,
 * configured like scanban's (copy range 128, queue max-len from the command line, fail-open),
 * giving every packet the same verdict, either one verdict per packet or one batch verdict per
 * receive buffer drained. Built by the benchmark script; never part of scanban.
 *
 * usage: nfq_reader QUEUE accept|drop single|batch IDLE_SECS START_AFTER_SECS MAXLEN
 * prints: "N packets in S s (R packets/s)" from the first to the last packet.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

static int verdict;
static int batch;
static uint32_t last_id;
static unsigned long packets;
static unsigned long pending;
static double first;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int cb(struct nfq_q_handle *qh, struct nfgenmsg *m, struct nfq_data *d, void *data) {
    (void)m; (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(d);
    uint32_t id = ph ? ntohl(ph->packet_id) : 0;
    unsigned char *payload;
    (void)nfq_get_payload(d, &payload);
    packets++;
    if (first == 0)
        first = now();
    if (batch) {
        last_id = id;
        pending++;
        return 0;
    }
    return nfq_set_verdict(qh, id, verdict, 0, NULL);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s QUEUE accept|drop single|batch IDLE START_AFTER MAXLEN\n", argv[0]);
        return 2;
    }
    int queue = atoi(argv[1]);
    verdict = strcmp(argv[2], "drop") == 0 ? NF_DROP : NF_ACCEPT;
    batch = strcmp(argv[3], "batch") == 0;
    int idle = atoi(argv[4]);
    int start_after = atoi(argv[5]);
    uint32_t maxlen = (uint32_t)atoi(argv[6]);

    struct nfq_handle *h = nfq_open();
    if (!h) { perror("nfq_open"); return 1; }
    struct nfq_q_handle *qh = nfq_create_queue(h, queue, &cb, NULL);
    if (!qh) { perror("nfq_create_queue"); return 1; }
    if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 128) < 0) { perror("nfq_set_mode"); return 1; }
    nfq_set_queue_maxlen(qh, maxlen);
    nfq_set_queue_flags(qh, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN);
    int fd = nfq_fd(h);
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    int rcv = 256 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
    sleep(start_after);

    char buf[4096] __attribute__((aligned));
    double last = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, idle * 1000) <= 0)
            break;
        /* Drain what is queued, then answer it with one batch verdict. */
        for (;;) {
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0)
                break;
            nfq_handle_packet(h, buf, (int)n);
            if (batch && pending >= 64) {
                nfq_set_verdict_batch(qh, last_id, verdict);
                pending = 0;
            }
        }
        if (batch && pending) {
            nfq_set_verdict_batch(qh, last_id, verdict);
            pending = 0;
        }
        if (packets)
            last = now();
    }
    double span = last - first;
    fprintf(stderr, "%lu packets in %.3f s (%.0f packets/s)\n", packets, span,
            span > 0 ? packets / span : 0.0);
    nfq_destroy_queue(qh);
    nfq_close(h);
    return 0;
}
