#!/usr/bin/env bash
# What an auditor asks of scanban, answered from the code itself (docs/SECURITY.md, "How to
# audit this").
#
#   scripts/audit.sh            print the generated lists: every `unsafe` block with its SAFETY
#                               comment, and every netlink message type a builder can send
#   scripts/audit.sh --write    rewrite those lists in docs/SECURITY.md
#   scripts/audit.sh --syscalls (root) run scripts/demo.sh with the daemon under `strace -f`
#                               and rewrite docs/SECURITY.md's list of the syscalls it made
#   scripts/audit.sh --check    what CI runs (scripts/test.sh): the lists in docs/SECURITY.md
#                               are current, nothing cites notes outside the repository, and
#                               cargo-deny passes (deny.toml; advisories only where the
#                               advisory database can be fetched)
set -euo pipefail
cd "$(dirname "$0")/.."
doc=docs/SECURITY.md

# The generated lists, as markdown, from the sources of the crates linked into the binary.
generate() {
  python3 - <<'EOF'
import os, re

def sources(root):
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if f.endswith('.rs'):
                yield os.path.join(d, f)

def product_lines(path):
    """The file's lines up to its unit tests (`#[cfg(test)]` before `mod tests`)."""
    lines = open(path, encoding='utf-8').read().split('\n')
    for i, l in enumerate(lines):
        if l.strip() == '#[cfg(test)]' and i + 1 < len(lines) and lines[i + 1].lstrip().startswith('mod '):
            return lines[:i]
    return lines

def enclosing_fn(lines, i):
    fn = ty = None
    for j in range(i, -1, -1):
        l = lines[j]
        if fn is None:
            m = re.match(r'\s*(?:pub(?:\([a-z]+\))?\s+)?(?:const\s+)?fn\s+(\w+)', l)
            if m:
                fn = m.group(1)
                if not l.startswith(' '):
                    break
        else:
            m = re.match(r'impl(?:<[^>]*>)?\s+(?:\w+\s+for\s+)?(\w+)', l)
            if m:
                ty = m.group(1)
                break
            if re.match(r'\S', l) and not l.startswith('}') and not l.startswith('//') and not l.startswith('#'):
                break
    if fn is None:
        return '(module level)'
    return f'{ty}::{fn}' if ty else fn

crates = ['src', 'netlink/src', 'nft/src', 'detector/src']

print('### Unsafe blocks')
print()
print('Every `unsafe` in the crates linked into `scanban`, with the comment that says why it is')
print('sound (`#![deny(clippy::undocumented_unsafe_blocks)]` in `nfnl` makes the comment')
print('mandatory; the other crates `#![forbid(unsafe_code)]`).')
print()
print('| where | function | what | why it is sound |')
print('|---|---|---|---|')
count = 0
for root in crates:
    for path in sources(root):
        lines = open(path, encoding='utf-8').read().split('\n')
        for i, l in enumerate(lines):
            code = l.split('//')[0]
            if not re.search(r'\bunsafe\s*\{', code):
                continue
            count += 1
            # The SAFETY comment is the block of `//` lines just above the statement.
            j = i - 1
            while j >= 0 and not lines[j].strip().startswith('// SAFETY:') and lines[j].strip().startswith('//'):
                j -= 1
            safety = []
            if j >= 0 and lines[j].strip().startswith('// SAFETY:'):
                k = j
                while k < i and lines[k].strip().startswith('//'):
                    safety.append(lines[k].strip().lstrip('/').strip())
                    k += 1
            why = ' '.join(safety).removeprefix('SAFETY:').strip() or 'NO SAFETY COMMENT'
            stmt = l.strip()
            call = re.search(r'unsafe\s*\{\s*([\w:]+)', stmt)
            what = call.group(1) if call else None
            if what is None:
                nxt = lines[i + 1].strip() if i + 1 < len(lines) else ''
                m = re.match(r'([\w:]+)\(', nxt)
                what = m.group(1) if m else '?'
            print(f'| `{path}` | `{enclosing_fn(lines, i)}` | `{what}` | {why} |')
print()
print(f'{count} blocks.')
print()

print('### Netlink messages')
print()
print('Every netlink message type the `nfnl` and `nft` builders encode (outside tests), and the')
print('functions that encode it: nothing else can leave the binary on a netlink socket. Replies')
print('the code only parses (NEWGEN, queued packets, dump answers) are not listed.')
print()
prefix = {'nft/src': 'NFT_MSG_', 'netlink/src/queue': 'NFQNL_MSG_'}
found = {}
for root, pre in prefix.items():
    for path in sources(root):
        lines = product_lines(path)
        for i, l in enumerate(lines):
            code = l.split('//')[0]
            for m in re.finditer(r'(?<![=!]=\s)\b(msg|batch)::([A-Z_]+)\b(?!\s*=>)', code):
                kind, name = m.groups()
                if kind == 'batch':
                    if name not in ('BEGIN', 'END'):
                        continue
                    full = f'NFNL_MSG_BATCH_{name}'
                else:
                    full = pre + name
                found.setdefault(full, set()).add(f'`{enclosing_fn(lines, i)}` ({path})')
print('| message | encoded by |')
print('|---|---|')
for name in sorted(found):
    print(f'| `{name}` | {", ".join(sorted(found[name]))} |')
EOF
}

