"""Which paths of a tree a command takes: rclone's filter rules, with rclone's syntax and meaning.

An operator who moves data knows rclone's ``--include``, ``--exclude`` and ``--filter``; these are
the same rules, so a filter written for rclone selects the same files here (rclone's
docs/content/filtering.md is the reference):

- a pattern is a glob: ``*`` any run of characters but ``/``, ``**`` any run including ``/``,
  ``?`` one character but ``/``, ``[a-z]`` and ``[!a-z]`` a class, ``{a,b}`` alternatives,
  ``{{re}}`` a regular expression, ``\\c`` the character ``c`` itself;
- a pattern starting with ``/`` is anchored at the root of the tree; any other matches the end of
  the path, from a whole path component (``file.csv`` matches ``file.csv`` and ``a/file.csv``,
  never ``afile.csv``);
- rules are tried in order and the first that matches decides; a path no rule matches is taken.
  The order is rclone's, whatever the order on the command line: every ``--include``, then every
  ``--exclude``, then every ``--filter`` (``+ PATTERN`` or ``- PATTERN``; ``!`` clears the rules
  so far), each followed by the rules of its ``-from`` files; and when anything was included,
  a last ``- /**`` that leaves out everything else;
- a pattern ending in ``/`` is a directory rule: ``--exclude tmp/`` leaves out every directory
  named ``tmp`` and all below it, and the walk does not even list it. Directory rules are also
  derived from the file rules, as rclone does (``--include /a/*.csv`` needs only the directory
  ``/a/``), so an include does not walk the whole tree.

Pure: patterns in, decisions out. Paths are ``/``-separated and relative to the tree's root;
bytes that are not UTF-8 are matched as their surrogate escapes (``os.fsdecode``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from transferd.errors import ConfigError

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "lower": "a-z",
    "upper": "A-Z",
    "space": r"\s",
    "xdigit": "0-9a-fA-F",
    "punct": r"!-/:-@\[-`{-~",
}
_TOO_HARD = re.compile(r"\{[^{}]*(\*\*|/)[^{}]*\}|\{\{|\}\}|\{[^{}]*\{")
"""Patterns from which no directory rule can be derived: alternatives holding ``/`` or ``**``,
a regular expression, nested braces. For these every directory is walked (rclone's rule)."""


@dataclass(frozen=True)
class Rule:
    """One rule: take (``+``) or leave out (``-``) the paths ``pattern`` matches."""

    include: bool
    pattern: str

    def line(self) -> str:
        """The rule as a filter-file line: ``+ *.csv``, ``- tmp/``."""
        return f"{'+' if self.include else '-'} {self.pattern}"


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """The regular expression a pattern stands for (ConfigError when it is malformed)."""
    out = ["^" if glob.startswith("/") else "(^|/)"]
    text = glob[1:] if glob.startswith("/") else glob
    i, depth, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 == n:
                raise _bad(glob, "it ends with a lone \\")
            out.append(re.escape(text[i + 1]))
            i += 2
            continue
        if c == "*":
            stars = len(text[i:]) - len(text[i:].lstrip("*"))
            if stars > 2:
                raise _bad(glob, "more than two * in a row")
            out.append("[^/]*" if stars == 1 else ".*")
            i += stars
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "[":
            cls, i = _char_class(glob, text, i)
            out.append(cls)
            continue
        elif c == "]":
            raise _bad(glob, "a ] without its [")
        elif c == "{" and text.startswith("{{", i):
            end = text.find("}}", i + 2)
            if end < 0:
                raise _bad(glob, "a {{ without its }}")
            while text.startswith("}}}", end):  # }}} ends the regexp after its own }
                end += 1
            out.append(f"({text[i + 2 : end]})")
            i = end + 2
            continue
        elif c == "{":
            depth += 1
            out.append("(")
        elif c == "}":
            if depth == 0:
                raise _bad(glob, "a } without its {")
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise _bad(glob, "a { without its }")
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as e:
        raise _bad(glob, str(e)) from None


def _char_class(glob: str, text: str, start: int) -> tuple[str, int]:
    """``[…]`` at ``start``: its regular expression and the index after it."""
    i = start + 1
    out = ["["]
    if i < len(text) and text[i] in "!^":
        out.append("^")
        i += 1
    first = True
    while i < len(text):
        c = text[i]
        if c == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        if c == "[" and text.startswith("[:", i):
            end = text.find(":]", i + 2)
            name = text[i + 2 : end] if end > 0 else ""
            if name not in _POSIX_CLASSES:
                raise _bad(glob, f"unknown character class [:{name}:]")
            out.append(_POSIX_CLASSES[name])
            i = end + 2
        elif c == "\\" and i + 1 < len(text):
            out.append(text[i : i + 2])
            i += 2
        else:
            out.append("\\" + c if c in "[]" else c)
            i += 1
        first = False
    raise _bad(glob, "a [ without its ]")


def _bad(glob: str, why: str) -> ConfigError:
    return ConfigError(
        f"filter pattern {glob!r} is malformed: {why}",
        hint="patterns follow rclone's filter syntax: *, **, ?, [a-z], {a,b}; a leading / "
        "anchors at the root, a trailing / names a directory",
    )


def directory_globs(glob: str) -> list[str]:
    """The directory patterns a path under which ``glob`` can match must pass: ``/a/b/*.csv``
    needs ``/a/b/`` and ``/a/``; ``*.csv`` may be anywhere (``/**``)."""
    if _TOO_HARD.search(glob):
        return ["/**"]
    glob = re.sub(r"/{2,}", "/", glob)
    out: list[str] = []
    while True:
        slash, stars = glob.rfind("/"), glob.rfind("**")
        cut, what = (stars, "**") if stars > slash else (slash, "")
        if cut < 0:
            return out or ["/**"]
        glob = glob[:cut]
        derived = glob + what + "/"
        if not out or out[-1] != derived:
            out.append(derived)


@dataclass
class _Compiled:
    include: bool
    regex: re.Pattern[str]


@dataclass
class PathFilter:
    """Rules in the order they are tried; ``includes`` answers for a path."""

    rules: list[Rule] = field(default_factory=list)
    _files: list[_Compiled] = field(default_factory=list, repr=False)
    _dirs: list[_Compiled] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        given, self.rules = self.rules, []
        for rule in given:
            self.add(rule)

    def add(self, rule: Rule) -> None:
        glob = rule.pattern
        if not glob:
            raise ConfigError("a filter pattern is empty")
        self.rules.append(rule)
        is_dir = glob.endswith("/")
        is_file = not is_dir
        if is_dir and not rule.include:
            glob += "**"  # leaving out dir/ leaves out all below it
        if "**" in glob:
            is_dir = is_file = True
        regex = glob_to_regex(glob)
        if is_file:
            self._files.append(_Compiled(rule.include, regex))
            if rule.include or glob == "*":
                for derived in directory_globs(glob):
                    if derived != "/":
                        self._dirs.append(_Compiled(rule.include, glob_to_regex(derived)))
        if is_dir:
            self._dirs.append(_Compiled(rule.include, regex))

    def clear(self) -> None:
        self.rules, self._files, self._dirs = [], [], []

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def includes(self, path: bytes | str, *, is_dir: bool = False) -> bool:
        """Whether the file (or symlink) at ``path`` is taken; with ``is_dir``, whether the
        directory at ``path`` is walked (and recorded)."""
        text = path if isinstance(path, str) else path.decode("utf-8", "surrogateescape")
        if is_dir:
            return _first(self._dirs, text.strip("/") + "/")
        return _first(self._files, text)

    def selection(self) -> str:
        """The rules as ``--filter`` options in the order tried: what the catalog records, so
        that ``verify --against`` leaves out of the comparison what the copy left out."""
        return shlex.join(f"--filter={rule.line()}" for rule in self.rules)

    @classmethod
    def from_selection(cls, text: str) -> PathFilter:
        """The filter a catalog's ``selection`` records (the inverse of ``selection()``)."""
        rules: list[str] = []
        for word in shlex.split(text):
            if not word.startswith("--filter="):
                raise ConfigError(f"selection {text!r} holds {word!r}, not a --filter=RULE")
            rules.append(word.removeprefix("--filter="))
        return cls.from_options(filters=rules)

    @classmethod
    def from_options(
        cls,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        filters: Sequence[str] = (),
        include_from: Iterable[Sequence[str]] = (),
        exclude_from: Iterable[Sequence[str]] = (),
        filter_from: Iterable[Sequence[str]] = (),
    ) -> PathFilter:
        """The rules of the options, in rclone's order (module docstring). The ``*_from``
        arguments are the lines of each file given (see ``rule_lines``)."""
        f = cls()
        included = False
        for pattern in include:
            f.add(Rule(True, pattern))
            included = True
        for lines in include_from:
            for pattern in lines:
                f.add(Rule(True, pattern))
                included = True
        for pattern in exclude:
            f.add(Rule(False, pattern))
        for lines in exclude_from:
            for pattern in lines:
                f.add(Rule(False, pattern))
        for line in filters:
            f._add_line(line)
        for lines in filter_from:
            for line in lines:
                f._add_line(line)
        if included:
            f.add(Rule(False, "/**"))
        return f

    def _add_line(self, line: str) -> None:
        if line == "!":
            self.clear()
        elif line.startswith(("+ ", "- ")):
            self.add(Rule(line[0] == "+", line[2:]))
        else:
            raise ConfigError(
                f"filter rule {line!r} is malformed",
                hint="a rule is '+ PATTERN' (take), '- PATTERN' (leave out) or '!' (clear)",
            )


def rule_lines(text: str) -> list[str]:
    """The rules of a filter file: one a line, blank lines and lines starting with ``#`` or
    ``;`` left out, surrounding spaces stripped (rclone's ``--filter-from`` format)."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and line[0] not in "#;"]


def _first(rules: list[_Compiled], text: str) -> bool:
    for rule in rules:
        if rule.regex.search(text):
            return rule.include
    return True
