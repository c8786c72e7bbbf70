"""Every reader rule of protocol/SPEC.md has a vector, and every vector names a rule of SPEC.md.

SPEC Appendix D lists each check a reader MUST make on bytes, by id (``R-…``), with the outcome
of its failure; each id also stands in the text where the rule is stated (SPEC.md, or
POSTGRESQL.md for the rows of a table). Each invalid vector
names, in its ``rule`` field, the first rule it breaks in the order SPEC prescribes. A rule with
no vector is a check nobody tests, so a new MUST without a vector fails here, as does a vector
naming a rule SPEC does not have, or one whose outcome is not its rule's.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from tests.protocol.vectorfiles import EXPECT, REPO, vector_files

SPEC = (REPO / "protocol" / "SPEC.md").read_text(encoding="utf-8")
APPENDIX = SPEC[SPEC.index("## Appendix D. Reader rules") :].split("\n## ", 1)[0]
BODY = SPEC[: SPEC.index("## Appendix D. Reader rules")] + (
    REPO / "protocol" / "POSTGRESQL.md"
).read_text(encoding="utf-8")
"""Where rules are stated: SPEC.md before its appendix, and POSTGRESQL.md (the rowset digest)."""

_ROW = re.compile(r"^\| `(R-[A-Z0-9-]+)` \| ([^|]+) \| ([a-z ]+) \| ([^|]+) \|$", re.M)
RULES = {m[1]: m[3] for m in _ROW.finditer(APPENDIX)}
"""Rule id -> the outcome its failure is."""

_BEHAVIOUR = re.compile(r"^\| ([^|`][^|]*) \| ([0-9.]+) \| ([^|]+) \|$", re.M)


def _vectors_by_rule() -> dict[str, list[str]]:
    by_rule: dict[str, list[str]] = defaultdict(list)
    for vf in vector_files():
        for v in vf.content["vectors"]:
            if "rule" in v:
                by_rule[v["rule"]].append(f"{vf.area}/{v['name']}")
    return by_rule


BY_RULE = _vectors_by_rule()


def test_appendix_d_lists_rules_of_known_outcomes() -> None:
    assert len(RULES) >= 80
    assert len(_ROW.findall(APPENDIX)) == len(RULES), "a rule id is listed twice"
    unknown = {rule: outcome for rule, outcome in RULES.items() if outcome not in EXPECT}
    assert unknown == {}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_is_stated_in_the_text(rule: str) -> None:
    assert f"[{rule}]" in BODY, f"{rule} is in Appendix D but marks no rule in the text"


def test_every_rule_marked_in_the_text_is_listed() -> None:
    marked = set(re.findall(r"\[(R-[A-Z0-9-]+)\]", BODY))
    assert marked - set(RULES) == set()


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_has_a_vector_of_its_outcome(rule: str) -> None:
    assert BY_RULE.get(rule), f"no invalid vector breaks {rule}"


def test_every_vector_names_a_rule_of_the_spec_with_its_outcome() -> None:
    wrong = []
    for vf in vector_files():
        for v in vf.content["vectors"]:
            if v["result"] != "invalid":
                continue
            rule = v.get("rule")
            if rule not in RULES:
                wrong.append(f"{vf.area}/{v['name']}: rule {rule!r} is not in Appendix D")
            elif RULES[rule] != v["expect"]:
                wrong.append(f"{vf.area}/{v['name']}: {v['expect']}, {rule} is {RULES[rule]}")
    assert wrong == []


def test_requirements_without_vectors_name_what_checks_them() -> None:
    rows = _BEHAVIOUR.findall(APPENDIX)
    assert len(rows) >= 4
    for requirement, _section, checked_by in rows:
        if requirement.strip() == "requirement":
            continue
        paths = re.findall(r"`((?:tests|transferd)/[^`]+)`", checked_by)
        assert paths, f"{requirement}: names no file that checks it"
        for path in paths:
            assert (REPO / Path(path)).is_file(), f"{requirement}: {path} does not exist"


def test_the_vector_readme_counts_are_true() -> None:
    """protocol/vectors/README.md's table gives each file's number of vectors: it stays true."""
    readme = (REPO / "protocol" / "vectors" / "README.md").read_text(encoding="utf-8")
    stated = {
        m[1]: int(m[2])
        for m in re.finditer(r"^\| `([a-z_/]+\.json)` \| [^|]+ \| (\d+) \|", readme, re.M)
    }
    actual = {
        str(vf.path.relative_to(REPO / "protocol" / "vectors")): vf.content["number_of_vectors"]
        for vf in vector_files()
    }
    assert stated == actual
