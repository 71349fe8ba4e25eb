//! The bounded table of tracked sources: a hash index over a preallocated slab, with an
//! intrusive least-recently-seen list for O(1) eviction.
//!
//! Memory is bounded at construction, so a flood of spoofed sources costs evictions, never growth
//! or allocation (the slab and the index are reserved up front; the kernel maps their pages as
//! they are first written, so an idle table costs next to nothing). The index is open addressing
//! with linear probing over twice as many u32 slots as sources (load ≤ 1/2), with backward-shift
//! deletion so churn leaves no tombstones, hashed with a keyed multiply-and-fold hash under 256
//! random bits per table (foldhash's construction; SipHash-1-3 before, at about 15 ns a probe):
//! a sender never sees a hash or the seed, so it cannot aim sources at one probe run, and no
//! per-bucket cap is needed on top. (std's HashMap was the first choice; under eviction churn it
//! rehashes into a new allocation once tombstones pile up, which the no-allocation test caught.)

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use crate::packet::Proto;
use crate::source::SourceKey;

/// Distinct (protocol, port) pairs remembered per source. The default threshold is reached by
/// 21 ports at most; a slow scanner that goes past this evicts its oldest ports (which then
/// count again if revisited: scanning behaviour anyway).
pub const PORTS_PER_SOURCE: usize = 24;

const NONE: u32 = u32::MAX;

/// Words of four ports each in a track's ring.
const PORT_WORDS: usize = PORTS_PER_SOURCE / 4;
const _: () = assert!(PORTS_PER_SOURCE % 4 == 0);

/// Each 16-bit lane's low 15 bits, and each lane's top bit.
const LANE_LOW: u64 = 0x7fff_7fff_7fff_7fff;
const LANE_TOP: u64 = 0x8000_8000_8000_8000;

/// The top bit of each 16-bit lane of `w` that equals the one of `pattern` (SWAR: exact, no
/// carry crosses a lane).
#[inline]
fn equal_lanes(w: u64, pattern: u64) -> u64 {
    let x = w ^ pattern;
    // A lane's top bit ends up set iff any of its bits is.
    let nonzero = ((x & LANE_LOW) + LANE_LOW) | x;
    !nonzero & LANE_TOP
}

/// The key of a freed slot: no source or prefix has it (no prefix is 255 bits long).
const FREED: SourceKey = SourceKey::V4Net(std::net::Ipv4Addr::UNSPECIFIED, u8::MAX);

/// What is known about one source (or, in the distributed-scan tier, one prefix).
///
/// Scores are kept in leak units: a point is worth `leak_every_ms` units of its tier, and one
/// unit leaks away per millisecond, so the leak is a subtraction of the elapsed time, exact at
/// any probe rate (no division per probe, no leak lost to rounding when probes come often).
///
/// 128 bytes, aligned to 128: exactly two cache lines, which the CPU's adjacent-line
/// prefetcher fetches as a pair, so a visit to a source costs one miss, not the three of a
/// 160-byte record straddling lines. The ports are what made it big: 16-bit ports with their
/// protocols packed two bits each beside them hold the same 24 distinct ports in 54 bytes
/// instead of 96.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(128))]
pub struct Track {
    // First cache line: what every probe reads (the key, the leak) and counts.
    pub key: SourceKey,
    /// Distinct ports while tracked (saturating: a source is banned long before).
    pub distinct: u16,
    nports: u8,
    next_port: u8,
    pub stealth: u8,
    /// In the prefix tier: sources of the prefix that began to be tracked while it was
    /// (saturating: only "at least `PREFIX_MIN_SOURCES`" matters).
    pub sources: u8,
    pub probes: u32,
    /// A source's guess at its prefix's slot in the prefix table (checked against that slot's
    /// key before use): spares the prefix tier a hash and an index lookup per new port.
    pub prefix_slot: u32,
    /// The port added last, `(proto << 16) | port` (`NO_PORT` before the first): a retry of
    /// it, the commonest repeat, is told from the first cache line alone.
    last_port: u32,
    pub updated_ms: u64,
    /// The short-horizon score (`leak-every` per point), as of `updated_ms`.
    pub score: u64,
    /// The long-horizon score (`slow-leak-every` per point), as of `updated_ms`.
    pub slow: u64,
    // Second cache line: the ports.
    /// When its first probe in this tracking came: when its scan began.
    pub first_ms: u64,
    /// The protocol (`Proto::index`, two bits) of each entry of `ports`.
    protos: u64,
    /// A ring of the most recent distinct ports (with `protos`), four 16-bit ports to a word
    /// (entry `i` is bits `16 * (i % 4)..` of word `i / 4`), so a lookup compares four at once.
    ports: [u64; PORT_WORDS],
}

