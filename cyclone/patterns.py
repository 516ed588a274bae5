"""Key validation, key <-> file path mapping, and key pattern matching.

This module owns the answer to two questions for the whole server:

* Is this string a valid series key, and where does its file live?
  `check_key` refuses anything that could name a file outside the data
  directory or that a filesystem cannot store (empty or dot components,
  ``/``, ``\\``, NUL and other control characters, whitespace, pattern
  characters, over-long components or keys). `key_to_path` maps a key to
  ``<root>/a/b/c.wsp`` and re-checks that the result stays under root.

* Does this key (or directory entry) match this pattern?
  Pattern tokens: ``*`` (any run without ``.``), ``?`` (one character other
  than ``.``), ``[abc]`` / ``[a-z]`` / ``[!a-z]`` / ``[^a-z]`` (character
  classes; they never match ``.``), ``{abc,def,}`` (alternation; an empty
  alternative is allowed, alternatives may nest and may contain other
  tokens), and ``**`` (any run including dots). As a whole component,
  ``**`` matches one or more whole components; find/delete accept it only
  as the last component, autocreate rules anywhere.

Patterns are translated to `re` patterns once and cached (`compile_component`,
`compile_pattern`); literal components and pure literal alternations are
matched with string/set comparisons instead of regexes, because find and
read run these over directory listings of up to ~100k names.
"""

from __future__ import annotations

import functools
import operator
import os
import re
from collections.abc import Callable, Iterable

from cyclone.series import CycloneError

__all__ = [
    "InvalidKeyError",
    "InvalidPatternError",
    "MAX_KEY_BYTES",
    "MAX_COMPONENT_BYTES",
    "MAX_PATTERN_CHARS",
    "WHISPER_SUFFIX",
    "PATTERN_CHARS",
    "check_key",
    "key_to_relpath",
    "key_to_path",
    "relpath_to_key",
    "is_pattern",
    "check_pattern",
    "split_pattern",
    "expand_braces",
    "compile_component",
    "filter_names",
    "compile_pattern",
    "match_key",
]

WHISPER_SUFFIX = ".wsp"
#: Longest key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
#: Longest key component, in UTF-8 bytes: a file name is limited to 255
#: bytes on common filesystems and the leaf component gets ``.wsp`` appended.
#: The same limit applies to every component, since any directory name may
#: also be the leaf of another key (``a.b`` and ``a.b.c``).
MAX_COMPONENT_BYTES = 255 - len(WHISPER_SUFFIX)
#: Longest pattern, in characters. Much longer than a key because Grafana
#: sends multi-value variables as ``{host1,host2,...}``.
MAX_PATTERN_CHARS = 65536
#: Characters that make a string a pattern rather than a key.
PATTERN_CHARS = frozenset("*?[]{}")

# ASCII characters that are printable but still never allowed in a key.
_FORBIDDEN_KEY_CHARS = re.compile(r"[ /\\*?\[\]{}]")
# ... and in a pattern (where the wildcard characters are allowed).
_FORBIDDEN_PATTERN_CHARS = re.compile(r"[ /\\]")
_PATTERN_CHAR_RE = re.compile(r"[*?\[\]{}]")

_CACHE_SIZE = 16384
_MESSAGE_KEY_CHARS = 120


class InvalidKeyError(CycloneError):
    """A key that Cyclone refuses to store or look up. Never recoverable."""

    def __init__(self, description: str):
        super().__init__(description, recoverable=False)


class InvalidPatternError(CycloneError):
    """A malformed pattern (bad syntax, bad characters, misplaced ``**``)."""

    def __init__(self, description: str):
        super().__init__(description, recoverable=False)


# ---------------------------------------------------------------- keys


def _shown(s: str) -> str:
    """repr() of a key or pattern for an error message, shortened if huge."""
    if len(s) > _MESSAGE_KEY_CHARS:
        return repr(s[:_MESSAGE_KEY_CHARS]) + f"... ({len(s)} characters)"
    return repr(s)


def _describe_char(c: str) -> str:
    code = ord(c)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"control character U+{code:04X}"
    if c.isspace():
        return f"whitespace character U+{code:04X}"
    if c == "/":
        return "'/' (path separator)"
    if c == "\\":
        return "'\\' (backslash)"
    if c in PATTERN_CHARS:
        return f"pattern character {c!r}"
    return f"non-printable character U+{code:04X}"


