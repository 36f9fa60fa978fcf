#!/usr/bin/env python3
"""The table at the end of scripts/test: where a test run's time went.

    scripts/test_phases.py LOGS_DIR [CARGO_TIMING_HTML]

LOGS_DIR holds phases.tsv (name, start and length in seconds, exit code per phase; phases that ran
in the background overlap the others) and each phase's log. The build
phase is split with cargo's --timings report into dependencies, the workspace's crates and what
only the tests need (test harnesses, integration tests): for each, the compile seconds summed
over crates (on 2 cores about twice the wall time they cover) and when, after the build started,
the last of them finished. The cargo-test phase is split per test binary (each harness's own
'finished in'), with the number of tests.
"""

import json
import os
import re
import sys

WORKSPACE = {"model", "server", "app", "frontend", "xtask"}


def read_phases(logs):
    rows = []
    with open(os.path.join(logs, "phases.tsv")) as f:
        for line in f:
            name, start, seconds, rc = line.rstrip("\n").split("\t")
            rows.append((name, int(start), int(seconds), int(rc)))
    return rows


def timing_units(html_path):
    """cargo's --timings report: its UNIT_DATA array (name, target, mode, start, duration)."""
    if not html_path or not os.path.exists(html_path):
        return []
    text = open(html_path, encoding="utf-8", errors="replace").read()
    m = re.search(r"UNIT_DATA\s*=\s*(\[.*?\]);\s*\n", text, re.S)
    if not m:
        return []
    try:
        return json.loads(m.group(1))
    except json.JSONDecodeError:
        return []


def split_build(units):
    groups = {"dependencies": [], "workspace crates": [], "test-only (harnesses, integration tests)": []}
    for u in units:
        name, target, mode = u.get("name", ""), u.get("target", ""), u.get("mode", "")
        if name not in WORKSPACE:
            groups["dependencies"].append(u)
        elif "test" in target or mode == "test":
            groups["test-only (harnesses, integration tests)"].append(u)
        else:
            groups["workspace crates"].append(u)
    out = []
    for label, us in groups.items():
        if us:
            busy = sum(u.get("duration", 0.0) for u in us)
            done = max(u.get("start", 0.0) + u.get("duration", 0.0) for u in us)
            out.append((label, len(us), busy, done))
    return out


def test_binaries(log_path):
    """(binary, tests passed, failed, ignored, seconds) per test harness in a cargo test log."""
    if not os.path.exists(log_path):
        return []
    rows, current, package = [], None, None
    running = re.compile(r"^\s*Running (?:unittests )?(\S+) \(.*?/deps/([A-Za-z0-9_]+)-[0-9a-f]+\)")
    result = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored.*finished in ([\d.]+)s")
    for line in open(log_path, encoding="utf-8", errors="replace"):
        m = running.search(line)
        if m:
            path, binary = m.groups()
            if path.startswith("src/"):
                package = binary
                current = f"{binary} {path}"
            else:
                # Integration tests are named `it` in each crate: tell them apart by the crate
                # whose unit tests cargo ran just before.
                current = f"{package or '?'} {path}"
            continue
        m = result.search(line)
        if m and current:
            p, f, i, s = m.groups()
            rows.append((current, int(p), int(f), int(i), float(s)))
            current = None
    return rows


def playwright(log_path):
    if not os.path.exists(log_path):
        return None
    text = open(log_path, encoding="utf-8", errors="replace").read()
    passed = re.search(r"(\d+) passed", text)
    failed = re.search(r"(\d+) failed", text)
    return (int(passed.group(1)) if passed else 0, int(failed.group(1)) if failed else 0)


def main():
    logs = sys.argv[1]
    html = sys.argv[2] if len(sys.argv) > 2 else None
    phases = sorted(read_phases(logs), key=lambda p: p[1])
    # Background phases overlap the others: the run took from the first start to the last end.
    total = max((start + seconds for _, start, seconds, _ in phases), default=0)
    print("\n## Where the time went\n")
    print("| phase | wall | result |\n|---|---:|---|")
    for name, start, seconds, rc in phases:
        print(f"| {name} (from {start} s) | {seconds} s | {'ok' if rc == 0 else f'exit {rc}'} |")
        if name == "build":
            for label, n, busy, done in split_build(timing_units(html)):
                print(f"| &nbsp;&nbsp;build: {label}, {n} units | done at {done:.0f} s | {busy:.0f} s compiling |")
        if name == "cargo-test":
            for binary, p, f, i, s in test_binaries(os.path.join(logs, "cargo-test.log")):
                print(f"| &nbsp;&nbsp;run: {binary} | {s:.1f} s | {p} passed, {f} failed, {i} ignored |")
        if name == "playwright":
            pw = playwright(os.path.join(logs, "playwright.log"))
            if pw:
                print(f"| &nbsp;&nbsp;Playwright tests | | {pw[0]} passed, {pw[1]} failed |")
    print(f"| **total** | **{total} s ({total / 60:.1f} min)** | |")
    tests = test_binaries(os.path.join(logs, "cargo-test.log"))
    if tests:
        passed = sum(t[1] for t in tests)
        failed = sum(t[2] for t in tests)
        print(f"\ncargo tests: {passed} passed, {failed} failed, in {len(tests)} test binaries")


if __name__ == "__main__":
    main()
