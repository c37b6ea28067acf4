#!/usr/bin/env python3
"""Translate the subset of Butane (variant flatcar, version 1.0.0) that conf/butane/*.bu use into
Ignition 3.3.0 JSON, with the standard library only (Debian ships no butane binary).

Subset: storage.files (path, mode, overwrite, user, group, contents.inline | .source | .local,
contents.verification), storage.directories, storage.links (path, target, hard, overwrite),
systemd.units (name, enabled, mask, contents, dropins[name, contents]). YAML: block mappings and
sequences, plain/quoted scalars, literal block scalars (|, |-, |+), comments. Anything else is an
error, never silently dropped.

usage: butane2ign.py [-d FILES_DIR] [-o OUT] INPUT.bu
"""
import argparse
import base64
import json
import re
import sys
import urllib.parse


class Error(Exception):
    pass


# --- a YAML subset ------------------------------------------------------------------------------

def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _is_skippable(line):
    s = line.strip()
    return not s or s.startswith("#")


def _strip_comment(text):
    # a " #" outside quotes starts a comment
    quote = None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"" and (i == 0 or text[i - 1] in " :[,"):
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] == " "):
            return text[:i].rstrip()
    return text.rstrip()


def _scalar(text, lineno):
    t = _strip_comment(text).strip()
    if t.startswith('"'):
        try:
            return json.loads(t)
        except ValueError as e:
            raise Error("line %d: bad double-quoted scalar: %s" % (lineno, e))
    if t.startswith("'"):
        if not t.endswith("'") or len(t) < 2:
            raise Error("line %d: unterminated single-quoted scalar" % lineno)
        return t[1:-1].replace("''", "'")
    if t in ("", "~", "null", "Null", "NULL"):
        return None
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if t == "[]":
        return []
    if t == "{}":
        return {}
    if t[0] in "[{&*!|>%@`":
        raise Error("line %d: unsupported YAML construct %r" % (lineno, t))
    if re.fullmatch(r"0o?[0-7]+", t) and t != "0":
        return int(t.replace("0o", "0"), 8)
    if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", t):
        return int(t)
    return t


class _Parser:
    def __init__(self, text):
        self.lines = text.splitlines()
        self.i = 0

    def _next_content(self):
        while self.i < len(self.lines) and _is_skippable(self.lines[self.i]):
            self.i += 1
        if self.i < len(self.lines):
            # tabs may appear inside block scalars (read elsewhere), never as structure
            line = self.lines[self.i]
            if line[_indent(line)] == "\t":
                raise Error("line %d: tab in indentation" % (self.i + 1))
        return self.i < len(self.lines)

    def parse(self):
        if not self._next_content():
            return None
        value = self._node(_indent(self.lines[self.i]))
        if self._next_content():
            raise Error("line %d: unexpected content" % (self.i + 1))
        return value

    def _node(self, indent):
        line = self.lines[self.i]
        if line.strip() == "---":
            raise Error("line %d: several documents" % (self.i + 1))
        if line.lstrip().startswith("- ") or line.strip() == "-":
            return self._sequence(indent)
        return self._mapping(indent)

    def _block_scalar(self, header, parent_indent, lineno):
        chomp = header[1:] if len(header) > 1 else ""
        if chomp not in ("", "-", "+"):
            raise Error("line %d: unsupported block scalar header %r" % (lineno, header))
        body = []
        while self.i < len(self.lines):
            l = self.lines[self.i]
            if l.strip() and _indent(l) <= parent_indent:
                break
            body.append(l)
            self.i += 1
        content = [l for l in body if l.strip()]
        if not content:
            return ""
        ind = min(_indent(l) for l in content)
        text = "\n".join(l[ind:] if l.strip() else "" for l in body)
        stripped = text.rstrip("\n")
        if chomp == "-":
            return stripped
        if chomp == "+":
            return text + "\n"
        return stripped + "\n"

    def _value_after_key(self, rest, indent, lineno):
        rest = _strip_comment(rest).strip() if not rest.strip().startswith(("'", '"')) else rest.strip()
        if rest.startswith("|"):
            return self._block_scalar(rest, indent, lineno)
        if rest.startswith(">"):
            raise Error("line %d: folded scalars are not supported" % lineno)
        if rest:
            return _scalar(rest, lineno)
        # nested block, or nothing (null)
        if not self._next_content():
            return None
        nl = self.lines[self.i]
        ni = _indent(nl)
        if ni > indent or (ni == indent and nl.lstrip().startswith("- ")):
            return self._node(ni)
        return None

    def _mapping(self, indent):
        result = {}
        while self._next_content():
            line = self.lines[self.i]
            ind = _indent(line)
            if ind < indent:
                break
            if ind > indent:
                raise Error("line %d: bad indentation" % (self.i + 1))
            body = line[ind:]
            if body.startswith("- "):
                break
            m = re.match(r"([A-Za-z0-9_.-]+|\"[^\"]*\"|'[^']*'):(\s+(.*)|)$", body)
            if not m:
                raise Error("line %d: expected 'key: value', got %r" % (self.i + 1, body))
            key = _scalar(m.group(1), self.i + 1)
            if key in result:
                raise Error("line %d: duplicate key %s" % (self.i + 1, key))
            lineno = self.i + 1
            self.i += 1
            result[key] = self._value_after_key(m.group(3) or "", indent, lineno)
        return result

    def _sequence(self, indent):
        result = []
        while self._next_content():
            line = self.lines[self.i]
            ind = _indent(line)
            if ind != indent or not (line[ind:].startswith("- ") or line.strip() == "-"):
                if ind > indent:
                    raise Error("line %d: bad indentation" % (self.i + 1))
                break
            rest = line[ind + 2:] if len(line) > ind + 1 else ""
            if not rest.strip() or rest.strip().startswith("#"):
                self.i += 1
                result.append(self._value_after_key("", indent, self.i))
            elif re.match(r"([A-Za-z0-9_.-]+|\"[^\"]*\"):(\s|$)", rest):
                # "- key: v" opens a mapping whose keys sit at indent + 2
                self.lines[self.i] = " " * (ind + 2) + rest
                result.append(self._mapping(ind + 2))
            else:
                self.i += 1
                result.append(_scalar(rest, self.i))
        return result