# Replaces the text between `<!-- NAME begin -->` and `<!-- NAME end -->` in the doc.
replace_block() { # name file-with-new-text
  python3 - "$doc" "$1" "$2" <<'EOF'
import sys
doc, name, new = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
s = open(doc).read()
b, e = f'<!-- {name} begin -->\n', f'<!-- {name} end -->'
i, j = s.index(b) + len(b), s.index(e)
open(doc, 'w').write(s[:i] + new + s[j:])
EOF
}

# The code and docs must explain themselves: no citation of notes that live outside the clone.
standalone() {
  local hits
  hits=$(git grep -n -I -E '\.\./shared|NETLINK-NOTES|\bG[0-9]{1,2}\b[,)–-]' -- . ':!scripts/audit.sh' || true)
  if [ -n "$hits" ]; then
    echo "these lines cite notes outside the repository; point them at docs/ instead:" >&2
    echo "$hits" >&2
    return 1
  fi
}

# cargo-deny: licenses, bans (duplicates, wildcards) and sources always; RustSec advisories
# against the database fetched now, or else a copy fetched earlier (`--offline`), or else
# skipped with a message: the database lives on GitHub, which some build machines cannot reach.
deny() {
  if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "== cargo install --locked cargo-deny (once per machine, about 4.5 minutes)"
    cargo install --locked --quiet cargo-deny
  fi
  cargo deny --log-level warn check bans licenses sources
  local out rc=0
  out=$(cargo deny --log-level warn check advisories 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "advisories ok"
    return
  fi
  if grep -q 'RUSTSEC-' <<<"$out" || ! grep -q 'failed to fetch advisory database' <<<"$out"; then
    echo "$out" >&2
    return 1
  fi
  rc=0
  out=$(cargo deny --offline --log-level warn check advisories 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "advisories ok, against the copy of the advisory database fetched earlier (no network)"
  elif grep -q 'RUSTSEC-' <<<"$out"; then
    echo "$out" >&2
    return 1
  else
    echo "advisories SKIPPED: the RustSec database cannot be fetched from this machine and no"
    echo "  copy was fetched before (run \`cargo deny fetch\` where GitHub is reachable)"
  fi
}

case "${1:-}" in
  "")
    generate
    ;;
  --write)
    tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
    generate >"$tmp"
    replace_block audit-lists "$tmp"
    ;;
  --syscalls)
    [ "$(id -u)" -eq 0 ] || { echo "scripts/audit.sh --syscalls: run as root" >&2; exit 1; }
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    # strace attaches to the wrapper, which then becomes the daemon: the demo's SIGTERM reaches
    # the daemon itself and its shutdown is traced too; strace ends when the daemon does.
    cat >"$tmp/wrap" <<WRAP
#!/usr/bin/env bash
strace -f -qq -o "$tmp/trace" -p \$\$ &
echo \$! >"$tmp/strace.pid"
until grep -q '^TracerPid:[[:space:]]*[1-9]' /proc/\$\$/status; do sleep 0.01; done
exec "\$@"
WRAP
    chmod +x "$tmp/wrap"
    SCANBAN_DEMO_WRAP="$tmp/wrap" bash scripts/demo.sh >/dev/null
    while kill -0 "$(cat "$tmp/strace.pid")" 2>/dev/null; do sleep 0.1; done
    {
      echo "The syscalls \`scanban run\` made in \`scripts/demo.sh\` (start, ruleset, an nmap SYN scan"
      echo "queued and banned, SIGTERM and shutdown; the demo's glibc build), every thread, by"
      echo "\`strace -f\` on Linux $(uname -r) $(uname -m), $(date -u +%Y-%m-%d):"
      echo
      # From the daemon's execve on: before it, the trace is the wrapper's own shell.
      sed -n '/execve("[^"]*scanban"/,$p' "$tmp/trace" |
        sed -nE 's/^[0-9]+ +([a-z_0-9]+)\(.*/\1/p' | sort -u |
        awk '{printf "%s`%s`", (NR > 1 ? ", " : ""), $1} END {print ""}' | fold -s -w 96 | sed "s/ *$//"
    } >"$tmp/block"
    replace_block audit-syscalls "$tmp/block"
    ;;
  --check)
    standalone
    tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
    generate >"$tmp"
    python3 - "$doc" "$tmp" <<'EOF' || { echo "run scripts/audit.sh --write and commit $doc" >&2; exit 1; }
import sys
s, new = open(sys.argv[1]).read(), open(sys.argv[2]).read()
b, e = '<!-- audit-lists begin -->\n', '<!-- audit-lists end -->'
cur = s[s.index(b) + len(b):s.index(e)]
if cur != new:
    print(f'{sys.argv[1]}: the generated audit lists are out of date', file=sys.stderr)
    sys.exit(1)
EOF
    grep -q 'NO SAFETY COMMENT' "$tmp" && { echo "an unsafe block has no SAFETY comment" >&2; exit 1; }
    deny
    ;;
  *)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