def _bad_char(s: str, forbidden: re.Pattern[str]) -> tuple[int, str] | None:
    """The first character of `s` that is not allowed, with its index."""
    if not s.isprintable():
        for i, c in enumerate(s):
            if not c.isprintable():
                return i, c
    m = forbidden.search(s)
    if m is not None:
        return m.start(), m.group()
    return None


def _component_problem(s: str, what: str) -> str | None:
    """Why the dot-structure of a key or pattern is wrong, or None."""
    if s.startswith("."):
        return f"{what} starts with '.' (empty first component)"
    if s.endswith("."):
        return f"{what} ends with '.' (empty last component)"
    if ".." in s:
        i = s.index("..")
        return f"empty component ('..') at index {i}"
    return None


def _explain_key(key: object) -> str:
    """The reason `key` is invalid (slow path: only called on failure)."""
    if not isinstance(key, str):
        return f"invalid key {key!r}: keys must be str, not {type(key).__name__}"
    prefix = f"invalid key {_shown(key)}: "
    if not key:
        return prefix + "empty key"
    bad = _bad_char(key, _FORBIDDEN_KEY_CHARS)
    if bad is not None:
        i, c = bad
        return prefix + f"{_describe_char(c)} at index {i} is not allowed"
    problem = _component_problem(key, "key")
    if problem is not None:
        return prefix + problem
    nbytes = len(key.encode("utf-8"))
    if nbytes > MAX_KEY_BYTES:
        return prefix + f"key is {nbytes} bytes long (UTF-8), the limit is {MAX_KEY_BYTES}"
    for component in key.split("."):
        nbytes = len(component.encode("utf-8"))
        if nbytes > MAX_COMPONENT_BYTES:
            return prefix + (
                f"component {_shown(component)} is {nbytes} bytes long (UTF-8), the limit is "
                f"{MAX_COMPONENT_BYTES} (255 for a file name, less {WHISPER_SUFFIX!r})"
            )
    raise AssertionError(f"_explain_key called on valid key {key!r}")


def _key_is_valid(key: str) -> bool:
    if not key or not key.isprintable() or _FORBIDDEN_KEY_CHARS.search(key) is not None:
        return False
    if key[0] == "." or key[-1] == "." or ".." in key:
        return False
    if key.isascii():
        if len(key) > MAX_KEY_BYTES:
            return False
        if len(key) <= MAX_COMPONENT_BYTES:
            return True
        return max(map(len, key.split("."))) <= MAX_COMPONENT_BYTES
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return False
    return all(len(c.encode("utf-8")) <= MAX_COMPONENT_BYTES for c in key.split("."))


def check_key(key: str) -> str:
    """Return `key` if it is a valid series key, else raise InvalidKeyError.

    The error's description says what is wrong (which character, which
    component, how long).
    """
    if isinstance(key, str) and _key_is_valid(key):
        return key
    raise InvalidKeyError(_explain_key(key))


def key_to_relpath(key: str) -> str:
    """``"a.b.c"`` -> ``"a/b/c.wsp"`` (after `check_key`)."""
    check_key(key)
    return key.replace(".", os.sep) + WHISPER_SUFFIX


@functools.lru_cache(maxsize=64)
def _normalized_root(root: str) -> str:
    return os.path.abspath(root)


def key_to_path(root: str, key: str) -> str:
    """Absolute path of `key`'s whisper file under the data directory `root`.

    Raises InvalidKeyError for an invalid key, and (defence in depth) if the
    joined path would not be under `root`.
    """
    base = _normalized_root(os.fspath(root))
    path = base + key_to_relpath(key) if base.endswith(os.sep) else base + os.sep + key_to_relpath(key)
    # check_key already refuses '/', '..' and NUL; normpath is the cheap belt-and-braces check
    if os.path.normpath(path) != path or not path.startswith(base + os.sep):
        raise InvalidKeyError(f"invalid key {_shown(key)}: its path would leave the data directory")
    return path


