#!/usr/bin/env python3
"""Checks that need only the compiler, over lib/ and daemon/ (scripts/test.sh runs it).

1. Clang's thread-safety analysis: every translation unit under lib/ and daemon/ that the
   build at BUILD_DIR compiles is parsed by clang++ with -fsyntax-only -Wthread-safety
   -Werror=thread-safety, with the build's own include paths and definitions (from its
   compile_commands.json). A locking mistake in annotated code (a GUARDED_BY field read
   without its mutex, a REQUIRES function called without it) fails the check. Nothing is
   compiled to object code, so this takes a fraction of a build.
2. clang-format: every tracked .h/.cc under lib/ and daemon/ is formatted (.clang-format).

Usage: check_sources.py BUILD_DIR [--jobs N]
Exit: 0 if both hold; 1 with the offending files and diagnostics otherwise; 77 if clang++
or clang-format is missing (scripts/install-deps.sh installs them).
"""

import argparse
import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKED = ("lib/", "daemon/")


def clang_args(entry):
    """The entry's compile command as a clang++ -fsyntax-only command."""
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    out = ["clang++"]
    skip = 0
    for i, a in enumerate(args):
        if i == 0 or skip:
            skip = max(0, skip - 1)
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = 1
            continue
        if a in ("-c", "-MD", "-MMD") or a.startswith("-fsanitize"):
            continue
        if a.endswith("ccache") or a == "ccache":
            continue
        out.append(a)
    # The build's warnings stay on (without -Werror: GCC and Clang disagree on some);
    # thread safety is the error that counts here.
    out = [a for a in out if a != "-Werror"]
    return out + ["-fsyntax-only", "-Wno-unknown-warning-option", "-Wthread-safety",
                  "-Werror=thread-safety"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir")
    parser.add_argument("--jobs", type=int, default=2)
    opts = parser.parse_args()

    if not shutil.which("clang++") or not shutil.which("clang-format"):
        print("check_sources: clang++ or clang-format missing (scripts/install-deps.sh)")
        return 77

    with open(os.path.join(opts.build_dir, "compile_commands.json")) as f:
        entries = json.load(f)
    units = {}
    for e in entries:
        path = os.path.relpath(os.path.join(e["directory"], e["file"]), ROOT)
        if path.startswith(CHECKED) and path.endswith(".cc"):
            units.setdefault(path, e)  # A source built into two targets: once.

    failures = []

    def check(item):
        path, entry = item
        proc = subprocess.run(clang_args(entry), cwd=entry["directory"], capture_output=True,
                              text=True)
        return path, proc.returncode, proc.stderr

    with concurrent.futures.ThreadPoolExecutor(max_workers=opts.jobs) as pool:
        for path, rc, err in pool.map(check, sorted(units.items())):
            if rc != 0:
                failures.append(f"thread safety: {path}\n{err}")
    print(f"check_sources: {len(units)} translation units under lib/ and daemon/ parsed "
          f"with -Wthread-safety: {len(units) - len(failures)} clean")

    tracked = subprocess.run(["git", "ls-files", "--", "lib/*.h", "lib/*.cc", "daemon/*.h",
                              "daemon/*.cc"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    unformatted = []
    for path in tracked:
        proc = subprocess.run(["clang-format", "--dry-run", "--Werror", path], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            unformatted.append(path)
    print(f"check_sources: {len(tracked)} files under lib/ and daemon/ checked with "
          f"clang-format: {len(tracked) - len(unformatted)} formatted")
    for path in unformatted:
        failures.append(f"clang-format: {path} is not formatted (clang-format -i {path})")

    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