def load_yaml(text):
    return _Parser(text).parse()


# --- Butane -> Ignition ------------------------------------------------------------------------

def _check_keys(obj, allowed, where):
    if not isinstance(obj, dict):
        raise Error("%s: expected a mapping" % where)
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise Error("%s: unsupported key(s) %s" % (where, ", ".join(unknown)))


def data_url(text):
    return "data:," + urllib.parse.quote(text, safe="-_.~/")


def _contents(c, where, files_dir):
    _check_keys(c, ("inline", "source", "local", "verification", "compression"), where)
    given = [k for k in ("inline", "source", "local") if k in c]
    if len(given) != 1:
        raise Error("%s: exactly one of inline, source, local" % where)
    out = {}
    if "inline" in c:
        if not isinstance(c["inline"], str):
            raise Error("%s.inline: expected a string" % where)
        out["source"] = data_url(c["inline"])
    elif "source" in c:
        out["source"] = c["source"]
    else:
        if not files_dir:
            raise Error("%s.local: needs -d FILES_DIR" % where)
        with open("%s/%s" % (files_dir, c["local"]), "rb") as f:
            out["source"] = "data:;base64," + base64.b64encode(f.read()).decode()
    if "verification" in c:
        _check_keys(c["verification"], ("hash",), where + ".verification")
        out["verification"] = dict(c["verification"])
    if "compression" in c:
        out["compression"] = c["compression"]
    return out


def _owner(v, where):
    _check_keys(v, ("id", "name"), where)
    return dict(v)


def translate(bu, files_dir=None):
    _check_keys(bu, ("variant", "version", "storage", "systemd"), "config")
    if bu.get("variant") != "flatcar" or bu.get("version") != "1.0.0":
        raise Error("config: only variant flatcar, version 1.0.0 (got %s %s)"
                    % (bu.get("variant"), bu.get("version")))
    ign = {"ignition": {"version": "3.3.0"}}
    storage = bu.get("storage") or {}
    _check_keys(storage, ("files", "directories", "links"), "storage")
    st = {}
    for n, f in enumerate(storage.get("files") or []):
        where = "storage.files[%d]" % n
        _check_keys(f, ("path", "mode", "overwrite", "user", "group", "contents"), where)
        out = {"path": f.get("path")}
        for k in ("overwrite", "mode"):
            if k in f:
                out[k] = f[k]
        for k in ("user", "group"):
            if k in f:
                out[k] = _owner(f[k], "%s.%s" % (where, k))
        if "contents" in f:
            out["contents"] = _contents(f["contents"], where + ".contents", files_dir)
        st.setdefault("files", []).append(out)
    for n, d in enumerate(storage.get("directories") or []):
        where = "storage.directories[%d]" % n
        _check_keys(d, ("path", "mode", "overwrite", "user", "group"), where)
        st.setdefault("directories", []).append(dict(d))
    for n, l in enumerate(storage.get("links") or []):
        where = "storage.links[%d]" % n
        _check_keys(l, ("path", "target", "hard", "overwrite", "user", "group"), where)
        st.setdefault("links", []).append(dict(l))
    if st:
        ign["storage"] = st
    systemd = bu.get("systemd") or {}
    _check_keys(systemd, ("units",), "systemd")
    units = []
    for n, u in enumerate(systemd.get("units") or []):
        where = "systemd.units[%d]" % n
        _check_keys(u, ("name", "enabled", "mask", "contents", "dropins"), where)
        out = {k: u[k] for k in ("name", "enabled", "mask", "contents") if k in u}
        for m, d in enumerate(u.get("dropins") or []):
            _check_keys(d, ("name", "contents"), "%s.dropins[%d]" % (where, m))
            out.setdefault("dropins", []).append(dict(d))
        units.append(out)
    if units:
        ign["systemd"] = {"units": units}
    return ign


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("-d", "--files-dir")
    ap.add_argument("-o", "--output")
    args = ap.parse_args()
    try:
        with open(args.input, encoding="utf-8") as f:
            ign = translate(load_yaml(f.read()), args.files_dir)
    except (Error, OSError) as e:
        print("butane2ign: %s: %s" % (args.input, e), file=sys.stderr)
        return 1
    text = json.dumps(ign, indent=2, sort_keys=True) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