// Two bits of protocol per remembered port; the fields of every probe in the first line.
const _: () = assert!(Proto::ALL.len() <= 4 && 2 * PORTS_PER_SOURCE <= 64);
const _: () = assert!(std::mem::offset_of!(Track, slow) + 8 <= 64);

/// `last_port` of a track with no port yet: no protocol index is that high.
const NO_PORT: u32 = u32::MAX;

impl Track {
    fn new(key: SourceKey, now_ms: u64) -> Self {
        Track {
            key,
            score: 0,
            slow: 0,
            updated_ms: now_ms,
            first_ms: now_ms,
            probes: 0,
            distinct: 0,
            protos: 0,
            last_port: NO_PORT,
            ports: [0; PORT_WORDS],
            nports: 0,
            next_port: 0,
            stealth: 0,
            sources: 0,
            prefix_slot: NONE,
        }
    }

    /// Applies the leak of both tiers up to `now_ms`.
    pub fn leak(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.updated_ms);
        self.score = self.score.saturating_sub(elapsed);
        self.slow = self.slow.saturating_sub(elapsed);
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// Whether both scores have leaked to nothing (as of `updated_ms`).
    pub fn is_spent(&self) -> bool {
        self.score == 0 && self.slow == 0
    }

    fn proto_at(&self, i: usize) -> u32 {
        ((self.protos >> (2 * i)) & 3) as u32
    }

    /// Whether `(proto, port)` is remembered.
    fn holds_port(&self, proto: u32, port: u16) -> bool {
        // Which entries have the port, four at a time (a few instructions per word where a
        // loop over the entries is a hundred), then their protocols.
        let pattern = u64::from(port) * 0x0001_0001_0001_0001;
        let n = usize::from(self.nports);
        for (w, &word) in self.ports.iter().enumerate() {
            let mut hits = equal_lanes(word, pattern);
            while hits != 0 {
                let i = 4 * w + hits.trailing_zeros() as usize / 16;
                if i < n && self.proto_at(i) == proto {
                    return true;
                }
                hits &= hits - 1;
            }
        }
        false
    }

    /// Whether `(proto, port)` is the port added last (a retry): read from the first cache
    /// line alone.
    #[inline]
    pub fn repeats_last_port(&self, proto: Proto, port: u16) -> bool {
        (proto.index() << 16) | u32::from(port) == self.last_port
    }

    /// Records a port; false if it was already known.
    pub fn add_port(&mut self, proto: Proto, port: u16) -> bool {
        let proto = proto.index();
        let v = (proto << 16) | u32::from(port);
        if v == self.last_port || self.holds_port(proto, port) {
            return false;
        }
        self.last_port = v;
        let i = usize::from(self.next_port);
        let shift = 16 * (i % 4);
        let word = &mut self.ports[i / 4];
        *word = (*word & !(0xffff << shift)) | (u64::from(port) << shift);
        self.protos = (self.protos & !(3 << (2 * i))) | (u64::from(proto) << (2 * i));
        self.next_port = ((i + 1) % PORTS_PER_SOURCE) as u8;
        self.nports = self.nports.saturating_add(1).min(PORTS_PER_SOURCE as u8);
        self.distinct = self.distinct.saturating_add(1);
        true
    }

    /// Remembered ports, oldest first.
    pub fn ports(&self) -> impl Iterator<Item = (Proto, u16)> + '_ {
        let n = usize::from(self.nports);
        let start = if n < PORTS_PER_SOURCE {
            0
        } else {
            usize::from(self.next_port)
        };
        (0..n).map(move |i| {
            let i = (start + i) % PORTS_PER_SOURCE;
            let port = (self.ports[i / 4] >> (16 * (i % 4))) as u16;
            (Proto::from_index(self.proto_at(i)), port)
        })
    }
}

/// A slot's place in the least-recently-seen list. Kept apart from the tracks, in one dense
/// array (8 bytes a slot): moving a source to the front touches its neighbours' links, and
/// those stay in cache where the neighbours' tracks would not.
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NONE,
    next: NONE,
};

/// Open-addressing index from source to slab slot.
struct Index {
    /// Slab slot numbers plus one, 0 for empty; length a power of two. Zero for empty lets the
    /// buckets come from zeroed memory the kernel maps only when first written: an idle daemon
    /// does not pay for its index.
    buckets: Vec<u32>,
    /// Random per table: where keys land is unknowable from outside.
    seed: [u64; 4],
    len: usize,
}

