//! Netlink socket, nfnetlink framing and NFQUEUE.