def relpath_to_key(relpath: str) -> str:
    """Inverse of `key_to_relpath`: ``"a/b/c.wsp"`` -> ``"a.b.c"``.

    A path without the ``.wsp`` suffix is a directory: ``"a/b"`` -> ``"a.b"``.
    Raises InvalidKeyError if the result is not a valid key (an absolute
    path, ``..``, or a file name a key cannot have).
    """
    rel = os.fspath(relpath)
    if rel.endswith(WHISPER_SUFFIX):
        rel = rel[: -len(WHISPER_SUFFIX)]
    if os.path.isabs(rel):
        raise InvalidKeyError(f"invalid path {_shown(relpath)}: not relative to the data directory")
    parts = [p for p in rel.split(os.sep) if p and p != "."]
    for part in parts:
        if "." in part:
            raise InvalidKeyError(
                f"invalid path {_shown(relpath)}: name {_shown(part)} contains '.', "
                "which no key component can"
            )
    key = ".".join(parts)
    if not _key_is_valid(key):
        raise InvalidKeyError(_explain_key(key) + f" (from path {_shown(relpath)})")
    return key


# ---------------------------------------------------------------- patterns


def is_pattern(s: str) -> bool:
    """True if `s` contains any of the pattern characters ``*?[]{}``."""
    return _PATTERN_CHAR_RE.search(s) is not None


def split_pattern(pattern: str) -> list[str]:
    """Split on dots that are not inside ``{}`` or ``[]``.

    ``"a.{b.c,d}.[.x]"`` -> ``["a", "{b.c,d}", "[.x]"]``. Unbalanced
    brackets are not an error here (see `check_pattern`).
    """
    if "{" not in pattern and "[" not in pattern:
        return pattern.split(".")
    out: list[str] = []
    start = 0
    depth = 0
    in_class = False
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            # the class ends at the first `]` after an optional negation
            # mark, exactly as the translator reads it
            if i + 1 < n and pattern[i + 1] in "!^":
                i += 1
        elif c == "{":
            depth += 1
        elif c == "}":
            if depth:
                depth -= 1
        elif c == "." and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    out.append(pattern[start:])
    return out


