"""Ids, names and references follow Docker's rules."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.errors import AmbiguousReference, InvalidName
from labkit.model import names


def test_new_id_is_64_hex():
    """A container id is 64 lowercase hex characters, and 12 are shown."""
    cid = names.new_id()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert names.short_id(cid) == cid[:12]


@pytest.mark.parametrize("good", ["web", "frontend-app", "a1", "A.b_c-d", "/web"])
def test_valid_names(good):
    """Names of two or more characters from [a-zA-Z0-9_.-], not starting with a symbol, are accepted."""
    assert names.check_name(good) == good.lstrip("/")


@pytest.mark.parametrize("bad", ["a", "-web", "_x", ".x", "has space", "ü-name", "", "a/b"])
def test_invalid_names(bad):
    """Anything else gets Docker's message."""
    with pytest.raises(InvalidName) as info:
        names.check_name(bad)
    assert str(info.value) == f"Invalid container name ({bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"


@given(st.integers(0, 10_000))
def test_generated_names_look_like_dockers(seed):
    """Generated names are adjective_surname, never boring_wozniak, and valid names."""
    name = names.random_name(random.Random(seed))
    assert re.fullmatch(r"[a-z]+_[a-z]+", name)
    assert name != "boring_wozniak"
    names.check_name(name)


def test_pick_name_falls_back_to_short_id():
    """After six clashes the short id is used."""

    class Everything:
        def __contains__(self, item):
            return True

        def __iter__(self):
            return iter(())

    cid = names.new_id()
    taken = set()
    rng = random.Random(1)
    first = names.pick_name(taken, cid, random.Random(1))
    assert first == names.random_name(rng)
    # Take every name the generator could offer: the short id remains.
    all_names = {f"{a}_{s}" for a in names.ADJECTIVES for s in names.SURNAMES}
    all_names |= {f"{n}{d}" for n in all_names for d in range(10)}
    assert names.pick_name(all_names, cid) == cid[:12]


def test_resolve_order():
    """A reference resolves as full id, then exact name, then unique id prefix."""
    a, b = "ab" + "0" * 62, "ac" + "1" * 62
    table = {"web": a, "ac": b}
    assert names.resolve(a, table, [a, b]) == a
    assert names.resolve("web", table, [a, b]) == a
    assert names.resolve("/web", table, [a, b]) == a
    assert names.resolve("ac", table, [a, b]) == b  # the name wins over the prefix of b
    assert names.resolve("ab0", table, [a, b]) == a
    assert names.resolve("zz", table, [a, b]) is None


def test_ambiguous_prefix():
    """A prefix shared by two ids is refused with Docker's message."""
    a, b = "ab" + "0" * 62, "ab" + "1" * 62
    with pytest.raises(AmbiguousReference) as info:
        names.resolve("ab", {}, [a, b])
    assert str(info.value) == "multiple IDs found with provided prefix: ab"
