#!/usr/bin/env python3
"""Checks that every fenced code block of README.md and docs/*.md is a file
of this repository, or a marked region of one, character for character.

A block names its source in the paragraph just before it, with a Markdown
link to the file (the paragraph's last link into the repository):

    C++ ([`demos/s01_process.cpp`](demos/s01_process.cpp#tour)):
    ```cpp
    ...
    ```

A link is relative to the page that holds it (`../demos/...` in docs/).
The block must equal the whole file, or with `#NAME` the lines between the
comment lines `readme: begin NAME` and `readme: end NAME` (`//` or `#`
comments). A block that names no file, a missing file or region, or any
difference fails the check, as does a local link (outside code blocks)
to a missing file, or to a missing heading of a page. Besides, every Python file shown must compile,
every shell script shown must parse (sh -n), and with

  --build DIR  every C++ source shown must be compiled by the Ninja build
               tree DIR (CI: the tree `./run.sh test` built, with warnings as
               errors), so the README's C++ is known to compile; except
               tests/compile_fail/, whose tests check that it does not;
  --seed FILE  every seed scenario shown (demos/python/sNN_*.py) must be one
               of the Python blocks of the seed document FILE (trailing
               blanks aside).

usage: tools/check_readme.py [--build DIR] [--seed FILE] [PAGE...]
       (default: README.md and every docs/*.md)
"""

import argparse
import difflib
import glob
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


def source(link, page_dir):
    """The text a link names: a whole file, or a region of it; the path
    returned is relative to the top of the repository."""
    path, _, region = link.partition("#")
    full = os.path.normpath(os.path.join(page_dir, path))
    path = os.path.relpath(full, ROOT)
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


def anchors(path):
    """The anchors of a Markdown page's headings, as GitHub makes them."""
    out, fence = set(), None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = FENCE.match(line.rstrip("\n"))
            if m:
                fence = None if fence else m.group(2)[0]
                continue
            h = re.match(r"^#{1,6} (.*)$", line)
            if h and fence is None:
                a = re.sub(r"[^\w\- ]", "", h.group(1).strip().lower())
                out.add(a.replace(" ", "-"))
    return out


def dead_links(text, page, page_dir):
    """Local links (outside code blocks) whose file or heading is missing."""
    errors, fence = [], None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if m:
            fence = None if fence else m.group(2)[0]
            continue
        if fence:
            continue
        for target in LINK.findall(line):
            if "://" in target or target.startswith("mailto:"):
                continue
            path, _, frag = target.partition("#")
            full = (os.path.normpath(os.path.join(page_dir, path)) if path
                    else page)
            if not os.path.exists(full):
                errors.append(f"{os.path.relpath(page)}:{n}: link to "
                              f"{target}: no such file")
            elif frag and full.endswith(".md") and frag not in anchors(full):
                errors.append(f"{os.path.relpath(page)}:{n}: link to "
                              f"{target}: no such heading")
    return errors


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
    ap.add_argument("pages", nargs="*")
    args = ap.parse_args()
    pages = args.pages or [os.path.join(ROOT, "README.md")] + sorted(
        glob.glob(os.path.join(ROOT, "docs", "*.md")))

    compiled = None
    if args.build:
        out = subprocess.run(["ninja", "-C", args.build, "-t", "commands"],
                             check=True, capture_output=True, text=True).stdout
        compiled = set(re.findall(r" -c (\S+)", out))
    seed = python_blocks(args.seed) if args.seed else None

    failed = 0
    for page in pages:
        failed += check(page, compiled, seed, args)
    return 1 if failed else 0


def check(page, compiled, seed, args):
    """Checks one page; returns 1 when a block fails."""
    with open(page, encoding="utf-8") as f:
        readme = f.read()
    name = os.path.relpath(page)
    page_dir = os.path.dirname(os.path.abspath(page))
    errors = dead_links(readme, os.path.abspath(page), page_dir)
    count = 0
    for line, link, body in blocks(readme):
        count += 1
        where = f"{name}:{line}"
        if link is None:
            errors.append(f"{where}: the block names no file (end the "
                          "paragraph before it with a link to its file)")
            continue
        try:
            path, text = source(link, page_dir)
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