class _Translator:
    """Recursive-descent translation of one pattern into a regex source."""

    def __init__(self, pattern: str):
        self.p = pattern
        self.n = len(pattern)
        self.i = 0
        # (index, whole_component) of each `**`
        self.globstars: list[tuple[int, bool]] = []

    def error(self, what: str) -> InvalidPatternError:
        return InvalidPatternError(f"invalid pattern {_shown(self.p)}: {what}")

    def translate(self) -> str:
        regex = self.sequence(in_brace=False)
        if self.i < self.n:  # pragma: no cover - sequence() consumes all at depth 0
            raise self.error(f"unexpected {self.p[self.i]!r} at index {self.i}")
        return regex

    def sequence(self, in_brace: bool) -> str:
        p, n = self.p, self.n
        out: list[str] = []
        literal_start = self.i
        while self.i < n:
            c = p[self.i]
            if c not in "*?[]{},":
                self.i += 1
                continue
            if self.i > literal_start:
                out.append(re.escape(p[literal_start : self.i]))
            if c == "*":
                if self.i + 1 < n and p[self.i + 1] == "*":
                    whole = (
                        not in_brace
                        and (self.i == 0 or p[self.i - 1] == ".")
                        and (self.i + 2 == n or p[self.i + 2] == ".")
                    )
                    self.globstars.append((self.i, whole))
                    out.append(".+" if whole else ".*")
                    self.i += 2
                else:
                    out.append("[^.]*")
                    self.i += 1
            elif c == "?":
                out.append("[^.]")
                self.i += 1
            elif c == "[":
                out.append(self.char_class())
            elif c == "{":
                out.append(self.alternation())
            elif c == ",":
                if in_brace:
                    return "".join(out)
                out.append(",")
                self.i += 1
            elif c == "}":
                if in_brace:
                    return "".join(out)
                raise self.error(f"unbalanced '}}' at index {self.i}")
            else:  # "]"
                raise self.error(f"unbalanced ']' at index {self.i}")
            literal_start = self.i
        if self.i > literal_start:
            out.append(re.escape(p[literal_start : self.i]))
        return "".join(out)

    def alternation(self) -> str:
        open_index = self.i
        self.i += 1
        alternatives: list[str] = []
        while True:
            alternatives.append(self.sequence(in_brace=True))
            if self.i >= self.n:
                raise self.error(f"unbalanced '{{' at index {open_index}")
            closing = self.p[self.i]
            self.i += 1
            if closing == "}":
                return "(?:" + "|".join(alternatives) + ")"

    def char_class(self) -> str:
        p, n = self.p, self.n
        open_index = self.i
        self.i += 1
        negate = self.i < n and p[self.i] in "!^"
        if negate:
            self.i += 1
        close = p.find("]", self.i)
        if close < 0:
            raise self.error(f"unbalanced '[' at index {open_index}")
        body = p[self.i : close]
        if not body:
            raise self.error(f"empty character class at index {open_index}")
        self.i = close + 1
        items: list[str] = []
        has_dot = False
        j = 0
        while j < len(body):
            lo = body[j]
            if j + 2 < len(body) and body[j + 1] == "-":
                hi = body[j + 2]
                if lo > hi:
                    raise self.error(f"bad range {lo + '-' + hi!r} in character class at index {open_index}")
                items.append(re.escape(lo) + "-" + re.escape(hi))
                has_dot = has_dot or lo <= "." <= hi
                j += 3
            else:
                items.append(re.escape(lo))
                has_dot = has_dot or lo == "."
                j += 1
        if negate:
            return "[^" + "".join(items) + r"\.]"
        if has_dot:
            return r"(?:(?!\.)[" + "".join(items) + "])"
        return "[" + "".join(items) + "]"


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse(pattern: str) -> tuple[str, tuple[tuple[int, bool], ...]]:
    """(regex source, globstar positions) for a pattern; syntax checks only."""
    t = _Translator(pattern)
    regex = t.translate()
    return regex, tuple(t.globstars)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _check_pattern_cached(pattern: str, allow_globstar_anywhere: bool) -> str:
    if not pattern:
        raise InvalidPatternError("invalid pattern '': empty pattern")
    prefix = f"invalid pattern {_shown(pattern)}: "
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidPatternError(
            prefix + f"pattern is {len(pattern)} characters long, the limit is {MAX_PATTERN_CHARS}"
        )
    bad = _bad_char(pattern, _FORBIDDEN_PATTERN_CHARS)
    if bad is not None:
        i, c = bad
        raise InvalidPatternError(prefix + f"{_describe_char(c)} at index {i} is not allowed")
    for component in split_pattern(pattern):
        if not component:
            problem = _component_problem(pattern, "pattern")
            raise InvalidPatternError(prefix + (problem or "empty component"))
    _, globstars = _parse(pattern)
    if not allow_globstar_anywhere:
        for index, whole in globstars:
            if not whole or index + 2 != len(pattern):
                raise InvalidPatternError(
                    prefix + f"'**' at index {index} is only allowed as the whole last component"
                )
    return pattern


def check_pattern(pattern: str, allow_globstar_anywhere: bool = False) -> str:
    """Return `pattern` if it is a valid pattern, else raise InvalidPatternError.

    Same component rules as keys (no empty components, no ``/``, ``\\``,
    whitespace or control characters) but wildcard characters are allowed
    and the length limits are relaxed. ``**`` is accepted only as the whole
    last component (find/delete) unless `allow_globstar_anywhere` is True
    (autocreate rules). Unbalanced ``[``/``{`` (or stray ``]``/``}``) are
    refused. A plain key is a valid pattern.
    """
    if not isinstance(pattern, str):
        raise InvalidPatternError(
            f"invalid pattern {pattern!r}: patterns must be str, not {type(pattern).__name__}"
        )
    return _check_pattern_cached(pattern, allow_globstar_anywhere)


def _brace_group_end(s: str, open_index: int) -> tuple[int, list[str]] | None:
    """Index of the `}` closing the group at `open_index`, and its alternatives."""
    depth = 0
    alternatives: list[str] = []
    start = open_index + 1
    i = open_index
    n = len(s)
    while i < n:
        c = s[i]
        if c == "[":
            close = s.find("]", i + 2 if i + 1 < n and s[i + 1] in "!^" else i + 1)
            if close < 0:
                return None
            i = close + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                alternatives.append(s[start:i])
                return i, alternatives
        elif c == "," and depth == 1:
            alternatives.append(s[start:i])
            start = i + 1
        i += 1
    return None


