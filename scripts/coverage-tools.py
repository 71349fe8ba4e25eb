#!/usr/bin/env python3
"""Helpers of scripts/coverage.sh: reading the attacker's captures, crafting IPv6 probes.

  coverage-tools.py answers PCAP SERVER_ADDR...
      prints "PROBES ANSWERS FIRST_PROBE_S LAST_ANSWER_S OPEN_ANSWER_INDEX": packets sent to the
      server, packets the server sent back (ARP and neighbour discovery excluded), the capture
      times of the first probe and of the last answer, and the rank among the answers of the first
      one that reveals an open port (a TCP SYN-ACK or a UDP datagram; 0 if none).
  coverage-tools.py stretch IN OUT SECONDS SERVER_ADDR...
      rewrites the capture's times so that consecutive probes (packets to the server) are SECONDS
      apart and each answer follows the probe before it by 1 ms: the same scan at nmap -T2/-T1/-T0
      pacing, for `scanban replay` (the detector is sans-IO, so time is only what the capture says).
  coverage-tools.py ext6-syn SRC DST PORT_FIRST COUNT OPT_BYTES
      sends COUNT TCP SYNs from SRC to DST, ports PORT_FIRST.., each behind a Destination Options
      header of OPT_BYTES bytes (a multiple of 8, at least 16) made of options of an unknown type
      that a receiver skips (0x1e, RFC 4727's experiment type), through a raw socket: the
      kernel builds the IPv6 header and the checksum.

Ethernet (DLT 1) and Linux cooked (113, 276) pcap files, as tcpdump writes them.
"""
import ipaddress
import struct
import sys

ETH, SLL, SLL2 = 1, 113, 276


def frames(data):
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        end = "<"
    else:
        end = ">"
        magic = struct.unpack(">I", data[:4])[0]
    nano = magic == 0xA1B23C4D
    linktype = struct.unpack(end + "I", data[20:24])[0] & 0xFFFF
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(end + "IIII", data[off:off + 16])
        body = data[off + 16:off + 16 + incl]
        yield off, end, nano, sec + frac / (1e9 if nano else 1e6), linktype, body
        off += 16 + incl


def ip_of(linktype, body):
    """(src, dst, proto, l4 bytes) of an IPv4/IPv6 frame, or None."""
    if linktype == ETH:
        etype, l3 = struct.unpack(">H", body[12:14])[0], body[14:]
        if etype == 0x8100:
            etype, l3 = struct.unpack(">H", body[16:18])[0], body[18:]
    elif linktype == SLL:
        etype, l3 = struct.unpack(">H", body[14:16])[0], body[16:]
    elif linktype == SLL2:
        etype, l3 = struct.unpack(">H", body[0:2])[0], body[20:]
    else:
        return None
    if etype == 0x0800 and len(l3) >= 20:
        ihl = (l3[0] & 0xF) * 4
        return (ipaddress.ip_address(l3[12:16]), ipaddress.ip_address(l3[16:20]), l3[9], l3[ihl:])
    if etype == 0x86DD and len(l3) >= 40:
        nh, rest = l3[6], l3[40:]
        # Walk the usual extension headers to reach the transport protocol.
        for _ in range(16):
            if nh not in (0, 43, 60) or len(rest) < 2:
                break
            nh, rest = rest[0], rest[(rest[1] + 1) * 8:]
        return (ipaddress.ip_address(l3[8:24]), ipaddress.ip_address(l3[24:40]), nh, rest)
    return None


def is_answer(proto, l4):
    """Any packet but neighbour discovery (which is neither probe nor answer)."""
    return not (proto == 58 and l4 and 133 <= l4[0] <= 137)


def answers(path, servers):
    data = open(path, "rb").read()
    probes = answered = opened = 0
    first = last = None
    for _, _, _, t, lt, body in frames(data):
        p = ip_of(lt, body)
        if p is None:
            continue
        src, dst, proto, l4 = p
        if dst in servers and is_answer(proto, l4):
            probes += 1
            if first is None:
                first = t
        elif src in servers and is_answer(proto, l4):
            answered += 1
            last = t
            syn_ack = proto == 6 and len(l4) > 13 and l4[13] & 0x12 == 0x12
            if (syn_ack or proto == 17) and not opened:
                opened = answered
    print(probes, answered, "%.6f" % (first or 0), "%.6f" % (last or first or 0), opened)


def stretch(src_path, out_path, gap, servers):
    data = bytearray(open(src_path, "rb").read())
    start, sent = None, 0
    for off, end, nano, t, lt, body in list(frames(bytes(data))):
        if start is None:
            start = t
        p = ip_of(lt, body)
        if p is not None and p[1] in servers:
            when = start + sent * gap
            sent += 1
        else:
            when = start + max(sent - 1, 0) * gap + 0.001
        sec = int(when)
        frac = int(round((when - sec) * (1e9 if nano else 1e6)))
        data[off:off + 8] = struct.pack(end + "II", sec, frac)
    open(out_path, "wb").write(data)


def dest_options(size):
    """A Destination Options header of `size` bytes: skippable 0x1e options, no long padding
    (Linux drops runs of more than 7 padding bytes, RFC 4942)."""
    body, left = b"", size - 2
    while left:
        n = min(left, 257)
        if left - n in (1,):  # never leave a single byte: it could only be Pad1
            n -= 2
        body += bytes([0x1E, n - 2]) + bytes(n - 2)
        left -= n
    return bytes([0, size // 8 - 1]) + body


def ext6_syn(src, dst, first, count, size, flags=0x02):
    import socket
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.setsockopt(socket.IPPROTO_IPV6, 7, 16)  # IPV6_CHECKSUM: the kernel fills TCP's at 16
    s.bind((src, 0))
    opts = [(socket.IPPROTO_IPV6, 59, dest_options(size))]  # IPV6_DSTOPTS
    for i in range(count):
        port = first + i
        tcp = struct.pack(">HHIIBBHHH", 40000 + i, port, 0x5CA1AB1E, 0, 5 << 4, flags, 1024, 0, 0)
        s.sendmsg([tcp], opts, 0, (dst, 0))
    print("sent", count)


def main():
    cmd = sys.argv[1]
    if cmd == "answers":
        answers(sys.argv[2], {ipaddress.ip_address(a) for a in sys.argv[3:]})
    elif cmd == "stretch":
        stretch(sys.argv[2], sys.argv[3], float(sys.argv[4]),
                {ipaddress.ip_address(a) for a in sys.argv[5:]})
    elif cmd == "ext6-syn":
        ext6_syn(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]),
                 int(sys.argv[7]) if len(sys.argv) > 7 else 0x02)
    else:
        sys.exit("usage: coverage-tools.py answers PCAP ADDR... | stretch IN OUT SECONDS ADDR... | "
                 "ext6-syn SRC DST PORT_FIRST COUNT OPT_BYTES [TCP_FLAGS]")


if __name__ == "__main__":
    main()
