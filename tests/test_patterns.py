"""Tests for cyclone.patterns: key checks, key <-> path mapping, matching."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclone.patterns import (
    MAX_COMPONENT_BYTES,
    MAX_KEY_BYTES,
    InvalidKeyError,
    InvalidPatternError,
    check_key,
    check_pattern,
    compile_component,
    compile_pattern,
    expand_braces,
    filter_names,
    is_pattern,
    key_to_path,
    key_to_relpath,
    match_key,
    relpath_to_key,
    split_pattern,
)
from cyclone.series import CycloneError

# ------------------------------------------------------------ the spec's example

SPEC_PATTERN = "test.*.{dir,file,}name.key[13]"
SPEC_MATCHES = [
    "test.whatever.dirname.key1",
    "test.anything.dirname.key3",
    "test.this_field_doesnt_matter.filename.key1",
    "test.it_can_be_anything.filename.key3",
    "test.as_long_as_it_doesnt.name.key1",
    "test.have_a_dot.name.key3",
]
SPEC_NON_MATCHES = [
    "test.whatever.dirname.key2",
    "test.whatever.devicename.key1",
    "test.whatever.anything.filename.key1",
]


@pytest.mark.parametrize("key", SPEC_MATCHES)
def test_spec_example_matches(key: str) -> None:
    assert match_key(SPEC_PATTERN, key) is True


@pytest.mark.parametrize("key", SPEC_NON_MATCHES)
def test_spec_example_does_not_match(key: str) -> None:
    assert match_key(SPEC_PATTERN, key) is False


def test_spec_example_component_by_component() -> None:
    components = split_pattern(SPEC_PATTERN)
    assert components == ["test", "*", "{dir,file,}name", "key[13]"]
    assert filter_names(components[2], ["dirname", "filename", "name", "devicename", "xname"]) == [
        "dirname",
        "filename",
        "name",
    ]
    assert filter_names(components[3], ["key1", "key2", "key3", "key13", "key"]) == ["key1", "key3"]


# ------------------------------------------------------------ valid keys


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "a.b.c",
        "servers.web-01.cpu_user",
        "x:y=z@h%20+1#frag",
        "ünïcödé.数据.метрика",
        "a,b.c;d=e",
        "a" * MAX_COMPONENT_BYTES,
        ".".join(["b" * 200] * 5),  # 1004 bytes
    ],
)
def test_valid_keys_are_returned(key: str) -> None:
    assert check_key(key) == key


def test_key_length_limit_is_exact() -> None:
    ok = ".".join(["k" * 100] * 10) + "." + "z" * 14  # 1009 + 1 + 14 = 1024
    assert len(ok) == MAX_KEY_BYTES
    assert check_key(ok) == ok
    with pytest.raises(InvalidKeyError) as info:
        check_key(ok + "z")
    assert info.value.description.endswith("key is 1025 bytes long (UTF-8), the limit is 1024")


def test_component_length_counts_utf8_bytes() -> None:
    # 126 two-byte characters = 252 bytes > 251
    key = "a." + "é" * 126
    with pytest.raises(InvalidKeyError) as info:
        check_key(key)
    assert "is 252 bytes long (UTF-8), the limit is 251 (255 for a file name, less '.wsp')" in str(
        info.value
    )
    assert check_key("a." + "é" * 125) == "a." + "é" * 125


# ------------------------------------------------------------ invalid keys

INVALID_KEYS = [
    ("", "invalid key '': empty key"),
    ("../x", "invalid key '../x': '/' (path separator) at index 2 is not allowed"),
    ("..", "invalid key '..': key starts with '.' (empty first component)"),
    (".", "invalid key '.': key starts with '.' (empty first component)"),
    ("a..b", "invalid key 'a..b': empty component ('..') at index 1"),
    ("a...b", "invalid key 'a...b': empty component ('..') at index 1"),
    ("a/b", "invalid key 'a/b': '/' (path separator) at index 1 is not allowed"),
    ("a\\b", "invalid key 'a\\\\b': '\\' (backslash) at index 1 is not allowed"),
    ("a.\x00", "invalid key 'a.\\x00': control character U+0000 at index 2 is not allowed"),
    (".a", "invalid key '.a': key starts with '.' (empty first component)"),
    ("a.", "invalid key 'a.': key ends with '.' (empty last component)"),
    ("a. b", "invalid key 'a. b': whitespace character U+0020 at index 2 is not allowed"),
    ("a\tb", "invalid key 'a\\tb': control character U+0009 at index 1 is not allowed"),
    ("a\nb", "invalid key 'a\\nb': control character U+000A at index 1 is not allowed"),
    ("a\x1fb", "invalid key 'a\\x1fb': control character U+001F at index 1 is not allowed"),
    ("a\x7fb", "invalid key 'a\\x7fb': control character U+007F at index 1 is not allowed"),
    ("a\x85b", "invalid key 'a\\x85b': control character U+0085 at index 1 is not allowed"),
    ("a\u00a0b", "invalid key 'a\\xa0b': whitespace character U+00A0 at index 1 is not allowed"),
    ("a\u3000b", "invalid key 'a\\u3000b': whitespace character U+3000 at index 1 is not allowed"),
    ("a\ud800b", "invalid key 'a\\ud800b': non-printable character U+D800 at index 1 is not allowed"),
    ("a.*", "invalid key 'a.*': pattern character '*' at index 2 is not allowed"),
    ("a?", "invalid key 'a?': pattern character '?' at index 1 is not allowed"),
    ("a[1]", "invalid key 'a[1]': pattern character '[' at index 1 is not allowed"),
    ("a]", "invalid key 'a]': pattern character ']' at index 1 is not allowed"),
    ("{a,b}", "invalid key '{a,b}': pattern character '{' at index 0 is not allowed"),
    ("a}", "invalid key 'a}': pattern character '}' at index 1 is not allowed"),
]


@pytest.mark.parametrize(("key", "message"), INVALID_KEYS)
def test_invalid_keys_are_refused_with_reason(key: str, message: str) -> None:
    with pytest.raises(InvalidKeyError) as info:
        check_key(key)
    assert info.value.description == message
    assert str(info.value) == message
    assert info.value.recoverable is False


@pytest.mark.parametrize(("key", "message"), INVALID_KEYS)
def test_invalid_keys_never_become_paths(key: str, message: str, tmp_path) -> None:
    with pytest.raises(InvalidKeyError) as info:
        key_to_path(str(tmp_path), key)
    assert info.value.description == message


def test_non_str_key_is_refused() -> None:
    with pytest.raises(InvalidKeyError) as info:
        check_key(b"a.b")  # type: ignore[arg-type]
    assert info.value.description == "invalid key b'a.b': keys must be str, not bytes"


def test_long_key_message_is_shortened() -> None:
    key = "x" * 2000
    with pytest.raises(InvalidKeyError) as info:
        check_key(key)
    assert info.value.description == (
        f"invalid key {'x' * 120!r}... (2000 characters): key is 2000 bytes long (UTF-8), "
        "the limit is 1024"
    )


def test_errors_map_to_unrecoverable_error_results() -> None:
    assert issubclass(InvalidKeyError, CycloneError)
    assert issubclass(InvalidPatternError, CycloneError)
    with pytest.raises(InvalidKeyError) as info:
        check_key("a..b")
    error = info.value.to_error()
    assert (error.description, error.recoverable) == (
        "invalid key 'a..b': empty component ('..') at index 1",
        False,
    )


# ------------------------------------------------------------ paths


def test_key_to_relpath() -> None:
    assert key_to_relpath("a.b.c") == os.path.join("a", "b", "c.wsp")
    assert key_to_relpath("a") == "a.wsp"


def test_key_to_path(tmp_path) -> None:
    root = str(tmp_path)
    assert key_to_path(root, "a.b.c") == os.path.join(root, "a", "b", "c.wsp")
    # a relative or unnormalised root still yields an absolute path under it
    assert key_to_path(root + "/./", "x.y") == os.path.join(root, "x", "y.wsp")


def test_relpath_to_key() -> None:
    assert relpath_to_key("a/b/c.wsp") == "a.b.c"
    assert relpath_to_key("a/b") == "a.b"
    assert relpath_to_key("a/b/") == "a.b"
    assert relpath_to_key("./a/c.wsp") == "a.c"
    for key in ["a", "a.b.c", "ünï.数据", "x:y=z"]:
        assert relpath_to_key(key_to_relpath(key)) == key


@pytest.mark.parametrize(
    ("relpath", "message"),
    [
        ("/etc/passwd", "invalid path '/etc/passwd': not relative to the data directory"),
        ("a/../b.wsp", "invalid path 'a/../b.wsp': name '..' contains '.', which no key component can"),
        ("a/b.c.wsp", "invalid path 'a/b.c.wsp': name 'b.c' contains '.', which no key component can"),
        ("a/b c.wsp", "invalid key 'a.b c': whitespace character U+0020 at index 3 is not allowed "
         "(from path 'a/b c.wsp')"),
        ("", "invalid key '': empty key (from path '')"),
    ],
)
def test_relpath_to_key_refuses(relpath: str, message: str) -> None:
    with pytest.raises(InvalidKeyError) as info:
        relpath_to_key(relpath)
    assert info.value.description == message


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_key_to_path_never_escapes_root(key: str) -> None:
    root = "/srv/cyclone-data"
    try:
        path = key_to_path(root, key)
    except InvalidKeyError:
        return
    assert os.path.commonpath([root, path]) == root
    assert os.path.normpath(path) == path
    assert path.endswith(".wsp")
    assert relpath_to_key(os.path.relpath(path, root)) == key


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["..", ".", "/", "a", "b", "\\", "\x00", "é", " ", "*", "-"]), max_size=12))
def test_key_to_path_never_escapes_root_with_path_like_text(parts: list[str]) -> None:
    key = "".join(parts)
    root = "/srv/cyclone-data"
    try:
        path = key_to_path(root, key)
    except InvalidKeyError as e:
        assert e.description.startswith(f"invalid key {key!r}: ")
        return
    assert os.path.commonpath([root, path]) == root
    assert ".." not in path.split(os.sep)


# ------------------------------------------------------------ pattern syntax


def test_is_pattern() -> None:
    assert [is_pattern(s) for s in ["a.b", "a.*", "a?", "a[1]", "{a,b}", "a]", "a}", "a,b"]] == [
        False,
        True,
        True,
        True,
        True,
        True,
        True,
        False,
    ]


def test_split_pattern() -> None:
    assert split_pattern("a.b.c") == ["a", "b", "c"]
    assert split_pattern("a.{b.c,d}.e") == ["a", "{b.c,d}", "e"]
    assert split_pattern("a.[.x]y.z") == ["a", "[.x]y", "z"]
    assert split_pattern("a.{b,{c.d,e}}.f") == ["a", "{b,{c.d,e}}", "f"]
    assert split_pattern("a.**") == ["a", "**"]
    assert split_pattern("x") == ["x"]


@pytest.mark.parametrize(
    "pattern",
    ["a.b", "a.*", "a.**", "**", "*.b?.[a-z].[!x].[^y]", "a.{b,c,}", "a.{b.c,d}.e", "a.{b,{c,d}}"],
)
def test_valid_patterns(pattern: str) -> None:
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "invalid pattern '': empty pattern"),
        ("a..*", "invalid pattern 'a..*': empty component ('..') at index 1"),
        (".a*", "invalid pattern '.a*': pattern starts with '.' (empty first component)"),
        ("a.*.", "invalid pattern 'a.*.': pattern ends with '.' (empty last component)"),
        ("a/*", "invalid pattern 'a/*': '/' (path separator) at index 1 is not allowed"),
        ("a.\x00*", "invalid pattern 'a.\\x00*': control character U+0000 at index 2 is not allowed"),
        ("a *", "invalid pattern 'a *': whitespace character U+0020 at index 1 is not allowed"),
        ("a.[bc", "invalid pattern 'a.[bc': unbalanced '[' at index 2"),
        ("a.{b,c", "invalid pattern 'a.{b,c': unbalanced '{' at index 2"),
        ("a.{b,{c,d}", "invalid pattern 'a.{b,{c,d}': unbalanced '{' at index 2"),
        ("a.b]", "invalid pattern 'a.b]': unbalanced ']' at index 3"),
        ("a.b}", "invalid pattern 'a.b}': unbalanced '}' at index 3"),
        ("a.[]", "invalid pattern 'a.[]': empty character class at index 2"),
        ("a.[!]", "invalid pattern 'a.[!]': empty character class at index 2"),
        ("a.[z-a]", "invalid pattern 'a.[z-a]': bad range 'z-a' in character class at index 2"),
        ("a.**.b", "invalid pattern 'a.**.b': '**' at index 2 is only allowed as the whole last component"),
        ("a.b**", "invalid pattern 'a.b**': '**' at index 3 is only allowed as the whole last component"),
        ("a.{**,b}", "invalid pattern 'a.{**,b}': '**' at index 3 is only allowed as the whole last component"),
    ],
)
def test_invalid_patterns(pattern: str, message: str) -> None:
    with pytest.raises(InvalidPatternError) as info:
        check_pattern(pattern)
    assert info.value.description == message
    assert info.value.recoverable is False


def test_globstar_anywhere_for_autocreate_rules() -> None:
    assert check_pattern("a.**.b", allow_globstar_anywhere=True) == "a.**.b"
    assert check_pattern("a.b**", allow_globstar_anywhere=True) == "a.b**"
    # still refuses broken syntax
    with pytest.raises(InvalidPatternError) as info:
        check_pattern("a.**.{b", allow_globstar_anywhere=True)
    assert info.value.description == "invalid pattern 'a.**.{b': unbalanced '{' at index 5"


def test_non_str_pattern() -> None:
    with pytest.raises(InvalidPatternError) as info:
        check_pattern(None)  # type: ignore[arg-type]
    assert info.value.description == "invalid pattern None: patterns must be str, not NoneType"


def test_malformed_patterns_raise_from_matchers() -> None:
    for call in (
        lambda: compile_component("[ab"),
        lambda: filter_names("a}", ["a}"]),
        lambda: filter_names("{a,b", ["a"]),
        lambda: compile_pattern("a.{b"),
        lambda: match_key("a.[", "a.b"),
    ):
        with pytest.raises(InvalidPatternError):
            call()


# ------------------------------------------------------------ each token


def names(component: str, candidates: list[str]) -> list[str]:
    return filter_names(component, candidates)


def test_star() -> None:
    assert names("*", ["a", "bc", ""]) == ["a", "bc", ""]
    assert names("a*", ["a", "ab", "ba", "abc"]) == ["a", "ab", "abc"]
    assert names("*b*", ["b", "abc", "ac"]) == ["b", "abc"]
    assert match_key("a.*", "a.b") is True
    assert match_key("a.*", "a.b.c") is False
    assert match_key("*.c", "a.b.c") is False
    assert match_key("a.*.c", "a.b.c") is True


def test_question_mark() -> None:
    assert names("a?", ["a", "ab", "abc", "a."]) == ["ab"]
    assert names("??", ["a", "ab", "abc"]) == ["ab"]
    assert match_key("a?b", "a.b") is False
    assert match_key("a?b", "axb") is True


def test_character_class_list_and_range() -> None:
    assert names("key[13]", ["key1", "key2", "key3", "key13"]) == ["key1", "key3"]
    assert names("[a-c]x", ["ax", "bx", "cx", "dx", "Ax"]) == ["ax", "bx", "cx"]
    assert names("[a-c0-2_]", ["a", "1", "_", "3", "d"]) == ["a", "1", "_"]
    assert names("[-a]", ["-", "a", "b"]) == ["-", "a"]
    assert names("[a-]", ["-", "a", "b"]) == ["-", "a"]


@pytest.mark.parametrize("negation", ["!", "^"])
def test_character_class_negation(negation: str) -> None:
    component = f"[{negation}a-c]x"
    assert names(component, ["ax", "bx", "dx", "zx", "x", "ddx"]) == ["dx", "zx"]
    # a negated class never matches the separator
    assert match_key(f"a[{negation}x]b", "a.b") is False
    assert match_key(f"a[{negation}x]b", "ayb") is True


def test_character_class_never_matches_dot() -> None:
    assert match_key("a[.]b", "a.b") is False
    assert match_key("a[+-0]b", "a.b") is False
    assert match_key("a[+-0]b", "a-b") is True


def test_alternation() -> None:
    assert names("{abc,def}", ["abc", "def", "ghi", "abcdef"]) == ["abc", "def"]
    assert names("x{a,}", ["x", "xa", "xb"]) == ["x", "xa"]
    assert names("{a*,b?}", ["apple", "bb", "bbb", "c"]) == ["apple", "bb"]
    assert names("{a,{b,c}d}", ["a", "bd", "cd", "b", "ad"]) == ["a", "bd", "cd"]
    assert match_key("s.{web,db}.cpu", "s.web.cpu") is True
    assert match_key("s.{web,db}.cpu", "s.app.cpu") is False


def test_alternation_with_dots_spans_components() -> None:
    assert match_key("a.{b.c,d}.e", "a.b.c.e") is True
    assert match_key("a.{b.c,d}.e", "a.d.e") is True
    assert match_key("a.{b.c,d}.e", "a.b.e") is False
    assert expand_braces("a.{b.c,d}.e") == ["a.b.c.e", "a.d.e"]
    assert expand_braces("a.{b,c}.{d.e,f}") == ["a.{b,c}.d.e", "a.{b,c}.f"]
    assert expand_braces("a.{x,{y.z,w}}") == ["a.x", "a.y.z", "a.w"]
    assert expand_braces("a.*") == ["a.*"]


def test_expand_braces_limit() -> None:
    pattern = ".".join(["{a.b,c}"] * 4)  # 16 patterns
    assert len(expand_braces(pattern)) == 16
    with pytest.raises(InvalidPatternError) as info:
        expand_braces(pattern, limit=10)
    assert info.value.description == f"invalid pattern {pattern!r}: expands to more than 10 patterns"


def test_globstar_last_matches_one_or_more_components() -> None:
    assert match_key("a.**", "a.b") is True
    assert match_key("a.**", "a.b.c.d") is True
    assert match_key("a.**", "a") is False
    assert match_key("a.**", "ab.c") is False
    assert match_key("**", "x") is True
    assert match_key("**", "x.y.z") is True


def test_globstar_in_the_middle_for_autocreate() -> None:
    rule = compile_pattern("app.**.latency")
    assert rule("app.web.latency") is True
    assert rule("app.web.eu.host1.latency") is True
    assert rule("app.latency") is False
    assert rule("app.web.latency.p99") is False
    assert match_key("a.b**", "a.b") is True
    assert match_key("a.b**", "a.bc.d") is True
    assert match_key("a.b**", "a.c") is False


def test_literal_patterns() -> None:
    assert match_key("a.b.c", "a.b.c") is True
    assert match_key("a.b.c", "a.b.cd") is False
    assert names("b", ["a", "b", "c"]) == ["b"]
    assert names("b", {"a", "b"}) == ["b"]
    assert names("b", {"a": 1}) == []
    assert names("b", iter(["a", "b"])) == ["b"]


def test_regex_characters_are_literal() -> None:
    assert match_key("a+b.(c)|d$", "a+b.(c)|d$") is True
    assert match_key("a+b.*", "aab.x") is False
    assert names("^x*", ["^xy", "xy"]) == ["^xy"]
    assert names("a,b", ["a,b", "a"]) == ["a,b"]


def test_filter_names_with_sets_and_large_listing() -> None:
    listing = [f"host{i}" for i in range(100_000)]
    assert names("{host7,host99999,nohost}", listing) == ["host7", "host99999"]
    assert names("{host7,host99999,nohost}", set(listing)) == ["host7", "host99999"]
    assert names("host9999?", listing) == [f"host9999{i}" for i in range(10)]
    assert len(names("host*", listing)) == 100_000


def test_compiled_forms_are_cached() -> None:
    assert compile_component("a*") is compile_component("a*")
    assert compile_pattern("x.*.y") is compile_pattern("x.*.y")
    assert compile_component("a[bc]").fullmatch("ab") is not None
    assert compile_component("a[bc]").match("abc") is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet="abc-_", min_size=1, max_size=4), min_size=1, max_size=4),
    st.lists(st.sampled_from(["*", "?", "[ab]", "[!a]", "{a,bc,}", "a", "b", "-"]), min_size=1, max_size=3),
)
def test_component_and_whole_key_matching_agree(key_parts: list[str], tokens: list[str]) -> None:
    component = "".join(tokens)
    key = ".".join(key_parts)
    pattern = ".".join(["*"] * (len(key_parts) - 1) + [component])
    assert match_key(pattern, key) == bool(filter_names(component, [key_parts[-1]]))
