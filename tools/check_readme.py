#!/usr/bin/env python3
"""Checks that every fenced code block of README.md is a file of this
repository, or a marked region of one, character for character.

A block names its source in the paragraph just before it, with a Markdown
link to the file (the paragraph's last link into the repository):

    C++ ([`demos/s01_process.cpp`](demos/s01_process.cpp#tour)):
    ```cpp
    ...
    ```

The block must equal the whole file, or with `#NAME` the lines between the
comment lines `readme: begin NAME` and `readme: end NAME` (`//` or `#`
comments). A block that names no file, a missing file or region, or any
difference fails the check. Besides, every Python file shown must compile,
every shell script shown must parse (sh -n), and with

  --build DIR  every C++ source shown must be compiled by the Ninja build
               tree DIR (CI: the tree `./run.sh test` built, with warnings as
               errors), so the README's C++ is known to compile; except
               tests/compile_fail/, whose tests check that it does not;
  --seed FILE  every seed scenario shown (demos/python/sNN_*.py) must be one
               of the Python blocks of the seed document FILE (trailing
               blanks aside).

usage: tools/check_readme.py [--build DIR] [--seed FILE] [README]
"""

import argparse
import difflib
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MARKER = re.compile(r"^\s*(?://|#)\s*readme:\s*(begin|end)\s+(\S+)\s*$")


def blocks(text):
    """Yields (line number, source link or None, content) per fenced block."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m.group(1)), m.group(2)
        start = i
        # The paragraph just before the block, and its last local link.
        j = start
        while j > 0 and not lines[j - 1].strip():
            j -= 1
        caption = []
        while j > 0 and lines[j - 1].strip():
            j -= 1
            caption.insert(0, lines[j])
        links = [t for t in LINK.findall(" ".join(caption)) if "://" not in t]
        body = []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if (close and close.group(2)[0] == fence[0]
                    and len(close.group(2)) >= len(fence)
                    and not close.group(3).strip()):
                break
            line = lines[i]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
            i += 1
        i += 1
        yield start + 1, (links[-1] if links else None), "".join(
            l + "\n" for l in body)


def source(link):
    """The text a link names: a whole file, or a region of it."""
    path, _, region = link.partition("#")
    full = os.path.join(ROOT, path)
    if not os.path.isfile(full):
        raise LookupError(f"{path}: no such file")
    with open(full, encoding="utf-8") as f:
        text = f.read()
    if not region:
        return path, text
    inside, found, out = False, False, []
    for line in text.split("\n"):
        m = MARKER.match(line)
        if m and m.group(2) == region:
            if m.group(1) == "begin":
                inside, found = True, True
            else:
                inside = False
            continue
        if inside:
            out.append(line + "\n")
    if not found or inside:
        raise LookupError(f"{path}: no complete region '{region}' "
                          f"(readme: begin {region} ... readme: end {region})")
    return path, "".join(out)


def python_blocks(seed):
    with open(seed, encoding="utf-8") as f:
        text = f.read()
    return {normal(b) for b in re.findall(r"```python\n(.*?)```", text, re.S)}


def normal(text):
    return "\n".join(l.rstrip() for l in text.strip("\n").split("\n"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", help="a Ninja build tree that must compile "
                                    "every C++ source shown")
    ap.add_argument("--seed", help="the seed document the seed scenarios' "
                                   "Python comes from")
    ap.add_argument("readme", nargs="?", default=os.path.join(ROOT, "README.md"))
    args = ap.parse_args()

    compiled = None
    if args.build:
        out = subprocess.run(["ninja", "-C", args.build, "-t", "commands"],
                             check=True, capture_output=True, text=True).stdout
        compiled = set(re.findall(r" -c (\S+)", out))
    seed = python_blocks(args.seed) if args.seed else None

    with open(args.readme, encoding="utf-8") as f:
        readme = f.read()
    name = os.path.relpath(args.readme)
    errors = []
    count = 0
    for line, link, body in blocks(readme):
        count += 1
        where = f"{name}:{line}"
        if link is None:
            errors.append(f"{where}: the block names no file (end the "
                          "paragraph before it with a link to its file)")
            continue
        try:
            path, text = source(link)
        except LookupError as e:
            errors.append(f"{where}: {e}")
            continue
        if body != text:
            diff = difflib.unified_diff(text.splitlines(), body.splitlines(),
                                        link, f"{where}", lineterm="", n=1)
            errors.append(f"{where}: differs from {link}\n" + "\n".join(diff))
        full = os.path.join(ROOT, path)
        if path.endswith(".py"):
            try:
                compile(text, path, "exec")
            except SyntaxError as e:
                errors.append(f"{where}: {path} does not compile: {e}")
            if (seed is not None
                    and re.match(r"demos/python/s\d\d_", path)
                    and normal(text) not in seed):
                errors.append(f"{where}: {path} is not a Python block of "
                              f"{args.seed}")
        elif path.endswith(".sh"):
            if subprocess.run(["sh", "-n", full]).returncode != 0:
                errors.append(f"{where}: {path} does not parse")
        elif (path.endswith((".cpp", ".cc", ".cxx")) and compiled is not None
              # Must not compile: its "compile: rejects" test checks that.
              and not path.startswith("tests/compile_fail/")):
            if full not in compiled:
                errors.append(f"{where}: {path} is not compiled by the "
                              f"build tree {args.build}")

    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"{name}: {len(errors)} of {count} code blocks fail",
              file=sys.stderr)
        return 1
    print(f"{name}: {count} code blocks, each equal to the file or region "
          "it names" + (", C++ compiled" if compiled is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