const EMPTY: u32 = 0;

/// The key as one 128-bit number to hash. Keys that differ only in kind or length may give
/// the same number (the index compares whole keys); a sender chooses neither.
fn hash_input(key: &SourceKey) -> u128 {
    let (tag, addr, len) = match *key {
        SourceKey::V4(a) => (0u128, u128::from(u32::from(a)), 32),
        SourceKey::V6(a, len) => (1, u128::from(a), len),
        SourceKey::V4Net(a, len) => (2, u128::from(u32::from(a)), len),
        SourceKey::V6Net(a, len) => (3, u128::from(a), len),
    };
    addr ^ (tag << 120) ^ (u128::from(len) << 112)
}

/// The 64-bit product of `a` and `b` folded into 64 bits (high half xor low half).
fn folded_multiply(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Buckets of an index that is allocated fresh from the kernel: 128 KiB, where glibc's and
/// musl's allocators map an allocation of their own instead of carving it from the heap, so a
/// zeroed index costs no memory until its buckets are written. An index of 64 KiB or more is
/// given this many buckets at least: the daemon's eight shards would otherwise hold 512 KB of
/// empty buckets while idle (a smaller index, as the prefix tables', stays as it is).
const FRESH_BUCKETS: usize = 128 * 1024 / std::mem::size_of::<u32>();

impl Index {
    fn new(capacity: usize) -> Self {
        let mut n = (capacity * 2).next_power_of_two().max(2);
        if n >= FRESH_BUCKETS / 2 {
            n = n.max(FRESH_BUCKETS);
        }
        Index {
            buckets: vec![EMPTY; n],
            seed: {
                let r = RandomState::new();
                [
                    r.hash_one(1u8),
                    r.hash_one(2u8),
                    r.hash_one(3u8),
                    r.hash_one(4u8) | 1,
                ]
            },
            len: 0,
        }
    }

    /// A keyed hash: two folded multiplies under the table's random seed (foldhash's
    /// construction), a few nanoseconds where SipHash-1-3 took about fifteen per probe.
    #[inline]
    fn home(&self, key: &SourceKey) -> usize {
        let x = hash_input(key);
        let k = self.seed;
        let h = folded_multiply(x as u64 ^ k[0], (x >> 64) as u64 ^ k[1]);
        (folded_multiply(h ^ k[2], k[3]) as usize) & (self.buckets.len() - 1)
    }

    /// The bucket holding `key` and its slot, if present. Inlined (as `home`): under the
    /// release profile's size optimisation both stayed calls on every probe's path.
    #[inline]
    fn find(&self, key: &SourceKey, slots: &[Track]) -> Option<(usize, u32)> {
        let mask = self.buckets.len() - 1;
        let mut b = self.home(key);
        loop {
            let s = self.buckets[b];
            if s == EMPTY {
                return None;
            }
            if slots[(s - 1) as usize].key == *key {
                return Some((b, s - 1));
            }
            b = (b + 1) & mask;
        }
    }

    fn insert(&mut self, key: &SourceKey, slot: u32) {
        let mask = self.buckets.len() - 1;
        let mut b = self.home(key);
        while self.buckets[b] != EMPTY {
            b = (b + 1) & mask;
        }
        self.buckets[b] = slot + 1;
        self.len += 1;
    }

    /// Empties bucket `b` and shifts later members of its probe run back, so lookups never need
    /// tombstones.
    fn remove_at(&mut self, mut b: usize, slots: &[Track]) {
        let mask = self.buckets.len() - 1;
        self.buckets[b] = EMPTY;
        self.len -= 1;
        let mut next = (b + 1) & mask;
        while self.buckets[next] != EMPTY {
            let s = self.buckets[next];
            let home = self.home(&slots[(s - 1) as usize].key);
            // Move it back if its home is not within (b, next] cyclically.
            let in_range = if b <= next {
                b < home && home <= next
            } else {
                b < home || home <= next
            };
            if !in_range {
                self.buckets[b] = s;
                self.buckets[next] = EMPTY;
                b = next;
            }
            next = (next + 1) & mask;
        }
    }
}

pub struct Table {
    index: Index,
    slots: Vec<Track>,
    links: Vec<Link>,
    free: Vec<u32>,
    capacity: usize,
    /// Most recently seen.
    head: u32,
    /// Least recently seen: evicted first.
    tail: u32,
}

/// Whether `get_or_insert` had to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Existing,
    New,
    NewAfterEviction,
}

impl Table {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Table {
            index: Index::new(capacity),
            slots: Vec::with_capacity(capacity),
            links: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            capacity,
            head: NONE,
            tail: NONE,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len
    }

