"""The answer pipeline of GRADING.md 4b: normalize, synonyms, rejects first, regex, guarded typos; commands by token."""

from __future__ import annotations

import pytest

from labkit.grading.answers import Reject, edit_distance, is_negation, match_text, normalize
from labkit.grading.commands import match_command, parse_command

COW = ["copy-on-write", "cow", "copy on write strategy"]
COW_REJECT = [Reject("union mount", "That stacks layers."), Reject("copy on read", "Reads never copy.")]


@pytest.mark.parametrize("typed, canonical_form", [
    ("  Copy-On-Write. ", "copy on write"),
    ("$ `copy_on_write`", "copy on write"),
    ('"COW"!', "cow"),
    ("copy \u2013 on \t write", "copy on write"),
    ("\uff23\uff4f\uff37", "cow"),  # full-width letters fold by NFKC
])
def test_normalize_folds_case_space_separators_quotes_prompt_and_punctuation(typed, canonical_form):
    """Spelling variants that mean the same answer normalize to the same text."""
    assert normalize(typed) == canonical_form


@pytest.mark.parametrize("answer, accepted, how", [
    ("copy-on-write", True, "exact"),
    ("Copy on write", True, "exact"),
    ("CoW", True, "exact"),
    ("copy on wirte", True, "fuzzy"),      # a swapped pair is one typo
    ("coppy-on-write", True, "fuzzy"),
    ("union mount", False, "reject"),
    ("copy on read", False, "reject"),    # a reject is checked before any fuzzy match
    ("copy on reed", False, "reject"),    # nearer a reject than any accept: never accepted
    ("cwo", False, "none"),               # short answers get no typo tolerance
    ("overlay", False, "none"),
])
def test_short_answer_table(answer, accepted, how):
    """Each answer gets the verdict and the route GRADING.md prescribes."""
    m = match_text(answer, COW, COW_REJECT, fuzzy=True)
    assert (m.accepted, m.how) == (accepted, how)


def test_fuzzy_match_reports_the_canonical_spelling():
    """A typo of a long word is accepted and the canonical spelling is shown."""
    m = match_text("copy on wirte", COW, COW_REJECT, fuzzy=True)
    assert m.canonical == "copy-on-write"


@pytest.mark.parametrize("answer, accept", [
    ("mutable", ["immutable"]),
    ("immutable", ["mutable"]),
    ("stateful", ["stateless"]),
    ("stateless", ["stateful"]),
    ("unstateless", ["stateless"]),
])
def test_near_miss_antonyms_never_pass_even_without_a_reject_list(answer, accept):
    """Negating prefixes and opposite suffixes are never typos, whatever the edit count."""
    assert not match_text(answer, accept, fuzzy=True).accepted


def test_near_miss_antonyms_get_their_own_feedback():
    """A listed near-miss is rejected with its own feedback."""
    m = match_text("Stateful", ["stateless"], [Reject("stateful", "The opposite.")], fuzzy=True)
    assert (m.accepted, m.how, m.feedback) == (False, "reject", "The opposite.")


@pytest.mark.parametrize("answer, ok", [("imutable", True), ("stateles", True), ("statless", True), ("immutabel", True)])
def test_real_typos_of_long_words_are_accepted(answer, ok):
    """One or two slips in a long word are tolerated."""
    assert match_text(answer, ["immutable", "stateless"], fuzzy=True).accepted is ok


def test_edit_budget_grows_with_length_only():
    """At most 1 edit up to 8 characters, 2 beyond."""
    assert match_text("namspace", ["namespace"], fuzzy=True).accepted          # 9 chars, 1 edit
    assert match_text("nmspce", ["namespace"], fuzzy=True).accepted is False     # 3 edits
    assert match_text("cgroupz", ["cgroups"], fuzzy=True).accepted              # 7 chars, 1 edit
    assert match_text("cgroopz", ["cgroups"], fuzzy=True).accepted is False     # 7 chars, 2 edits


def test_fuzzy_is_opt_in_and_can_be_capped():
    """Without fuzzy only exact synonyms pass; max_edits caps the tolerance."""
    assert not match_text("copy on wirte", COW).accepted
    assert not match_text("kopy on wirte", COW, fuzzy=1).accepted
    assert match_text("kopy on wirte", COW, fuzzy=True).accepted


