#!/usr/bin/python3
"""Every relative link and #anchor in the project's Markdown resolves.

  check-links.py SOURCE_DIR            README.md, docs/*.md and tests/e2e/README.md of SOURCE_DIR
  check-links.py --files FILE...       those files only (the self-test uses this)

A link [text](target) or <a href>, outside code spans and fenced code, is checked when it is
relative: the file (or directory) must exist, and an anchor (#frag, alone or after a .md file)
must be the GitHub slug of a heading of the target: lower case, punctuation other than '-' and
'_' dropped, spaces made '-', a repeated heading numbered '-1', '-2'. External links (a scheme,
mailto:) are not fetched: CI has no network. Exits 1 listing each broken link as FILE:LINE.
"""
import os
import re
import sys
import unicodedata

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the target stops at whitespace or ')'.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
# [label]: target
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HREF = re.compile(r"<a\s[^>]*href=\"([^\"]*)\"", re.I)


def slug(text):
    """GitHub's anchor for a heading's text."""
    text = CODE_SPAN.sub(lambda m: m.group(2), text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    out = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if ch in "-_" or ch == " ":
            out.append("-" if ch == " " else ch)
        elif cat[0] in "LN" or cat == "Mn":
            out.append(ch)
    return "".join(out)


def lines_outside_code(path):
    """(line number, text) of each line outside fenced code blocks, code spans blanked."""
    in_fence = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = FENCE.match(line)
            if m:
                if in_fence is None:
                    in_fence = m.group(1)
                elif line.strip().startswith(in_fence):
                    in_fence = None
                continue
            if in_fence is None:
                yield n, CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line.rstrip("\n"))


_anchors = {}


def anchors(path):
    if path not in _anchors:
        seen = {}
        found = set()
        in_fence = None
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = FENCE.match(line)
                if m:
                    if in_fence is None:
                        in_fence = m.group(1)
                    elif line.strip().startswith(in_fence):
                        in_fence = None
                    continue
                h = HEADING.match(line) if in_fence is None else None
                if not h:
                    continue
                s = slug(h.group(2))
                n = seen.get(s, 0)
                seen[s] = n + 1
                found.add(s if n == 0 else "%s-%d" % (s, n))
        with open(path, encoding="utf-8") as f:  # explicit anchors: <a id="x"> / name="x"
            found.update(re.findall(r"<a\s[^>]*(?:id|name)=\"([^\"]+)\"", f.read(), re.I))
        _anchors[path] = found
    return _anchors[path]


def targets(path):
    for n, line in lines_outside_code(path):
        for rx in (INLINE_LINK, HREF):
            for m in rx.finditer(line):
                yield n, m.group(1)
        m = REF_DEF.match(line)
        if m:
            yield n, m.group(1)


def check(path):
    errors = []
    base = os.path.dirname(os.path.abspath(path))
    checked = 0
    for n, target in targets(path):
        if not target or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            continue  # empty, or external (http:, https:, mailto:): not fetched
        checked += 1
        file_part, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(base, file_part)) if file_part else os.path.abspath(path)
        if not os.path.exists(dest):
            errors.append("%s:%d: %s: no such file %s" % (path, n, target, dest))
            continue
        if frag:
            if os.path.isdir(dest) or not dest.endswith(".md"):
                errors.append("%s:%d: %s: an anchor into a file that is not Markdown" % (path, n, target))
            elif frag not in anchors(dest):
                errors.append("%s:%d: %s: no heading with anchor #%s in %s" % (path, n, target, frag, dest))
    return checked, errors


def main(argv):
    if len(argv) >= 2 and argv[1] == "--files":
        files = argv[2:]
    elif len(argv) == 2:
        src = argv[1]
        docs = os.path.join(src, "docs")
        files = [os.path.join(src, "README.md"), os.path.join(src, "tests", "e2e", "README.md")]
        if os.path.isdir(docs):
            files += sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))
    else:
        sys.stderr.write(__doc__)
        return 2
    total = 0
    errors = []
    for f in files:
        if not os.path.isfile(f):
            errors.append("%s: no such file" % f)
            continue
        n, e = check(f)
        total += n
        errors += e
    for e in errors:
        print("FAIL: " + e)
    print("%d files, %d relative links checked, %d broken" % (len(files), total, len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