    pub fn is_empty(&self) -> bool {
        self.index.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The source's track, created (evicting the least recently seen if full) if absent, and
    /// marked most recently seen.
    pub fn get_or_insert(&mut self, key: SourceKey, now_ms: u64) -> (&mut Track, Inserted) {
        if let Some(i) = self.find(&key) {
            return (self.touch(i), Inserted::Existing);
        }
        let (i, how) = self.insert(key, now_ms);
        (&mut self.slots[i as usize], how)
    }

    /// The slot of `key`'s track, if tracked.
    pub fn find(&self, key: &SourceKey) -> Option<u32> {
        Some(self.index.find(key, &self.slots)?.1)
    }

    /// The track in slot `i` (from `find`), marked most recently seen.
    #[inline]
    pub fn touch(&mut self, i: u32) -> &mut Track {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
        &mut self.slots[i as usize]
    }

    /// A new track for `key`, which must not be tracked (evicting the least recently seen if
    /// full), marked most recently seen; its slot.
    pub fn insert(&mut self, key: SourceKey, now_ms: u64) -> (u32, Inserted) {
        let mut how = Inserted::New;
        let i = if let Some(i) = self.free.pop() {
            i
        } else if self.slots.len() < self.capacity {
            self.slots.push(Track::new(key, now_ms));
            self.links.push(UNLINKED);
            (self.slots.len() - 1) as u32
        } else {
            let victim = self.tail;
            self.unlink(victim);
            let old = self.slots[victim as usize].key;
            if let Some((b, _)) = self.index.find(&old, &self.slots) {
                self.index.remove_at(b, &self.slots);
            }
            how = Inserted::NewAfterEviction;
            victim
        };
        self.slots[i as usize] = Track::new(key, now_ms);
        self.index.insert(&key, i);
        self.push_front(i);
        (i, how)
    }

    /// The slot holding `key`, if `i` is it (a cheap check of a remembered slot: a freed slot
    /// holds no key).
    pub fn holds(&self, i: u32, key: &SourceKey) -> bool {
        self.slots.get(i as usize).is_some_and(|t| t.key == *key)
    }

    /// Every track, in no particular order (a reload rescales scores).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut Track)) {
        let mut i = self.head;
        while i != NONE {
            f(&mut self.slots[i as usize]);
            i = self.links[i as usize].next;
        }
    }

    pub fn get(&self, key: &SourceKey) -> Option<&Track> {
        let (_, i) = self.index.find(key, &self.slots)?;
        Some(&self.slots[i as usize])
    }

    pub fn remove(&mut self, key: &SourceKey) -> Option<Track> {
        let (b, i) = self.index.find(key, &self.slots)?;
        self.index.remove_at(b, &self.slots);
        self.unlink(i);
        self.free.push(i);
        let track = self.slots[i as usize];
        self.slots[i as usize].key = FREED;
        Some(track)
    }

    /// The track in slot `i` (from `find` or `insert`), leaving its place in the list alone.
    pub fn at_mut(&mut self, i: u32) -> &mut Track {
        &mut self.slots[i as usize]
    }

    /// The least recently seen track.
    pub fn oldest(&self) -> Option<&Track> {
        (self.tail != NONE).then(|| &self.slots[self.tail as usize])
    }