def expand_braces(pattern: str, limit: int = 10000) -> list[str]:
    """Expand the ``{...}`` groups that contain a ``.`` into separate patterns.

    ``"a.{b.c,d}.e"`` -> ``["a.b.c.e", "a.d.e"]``. Groups without dots are
    left alone (the matcher handles them per component), so that after this
    every component of `split_pattern` is free of dots and directory
    traversal can match component by component. Raises InvalidPatternError
    if the expansion would produce more than `limit` patterns.
    """
    check_pattern(pattern, allow_globstar_anywhere=True)
    out: list[str] = []
    todo = [(pattern, 0)]
    while todo:
        p, search_from = todo.pop()
        i = search_from
        expanded = False
        while True:
            i = p.find("{", i)
            if i < 0:
                break
            found = _brace_group_end(p, i)
            if found is None:  # pragma: no cover - check_pattern refused it
                break
            end, alternatives = found
            if any("." in a for a in alternatives):
                head, tail = p[:i], p[end + 1 :]
                for alt in reversed(alternatives):
                    todo.append((head + alt + tail, i))
                if len(out) + len(todo) > limit:
                    raise InvalidPatternError(
                        f"invalid pattern {_shown(pattern)}: expands to more than {limit} patterns"
                    )
                expanded = True
                break
            i = end + 1
        if not expanded:
            out.append(p)
    return out


_LITERAL_EXPANSION_LIMIT = 4096


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _literal_expansion(pattern: str) -> frozenset[str] | None:
    """All strings a pattern matches, if it has only literals and ``{}``.

    None if it has another wildcard or expands to too many strings.
    """
    if "*" in pattern or "?" in pattern or "[" in pattern:
        return None

    # parse as a sequence of literal runs and (possibly nested) groups
    def expand(s: str) -> list[str] | None:
        acc = [""]
        i = 0
        while i < len(s):
            j = s.find("{", i)
            if j < 0:
                return [a + s[i:] for a in acc]
            found = _brace_group_end(s, j)
            if found is None:
                return None
            end, alternatives = found
            options: list[str] = []
            for alt in alternatives:
                sub = expand(alt)
                if sub is None:
                    return None
                options.extend(sub)
            literal = s[i:j]
            acc = [a + literal + o for a in acc for o in options]
            if len(acc) > _LITERAL_EXPANSION_LIMIT:
                return None
            i = end + 1
        return acc

    results = expand(pattern)
    if results is None:
        return None
    return frozenset(results)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_component(component: str) -> re.Pattern[str]:
    """Compiled regex for one pattern component, anchored at both ends.

    Use with ``.match(name)`` or ``.fullmatch(name)``. Raises
    InvalidPatternError for malformed syntax.
    """
    regex, _ = _parse(component)
    return re.compile(r"(?s:" + regex + r")\Z")


def filter_names(component: str, names: Iterable[str]) -> list[str]:
    """The names (directory entries, without dots) matched by one component.

    Order follows `names` (sorted when `names` is a set or dict and the
    component is a literal alternation). A literal component is a membership
    test (so a set or dict of names is O(1)); a pure ``{a,b,c}`` alternation
    is a set intersection; anything else runs the cached regex. Raises
    InvalidPatternError for malformed syntax.
    """
    if not is_pattern(component):
        return [component] if component in names else []
    match = compile_component(component).match  # also checks the syntax
    literals = _literal_expansion(component)
    if literals is not None:
        if isinstance(names, (set, frozenset, dict)) and len(literals) < len(names):
            # preserve the pattern's own order for determinism
            return sorted(lit for lit in literals if lit in names)
        return [n for n in names if n in literals]
    return [n for n in names if match(n) is not None]


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A cached predicate ``key -> bool`` for a whole-key pattern.

    ``**`` is accepted anywhere here (matching is well-defined); callers
    that must restrict it (find, delete) call `check_pattern` first. Raises
    InvalidPatternError for malformed patterns.
    """
    check_pattern(pattern, allow_globstar_anywhere=True)
    if pattern == "**":  # the usual catch-all autocreate rule
        return bool
    if not is_pattern(pattern):
        return functools.partial(operator.eq, pattern)
    literals = _literal_expansion(pattern)
    if literals is not None:
        return literals.__contains__
    regex, _ = _parse(pattern)
    fullmatch = re.compile(r"(?s:" + regex + r")\Z").match

    def matches(key: str) -> bool:
        return fullmatch(key) is not None

    return matches


def match_key(pattern: str, key: str) -> bool:
    """True if the whole `key` matches `pattern` (``**`` included)."""
    return compile_pattern(pattern)(key)
