#!/usr/bin/env python3
"""CycloneDX 1.5 SBOM of one scanban release binary: what is linked into it, from Cargo itself.

Usage: scripts/sbom.py TARGET BINARY > BINARY.cdx.json

The components are the crates `cargo tree -e normal --target TARGET` resolves for the binary
(normal dependencies with the features the release build enables; build scripts, proc-macros
and dev-dependencies are not in the binary and not listed), with the licenses Cargo reports,
crates.io checksums from Cargo.lock, and the dependency edges. The output depends only on the
commit and the binary: the serial number is derived from the binary's SHA-256 and the
timestamp is the commit's (SOURCE_DATE_EPOCH), so the SBOM is as reproducible as the binary.
docs/DEPENDENCIES.md says why this script rather than cargo-cyclonedx.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from datetime import datetime, timezone

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def spdx(expr):
    # Old Cargo manifests write "MIT/Apache-2.0" for "MIT OR Apache-2.0".
    return re.sub(r"\s*/\s*", " OR ", expr.strip()) if expr else None


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().split("\n")[2])
    target, binary = sys.argv[1], sys.argv[2]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    lock = tomllib.load(open(os.path.join(root, "Cargo.lock"), "rb"))
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
    sources = {(p["name"], p["version"]): p.get("source") for p in lock["package"]}

    # One line per node, depth first: "<depth>name vX.Y.Z|license|repository", with " (*)"
    # after a node whose dependencies were printed before.
    # SCANBAN_FEATURES: the cargo features of a release variant (scripts/release.sh, `tls`).
    features = os.environ.get("SCANBAN_FEATURES")
    tree = subprocess.run(
        ["cargo", "tree", "--locked", "-q", "-p", "scanban", "-e", "normal",
         "--target", target, "--prefix", "depth", "--format", "{p}|{l}|{r}"]
        + (["--features", features] if features else []),
        cwd=root, check=True, capture_output=True, text=True).stdout

    components, edges, stack, skip_below = {}, {}, [], None
    for line in tree.splitlines():
        m = re.match(r"^(\d+)(\S+) v(\S+)( \([^)]*\))?\|([^|]*)\|([^|]*?)(?: \(\*\))?$", line)
        if not m:
            sys.exit(f"sbom.py: unexpected cargo tree line: {line!r}")
        depth, name, version, note, lic, repo = int(m[1]), m[2], m[3], m[4], m[5], m[6]
        # A proc-macro runs in the compiler, not in the binary: leave it and what it uses out.
        if skip_below is not None and depth > skip_below:
            continue
        skip_below = None
        if note == " (proc-macro)":
            skip_below = depth
            continue
        source = sources.get((name, version))
        ref = f"pkg:cargo/{name}@{version}" if source == CRATES_IO else f"scanban/{name}@{version}"
        if ref not in components:
            c = {"type": "library", "bom-ref": ref, "name": name, "version": version}
            if source == CRATES_IO:
                c["purl"] = ref
                if checksums.get((name, version)):
                    c["hashes"] = [{"alg": "SHA-256", "content": checksums[(name, version)]}]
            if spdx(lic):
                c["licenses"] = [{"expression": spdx(lic)}]
            if repo:
                c["externalReferences"] = [{"type": "vcs", "url": repo}]
            components[ref] = c
            edges.setdefault(ref, set())
        del stack[depth:]
        if stack:
            edges[stack[-1]].add(ref)
        stack.append(ref)

    main_ref = next(iter(components))
    app = components.pop(main_ref)
    app["type"] = "application"
    app["hashes"] = [{"alg": "SHA-256", "content": hashlib.sha256(open(binary, "rb").read()).hexdigest()}]
    app["properties"] = [{"name": "rust:target", "value": target}]

    epoch = os.environ.get("SOURCE_DATE_EPOCH") or subprocess.run(
        ["git", "log", "-1", "--format=%ct"], cwd=root, check=True, capture_output=True,
        text=True).stdout.strip()
    stamp = datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                     "scanban-sbom:" + app["hashes"][0]["content"])),
        "version": 1,
        "metadata": {
            "timestamp": stamp,
            "tools": {"components": [{"type": "application", "name": "scanban scripts/sbom.py"}]},
            "component": app,
        },
        "components": sorted(components.values(), key=lambda c: c["bom-ref"]),
        "dependencies": [{"ref": r, "dependsOn": sorted(d)} for r, d in sorted(edges.items())],
    }
    json.dump(bom, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