    fn unlink(&mut self, i: u32) {
        let Link { prev, next } = self.links[i as usize];
        if prev != NONE {
            self.links[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NONE {
            self.links[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        self.links[i as usize] = UNLINKED;
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        self.links[i as usize] = Link {
            prev: NONE,
            next: old,
        };
        if old != NONE {
            self.links[old as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    /// Bytes one tracked source costs: its slab slot, its list links, its free-list entry, and
    /// two index buckets (twice the capacity, rounded up to a power of two; four in a table of
    /// 4,097 to 8,192 sources, as each of the daemon's shards, whose index is `FRESH_BUCKETS`).
    pub fn bytes_per_source() -> usize {
        std::mem::size_of::<Track>()
            + std::mem::size_of::<Link>()
            + std::mem::size_of::<u32>()
            + 2 * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(i: u32) -> SourceKey {
        SourceKey::V4(Ipv4Addr::from(0xc633_6400 + i))
    }

    #[test]
    fn evicts_the_least_recently_seen() {
        let mut t = Table::new(3);
        for i in 0..3 {
            t.get_or_insert(key(i), 0);
        }
        t.get_or_insert(key(0), 1); // 0 is now the most recent; 1 the oldest
        let (_, how) = t.get_or_insert(key(9), 2);
        assert_eq!(how, Inserted::NewAfterEviction);
        assert!(t.get(&key(1)).is_none());
        assert!(t.get(&key(0)).is_some());
        assert_eq!(t.len(), 3);
        assert_eq!(t.oldest().unwrap().key, key(2));
        t.remove(&key(2));
        assert_eq!(t.len(), 2);
        let (_, how) = t.get_or_insert(key(10), 3);
        assert_eq!(how, Inserted::New, "a freed slot is reused before evicting");
    }

    #[test]
    fn ports_are_distinct_per_protocol_and_ring_beyond_the_cap() {
        let mut tr = Track::new(key(0), 0);
        assert!(tr.add_port(Proto::Tcp, 80));
        assert!(!tr.add_port(Proto::Tcp, 80));
        assert!(tr.add_port(Proto::Udp, 80), "udp/80 is not tcp/80");
        for p in 1000..1100 {
            tr.add_port(Proto::Tcp, p);
        }
        assert_eq!(tr.ports().count(), PORTS_PER_SOURCE);
        assert_eq!(tr.ports().last(), Some((Proto::Tcp, 1099)));
        assert_eq!(tr.distinct, 102);
    }

    #[test]
    fn port_lookup_matches_whole_lanes_only() {
        // Ports that differ in one lane's top or low bits only, and port 0 (what empty entries
        // hold): the four-at-a-time compare must agree with a plain scan of the ring.
        let tricky = [
            0u16, 1, 0x7fff, 0x8000, 0x8001, 0xffff, 0xfffe, 0x0100, 0x00ff,
        ];
        let mut tr = Track::new(key(0), 0);
        let mut added: Vec<(Proto, u16)> = Vec::new();
        // Each tricky port in TCP, then in UDP, then in TCP again once the ring has wrapped
        // past it; fillers in between make it wrap.
        let fillers = || (0x4000u16..0x4010).map(|p| (Proto::Tcp, p));
        let round = |proto| tricky.iter().map(move |&p| (proto, p));
        let sequence = round(Proto::Tcp)
            .chain(round(Proto::Udp))
            .chain(fillers())
            .chain(round(Proto::Tcp))
            .chain(round(Proto::Tcp));
        for (proto, p) in sequence {
            let known = tr.ports().any(|q| q == (proto, p));
            assert_eq!(
                tr.add_port(proto, p),
                !known,
                "{proto:?}/{p} after {added:?}"
            );
            if !known {
                added.push((proto, p));
            }
            for &q in tricky.iter() {
                for pr in [Proto::Tcp, Proto::Udp] {
                    let expect = tr.ports().any(|x| x == (pr, q));
                    assert_eq!(tr.holds_port(pr.index(), q), expect, "{pr:?}/{q}");
                }
            }
        }
        assert!(
            !Track::new(key(1), 0).holds_port(Proto::Tcp.index(), 0),
            "empty ring"
        );
    }

    #[test]
    fn index_survives_heavy_churn() {
        let mut t = Table::new(100);
        for round in 0..50u32 {
            for i in 0..300u32 {
                t.get_or_insert(key(round * 1000 + i), u64::from(i));
            }
            // Everything the table claims to hold is findable, and nothing else.
            assert_eq!(t.len(), 100);
            for i in 200..300u32 {
                assert!(t.get(&key(round * 1000 + i)).is_some(), "{round} {i}");
            }
            for i in 0..10u32 {
                t.remove(&key(round * 1000 + 250 + i));
            }
            assert_eq!(t.len(), 90);
            assert!(t.get(&key(round * 1000 + 255)).is_none());
            assert!(t.get(&key(round * 1000 + 299)).is_some());
        }
    }

    #[test]
    fn leak_is_one_point_per_interval() {
        let mut tr = Track::new(key(0), 0);
        tr.score = 10 * 5_000; // 10 points at one per 5 s
        tr.slow = 10 * 600_000; // 10 points at one per 10 min
        tr.leak(12_500);
        assert_eq!(tr.score, 37_500, "2.5 points leaked");
        assert_eq!(tr.slow, 5_987_500, "0.02 points leaked");
        for t in 12_501..=13_000 {
            tr.leak(t); // a probe every millisecond still leaks
        }
        assert_eq!(tr.score, 37_000);
        assert!(!tr.is_spent());
        tr.leak(1_000_000);
        assert_eq!(tr.score, 0);
        assert!(!tr.is_spent(), "the slow score lasts longer");
        tr.leak(100_000_000);
        assert!(tr.is_spent());
        tr.leak(10);
        assert_eq!(tr.updated_ms, 100_000_000, "time never runs backwards");
    }
}
