//! The bounded table of tracked sources: a hash index over a preallocated slab, evicting by
//! CLOCK (second chance).
//!
//! Eviction: each track has a referenced flag, set when a tracked source is seen again (in the
//! track's first cache line, which that probe writes anyway) and left clear on a new track. When
//! the table is full, a hand walks the slots in a circle: a referenced track is cleared and
//! passed over, the first unreferenced one is evicted, and the new track takes its slot, just
//! behind the hand. Seeing a source writes nothing but its own track (an exact
//! least-recently-seen list wrote its neighbours' links and the head's, three more cache lines
//! per probe). The hand's steps are amortised O(1): each step past the one that evicts clears a
//! flag that a probe set.
//!
//! What this guarantees (tested below): a track seen at time T is not evicted before the hand
//! has passed its slot once after T and then come round again. Between those two passes the
//! hand visits each of the other `capacity - 1` slots once, and each visit either evicts (a new
//! source is tracked) or clears the flag of a source seen again since the hand's previous visit.
//! So evicting a source that keeps probing takes, per lap of the hand, `capacity - 1` other
//! sources seen (new, or seen again since the hand last passed them): the rate an exact
//! least-recently-seen order demands (`capacity - 1` other sources between two of its probes),
//! though part of a lap's may come before the source's last probe. Under a flood of new sources
//! alone, a track seen at T survives at least `capacity - 1 - R` evictions, R being the other
//! tracks referenced at T (seen again since the hand last passed them; none among the flood's
//! own, which start unreferenced), where an exact least-recently-seen order gives
//! `capacity - 1`: a flood that follows repeats of R other sources can evict it up to R
//! evictions sooner.
//!
//! Memory is bounded at construction, so a flood of spoofed sources costs evictions, never growth
//! or allocation (the slab and the index are reserved up front; the kernel maps their pages as
//! they are first written, so an idle table costs next to nothing). The index is open addressing
//! with linear probing over twice as many u32 buckets as sources (load ≤ 1/2), with backward-shift
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
    /// The port added last, `(proto << 16) | port` (`NO_PORT` before the first): a retry of
    /// it, the commonest repeat, is told from the first cache line alone.
    last_port: u32,
    /// Seen again since the eviction hand last passed (CLOCK's second chance): 0 or 1.
    referenced: u8,
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
            referenced: 0,
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

    /// Whether both scores will have leaked to nothing by `now_ms` (the track unchanged).
    fn spent_at(&self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.updated_ms);
        self.score <= elapsed && self.slow <= elapsed
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
    /// Per slot, a number its user keeps with the track (`hint`), apart from it: its address is
    /// known as soon as the slot is, so its load need not wait for the track's.
    hints: Vec<u32>,
    free: Vec<u32>,
    capacity: usize,
    /// CLOCK's hand: the slot the next eviction looks at first.
    hand: u32,
    /// Where `forget_spent` looks next.
    sweep: u32,
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
            hints: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            capacity,
            hand: 0,
            sweep: 0,
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

    /// The source's track: if tracked, marked seen again (`touch`); if not, created unreferenced
    /// (evicting one by CLOCK if full).
    pub fn get_or_insert(&mut self, key: SourceKey, now_ms: u64) -> (&mut Track, Inserted) {
        if let Some(i) = self.find(&key) {
            return (self.touch(i), Inserted::Existing);
        }
        let (i, how) = self.insert(key, now_ms);
        (&mut self.slots[i as usize], how)
    }

    /// Reads both cache lines of slot `i`'s track (if there is one): loads them ahead of use.
    /// What it returns is of no use but to keep the reads.
    #[inline]
    pub fn load(&self, i: u32) -> u64 {
        self.slots
            .get(i as usize)
            .map_or(0, |t| t.updated_ms ^ t.ports[0])
    }

    /// The slot of `key`'s track, if tracked.
    pub fn find(&self, key: &SourceKey) -> Option<u32> {
        Some(self.index.find(key, &self.slots)?.1)
    }

    /// The track in slot `i` (from `find`), marked seen again: the hand passes over it once
    /// more before it can be evicted. Writes the track's first line and nothing else.
    #[inline]
    pub fn touch(&mut self, i: u32) -> &mut Track {
        let track = &mut self.slots[i as usize];
        track.referenced = 1;
        track
    }

    /// A new track for `key`, which must not be tracked (evicting one by CLOCK if full), not
    /// referenced: a source seen once is the first to go. Its slot.
    pub fn insert(&mut self, key: SourceKey, now_ms: u64) -> (u32, Inserted) {
        let mut how = Inserted::New;
        let i = if let Some(i) = self.free.pop() {
            i
        } else if self.slots.len() < self.capacity {
            self.slots.push(Track::new(key, now_ms));
            self.hints.push(NONE);
            (self.slots.len() - 1) as u32
        } else {
            let victim = self.advance_hand();
            let old = self.slots[victim as usize].key;
            if let Some((b, _)) = self.index.find(&old, &self.slots) {
                self.index.remove_at(b, &self.slots);
            }
            how = Inserted::NewAfterEviction;
            victim
        };
        self.slots[i as usize] = Track::new(key, now_ms);
        self.hints[i as usize] = NONE;
        self.index.insert(&key, i);
        (i, how)
    }

    /// CLOCK: from the hand on, clears referenced tracks and stops at the first unreferenced
    /// one, leaving the hand just past it. Called on a full table (every slot holds a track),
    /// so it stops within one lap: by then every flag it passed is clear.
    fn advance_hand(&mut self) -> u32 {
        let n = self.slots.len() as u32;
        loop {
            let i = self.hand;
            self.hand = if i + 1 >= n { 0 } else { i + 1 };
            let track = &mut self.slots[i as usize];
            if track.referenced == 0 {
                return i;
            }
            track.referenced = 0;
        }
    }

    /// The slot holding `key`, if `i` is it (a cheap check of a remembered slot: a freed slot
    /// holds no key).
    pub fn holds(&self, i: u32, key: &SourceKey) -> bool {
        self.slots.get(i as usize).is_some_and(|t| t.key == *key)
    }

    /// Every track, in no particular order (a reload rescales scores).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut Track)) {
        for t in self.slots.iter_mut().filter(|t| t.key != FREED) {
            f(t);
        }
    }

    pub fn get(&self, key: &SourceKey) -> Option<&Track> {
        let (_, i) = self.index.find(key, &self.slots)?;
        Some(&self.slots[i as usize])
    }

    pub fn remove(&mut self, key: &SourceKey) -> Option<Track> {
        let (b, i) = self.index.find(key, &self.slots)?;
        self.index.remove_at(b, &self.slots);
        self.free.push(i);
        let track = self.slots[i as usize];
        self.slots[i as usize].key = FREED;
        Some(track)
    }

    /// The hint kept with slot `i` (`u32::MAX` until set): the detector keeps a source's guess at
    /// its prefix's slot in the prefix table here (checked against that slot's key before use),
    /// which spares the prefix tier a hash and an index lookup per new port, and lets the
    /// prefix's track be loaded alongside the source's.
    #[inline]
    pub fn hint(&self, i: u32) -> u32 {
        self.hints[i as usize]
    }

    pub fn set_hint(&mut self, i: u32, hint: u32) {
        self.hints[i as usize] = hint;
    }

    /// The track in slot `i` (from `find` or `insert`), leaving its referenced flag alone.
    pub fn at_mut(&mut self, i: u32) -> &mut Track {
        &mut self.slots[i as usize]
    }

    /// Forgets the tracks whose scores have leaked to nothing by `now_ms` among the next
    /// `max_slots` slots of a sweep that goes round the slab (each slot at most once a call):
    /// bounded work per call, and a spent track is forgotten within
    /// `capacity / max_slots` calls. How many it forgot.
    pub fn forget_spent(&mut self, now_ms: u64, max_slots: usize) -> usize {
        let n = self.slots.len();
        let mut forgotten = 0;
        for _ in 0..max_slots.min(n) {
            let i = self.sweep as usize % n;
            self.sweep = ((i + 1) % n) as u32;
            let track = &self.slots[i];
            if track.key != FREED && track.spent_at(now_ms) {
                let key = track.key;
                self.remove(&key);
                forgotten += 1;
            }
        }
        forgotten
    }

    /// Bytes one tracked source costs: its slab slot, its hint, its free-list entry, and two index
    /// buckets (twice the capacity, rounded up to a power of two; four in a table of 4,097 to
    /// 8,192 sources, as each of the daemon's shards, whose index is `FRESH_BUCKETS`). CLOCK's
    /// flag lives in the slot's padding: no list links.
    pub fn bytes_per_source() -> usize {
        std::mem::size_of::<Track>()
            + 2 * std::mem::size_of::<u32>()
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
    fn evicts_the_first_unreferenced_from_the_hand() {
        let mut t = Table::new(3);
        for i in 0..3 {
            t.get_or_insert(key(i), 0);
        }
        t.get_or_insert(key(0), 1); // 0 is seen again: referenced; 1 and 2 are not
        let (_, how) = t.get_or_insert(key(9), 2);
        assert_eq!(how, Inserted::NewAfterEviction);
        assert!(
            t.get(&key(1)).is_none(),
            "the hand passed 0 over and took 1"
        );
        assert!(t.get(&key(0)).is_some());
        assert_eq!(t.len(), 3);
        t.remove(&key(2));
        assert_eq!(t.len(), 2);
        let (_, how) = t.get_or_insert(key(10), 3);
        assert_eq!(how, Inserted::New, "a freed slot is reused before evicting");
        // Full again: the hand goes on from 1's slot, to 10 (in 2's, seen once), then to 0,
        // whose second chance is spent, before it comes to 9 (taken into 1's slot).
        t.get_or_insert(key(11), 4);
        assert!(t.get(&key(10)).is_none());
        t.get_or_insert(key(12), 5);
        assert!(t.get(&key(0)).is_none());
        assert!(t.get(&key(9)).is_some() && t.get(&key(11)).is_some());
    }

    /// Tracks referenced now other than `key`'s.
    fn referenced_besides(t: &Table, key: &SourceKey) -> usize {
        t.slots
            .iter()
            .filter(|tr| tr.referenced != 0 && tr.key != *key && tr.key != FREED)
            .count()
    }

    /// xorshift64: a fixed, reproducible spread of cases without a dependency.
    fn next(rng: &mut u64) -> u64 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    }

    #[test]
    fn a_touched_track_outlives_a_flood_of_new_sources() {
        // Whatever the table went through before (sources seen again, evictions that left the
        // hand anywhere), a source seen at T survives at least `capacity - 1 - R` evictions of
        // a flood of new sources, R the other tracks referenced at T; `capacity - 1` (what an
        // exact least-recently-seen order gives) when R is 0.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut fresh = 1_000_000u32;
        for case in 0..2_000u32 {
            let cap = 1 + (next(&mut rng) % 40) as usize;
            let mut t = Table::new(cap);
            // A history: new sources and repeats of tracked ones, in a random mix.
            let pool = (cap * 2) as u64;
            for _ in 0..next(&mut rng) % (4 * pool) {
                t.get_or_insert(key((next(&mut rng) % pool) as u32), 0);
            }
            while t.len() < cap {
                fresh += 1;
                t.get_or_insert(key(fresh), 0);
            }
            let x = t.slots[(next(&mut rng) % cap as u64) as usize].key;
            t.get_or_insert(x, 1);
            let r = referenced_besides(&t, &x);
            let mut evictions = 0;
            loop {
                fresh += 1;
                let (_, how) = t.get_or_insert(key(fresh), 2);
                assert_eq!(how, Inserted::NewAfterEviction);
                if t.get(&x).is_none() {
                    break;
                }
                evictions += 1;
                assert!(evictions < 2 * cap, "case {case}: never evicted");
            }
            assert!(
                evictions + 1 >= cap - r,
                "case {case}: capacity {cap}, {r} others referenced: evicted after {evictions}"
            );
        }
    }

    #[test]
    fn the_flood_bound_is_exact() {
        // Every other track referenced and the hand on the source's slot: one lap clears them
        // all and the next new source takes its slot (R = capacity - 1: no eviction survived).
        let mut t = Table::new(4);
        for i in 0..4 {
            t.get_or_insert(key(i), 0);
        }
        for i in 0..4 {
            t.get_or_insert(key(i), 1);
        }
        assert_eq!(referenced_besides(&t, &key(0)), 3);
        t.get_or_insert(key(100), 2);
        assert!(t.get(&key(0)).is_none());
        // With nothing else referenced, a source seen once more outlives `capacity - 1` of
        // them, wherever the hand is.
        for start in 0..4u32 {
            let mut t = Table::new(4);
            for i in 0..4 {
                t.get_or_insert(key(i), 0);
            }
            for i in 0..start {
                t.get_or_insert(key(200 + i), 0); // moves the hand on
            }
            let x = t.slots[0].key;
            t.get_or_insert(x, 1);
            for i in 0..3 {
                t.get_or_insert(key(300 + i), 2);
                assert!(t.get(&x).is_some(), "hand from {start}, eviction {i}");
            }
        }
    }

    #[test]
    fn a_source_that_keeps_probing_is_never_evicted_by_a_flood() {
        // Seen again once every `capacity - 1` new sources, as an exact least-recently-seen order
        // would keep it: CLOCK keeps it too (the flood's own tracks are never referenced).
        let cap = 64;
        let mut t = Table::new(cap);
        let scanner = key(0);
        t.get_or_insert(scanner, 0);
        for i in 1..20_000u32 {
            t.get_or_insert(key(i), 0);
            if i % (cap as u32 - 1) == 0 {
                let (_, how) = t.get_or_insert(scanner, 0);
                assert_eq!(how, Inserted::Existing, "after {i} new sources");
            }
        }
    }

    #[test]
    fn spent_tracks_are_forgotten_a_bounded_number_at_a_time() {
        let mut t = Table::new(10);
        for i in 0..10u32 {
            let (tr, _) = t.get_or_insert(key(i), 0);
            // Odd sources still count at 1 s; even ones are spent.
            tr.score = if i % 2 == 1 { 5_000 } else { 0 };
        }
        assert!(
            t.forget_spent(1_000, 4) <= 2,
            "4 slots looked at, 2 of them spent"
        );
        let mut calls = 1;
        while t.len() > 5 {
            t.forget_spent(1_000, 4);
            calls += 1;
        }
        assert!(calls <= 3, "10 slots, 4 a call: {calls} calls");
        assert!((0..10u32).all(|i| t.get(&key(i)).is_some() == (i % 2 == 1)));
        assert_eq!(t.forget_spent(10_000, 100), 5, "each slot once a call");
        assert!(t.is_empty());
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