def test_regex_matches_the_whole_normalized_answer():
    """A regex accepts answers the synonyms do not list, after the reject list."""
    assert match_text("137 (128+9)", ["137"], regex=r"137\b.*").accepted
    assert not match_text("1370", ["137"], regex=r"137\b.*").accepted


def test_edit_distance_counts_a_swap_as_one():
    """The optimal-string-alignment distance treats a transposition as one edit."""
    assert edit_distance("wirte", "write") == 1
    assert edit_distance("mutable", "immutable") == 2
    assert is_negation("mutable", "immutable") and not is_negation("imutable", "immutable")


INSPECT = ["docker inspect ...", "docker container inspect ..."]


@pytest.mark.parametrize("answer, accepted", [
    ("docker inspect", True),
    ("docker inspect frontend-app", True),
    ("$ docker container inspect frontend-app", True),
    ("labkit inspect frontend-app", True),
    ("sudo docker inspect frontend-app", True),
    ("docker inspect --type container frontend-app", True),
    ("sudo docker inspect -f '{{.State.Pid}}' frontend-app", False),   # one field, not the full JSON
    ("docker image inspect busybox", False),                           # an image, not a container
    ("docker inspect --type=image busybox", False),
    ("docker inspect web && docker rm -f web", False),                 # two commands
    ("docker inspect web > /dev/null", False),                         # prints nothing
    ("docker ps", False),
    ("docker rm", False),
    ("docker inspekt", False),      # never fuzzy
    ("docker", False),
    ("inspect", False),
])
def test_command_table(answer, accepted):
    """Commands pass only when their tokens match through the alias table."""
    assert match_command(answer, INSPECT).accepted is accepted


def test_docker_ps_never_passes_for_docker_rm():
    """The pair that a similarity ratio confuses differs here by a token."""
    assert not match_command("docker ps", ["docker rm"]).accepted
    assert not match_command("docker rm web", ["docker ps"]).accepted


@pytest.mark.parametrize("a, b", [
    ("docker ps -a", "docker ps --all"),
    ("docker ps -a", "labkit container ls --all"),
    ("docker ps -aq", "docker ps -q -a"),
    ("docker run -d --name web -e A=1 busybox sleep 1", "docker run --env=A=1 --detach --name=web busybox sleep 1"),
    ("docker inspect -f '{{.State.Pid}}' web", "docker inspect --format={{.State.Pid}} web"),
    ("docker volume ls", "docker volume list"),
    ("docker rmi busybox", "docker image rm busybox"),
    ("docker inspect web", "docker inspect --type container web"),
    ("docker inspect -f '{{.State.Pid}}' web", "docker inspect -f '{{ .State.Pid }}' web"),
    ("docker run busybox true", "docker run busybox:latest true"),
    ("docker run busybox true", "docker run docker.io/library/busybox true"),
    ("docker volume create pgdata", "docker volume create --name pgdata"),
])
def test_command_aliases_fold_to_one_canonical_form(a, b):
    """Aliased programs, management commands and flag spellings compare equal."""
    assert parse_command(a) == parse_command(b)


def test_flags_after_the_image_belong_to_the_containers_command():
    """`run IMAGE CMD -d` passes -d to CMD, so it differs from `run -d IMAGE CMD`."""
    assert parse_command("docker run busybox ls -d") != parse_command("docker run -d busybox ls")


def test_command_reject_feedback_and_unclosed_quote():
    """Known wrong commands get feedback; an unclosed quote is invalid, not a crash."""
    m = match_command("docker ps -a", INSPECT, [Reject("docker ps ...", "ps lists; inspect shows one.")])
    assert (m.how, m.feedback) == ("reject", "ps lists; inspect shows one.")
    bad = match_command("docker inspect 'web", INSPECT)
    assert bad.how == "invalid" and "quote" in bad.feedback


def test_placeholders_match_any_single_word():
    """`<name>` in an accepted command stands for any one word."""
    assert match_command("docker stop web", ["docker stop <container>"]).accepted
    assert not match_command("docker stop web db", ["docker stop <container>"]).accepted
