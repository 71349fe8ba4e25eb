/* A bounded packet generator for the benchmarks: TCP SYNs or small UDP datagrams, written as
 * whole Ethernet frames to an AF_PACKET socket with sendmmsg, 64 frames per call. Faster than
 * hping3 (no per-packet syscall, no reply handling), and it can walk source addresses so that
 * many "scanners" can be simulated from one namespace.
 *
 * Packet i comes from source (i / PORTS) % SOURCES and goes to port PORT_BASE + i % PORTS, so
 * each source sends its PORTS probes back to back. IPv4 sources step by one address, IPv6
 * sources by one /64. Bounded by COUNT packets and MAX_SECS seconds; PPS 0 means unpaced.
 *
 * usage: pktgen IFACE DST_MAC DST_IP SRC_FIRST SOURCES PORTS PORT_BASE syn|udp COUNT PPS MAX_SECS
 * prints: "sent N packets in S s = R pps"
 * Benchmark tooling only: runs inside the benchmark's own namespaces. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define FRAME_MAX 128

static uint32_t sum16(const void *p, size_t n, uint32_t s) {
    const uint8_t *b = p;
    for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (n & 1) s += (uint32_t)(b[n - 1] << 8);
    return s;
}
static uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return htons((uint16_t)~s);
}
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 12) {
        fprintf(stderr, "usage: %s IFACE DST_MAC DST_IP SRC_FIRST SOURCES PORTS PORT_BASE "
                        "syn|udp COUNT PPS MAX_SECS\n", argv[0]);
        return 2;
    }
    const char *ifname = argv[1];
    uint8_t dmac[6];
    if (sscanf(argv[2], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &dmac[0], &dmac[1], &dmac[2],
               &dmac[3], &dmac[4], &dmac[5]) != 6) {
        fprintf(stderr, "bad MAC %s\n", argv[2]);
        return 2;
    }
    int v6 = strchr(argv[3], ':') != NULL;
    uint8_t dst[16], src0[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, argv[3], dst) != 1 ||
        inet_pton(v6 ? AF_INET6 : AF_INET, argv[4], src0) != 1) {
        fprintf(stderr, "bad address\n");
        return 2;
    }
    unsigned long sources = strtoul(argv[5], 0, 10), ports = strtoul(argv[6], 0, 10);
    unsigned long port_base = strtoul(argv[7], 0, 10);
    int syn = strcmp(argv[8], "syn") == 0;
    unsigned long long count = strtoull(argv[9], 0, 10);
    double pps = strtod(argv[10], 0), max_secs = strtod(argv[11], 0);
    if (sources == 0 || ports == 0) return 2;

    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) { perror("socket"); return 1; }
    struct sockaddr_ll ll = {0};
    ll.sll_family = AF_PACKET;
    ll.sll_ifindex = (int)if_nametoindex(ifname);
    ll.sll_halen = 6;
    memcpy(ll.sll_addr, dmac, 6);
    if (ll.sll_ifindex == 0) { perror("if_nametoindex"); return 1; }
    if (bind(fd, (struct sockaddr *)&ll, sizeof ll) < 0) { perror("bind"); return 1; }

    static uint8_t frames[BATCH][FRAME_MAX];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    size_t l3 = v6 ? 40 : 20, l4 = syn ? 20 : 8 + 18, len = 14 + l3 + l4;

    double start = now_s();
    unsigned long long sent = 0;
    while (sent < count && now_s() - start < max_secs) {
        int n = 0;
        for (; n < BATCH && sent + (unsigned long long)n < count; n++) {
            unsigned long long i = sent + (unsigned long long)n;
            unsigned long s = (unsigned long)(i / ports % sources);
            uint16_t dport = (uint16_t)(port_base + i % ports);
            uint8_t *f = frames[n];
            memset(f, 0, len);
            memcpy(f, dmac, 6);
            f[6] = 0x02; f[11] = 0x01; /* a locally administered source MAC */
            f[12] = v6 ? 0x86 : 0x08; f[13] = v6 ? 0xdd : 0x00;
            uint8_t *ip = f + 14, *l4p = ip + l3, src[16];
            memcpy(src, src0, 16);
            if (v6) { /* step the /64: bytes 0..7 as a big-endian integer */
                uint64_t hi = 0;
                for (int k = 0; k < 8; k++) hi = hi << 8 | src[k];
                hi += s;
                for (int k = 7; k >= 0; k--) { src[k] = (uint8_t)hi; hi >>= 8; }
                ip[0] = 0x60;
                ip[4] = (uint8_t)(l4 >> 8); ip[5] = (uint8_t)l4;
                ip[6] = syn ? 6 : 17; ip[7] = 64;
                memcpy(ip + 8, src, 16); memcpy(ip + 24, dst, 16);
            } else {
                uint32_t a = ntohl(*(uint32_t *)src) + (uint32_t)s;
                a = htonl(a);
                memcpy(src, &a, 4);
                ip[0] = 0x45;
                ip[2] = (uint8_t)((l3 + l4) >> 8); ip[3] = (uint8_t)(l3 + l4);
                ip[8] = 64; ip[9] = syn ? 6 : 17;
                memcpy(ip + 12, src, 4); memcpy(ip + 16, dst, 4);
                uint16_t c = fold(sum16(ip, 20, 0));
                memcpy(ip + 10, &c, 2);
            }
            uint16_t sport = (uint16_t)(40000 + (i & 0x3fff));
            l4p[0] = (uint8_t)(sport >> 8); l4p[1] = (uint8_t)sport;
            l4p[2] = (uint8_t)(dport >> 8); l4p[3] = (uint8_t)dport;
            if (syn) {
                l4p[4] = (uint8_t)(i >> 24); l4p[5] = (uint8_t)(i >> 16); /* sequence */
                l4p[12] = 0x50; l4p[13] = 0x02; l4p[14] = 0xfa; l4p[15] = 0xf0;
            } else {
                l4p[4] = (uint8_t)(l4 >> 8); l4p[5] = (uint8_t)l4;
            }
            /* pseudo-header checksum */
            uint32_t ps = v6 ? sum16(ip + 8, 32, 0) : sum16(ip + 12, 8, 0);
            ps += (uint32_t)(syn ? 6 : 17) + (uint32_t)l4;
            uint16_t c = fold(sum16(l4p, l4, ps));
            memcpy(l4p + (syn ? 16 : 6), &c, 2);
            iov[n].iov_base = f;
            iov[n].iov_len = len;
            msgs[n].msg_hdr.msg_iov = &iov[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (r < 0) { perror("sendmmsg"); break; }
        sent += (unsigned long long)r;
        if (pps > 0) {
            double due = start + (double)sent / pps, wait = due - now_s();
            if (wait > 0) {
                struct timespec t = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
                nanosleep(&t, 0);
            }
        }
    }
    double el = now_s() - start;
    printf("sent %llu packets in %.3f s = %.0f pps\n", sent, el, el > 0 ? (double)sent / el : 0);
    close(fd);
    return 0;
}
