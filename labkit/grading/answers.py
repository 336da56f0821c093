"""Judging typed free-text answers; commands are judged in :mod:`labkit.grading.commands`.

Free text goes through one pipeline, in this order (a later step never
overrides an earlier one):

1. :func:`normalize` — NFKC, casefold, trim; backticks, quotes, a leading
   ``$`` prompt and trailing punctuation stripped; runs of whitespace, ``-``
   and ``_`` made one space. "Copy-on-Write." and "copy on write" are one answer.
   An answer written as a sentence is read through :func:`readings`: "It is
   called copy-on-write", "in a volume" and "the Config key" are read as
   "copy on write", "volume" and "config" as well. A part in parentheses is
   judged on its own ("Control Groups (cgroups)": both parts name the answer;
   "namespaces (cgroups)": one part is wrong, so the answer is). An answer that
   negates itself ("not copy-on-write", "it isn't stateless") is never right.
2. Exact match against the accepted synonyms.
3. The reject list: known wrong answers (near-miss antonyms such as
   "mutable" for "immutable"), each with its own feedback.
4. An optional regular expression, matched against the whole normalized answer.
5. Typo tolerance, counted in *edits*, never as a similarity ratio (a ratio of
   0.8 lets "mutable" pass for "immutable"): only answers of 6 or more
   characters; at most 1 edit for an accepted word of up to 8 characters, 2
   beyond; only when the nearest accepted answer is strictly closer than every
   rejected one; never when the difference is a negating prefix or suffix
   ("im-", "un-", "-less"/"-ful"); never when the typed word is another word
   of the field (:data:`FIELD_WORDS`, and a question's own ``near_miss``
   list): "pgroups" is a word of its own, not a slip of "cgroups", and
   "stateliness" is not "stateless". A fuzzy match reports the canonical spelling.

Commands are judged apart, by token and never fuzzily (:mod:`labkit.grading.commands`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Quote characters stripped from free text (typographic ones too).
_QUOTES = "\"'`\u2018\u2019\u201c\u201d\u00ab\u00bb"
_TRAILING = ".,;:!?\u3002"
_SEPARATORS = re.compile(r"[\s\-_\u2010-\u2015]+")

#: Prefixes and suffixes that turn a word into its opposite: adding or removing one is never a typo.
NEGATIONS = ("im", "in", "un", "non", "dis", "ir", "il", "de", "a")
SUFFIX_SWAPS = (("less", "ful"), ("able", "less"))


@dataclass(frozen=True)
class Match:
    """How one answer compared with a question's accepted and rejected answers.

    Attributes:
        accepted: The answer counts as right.
        how: ``exact``, ``alias``, ``regex``, ``fuzzy``, ``reject``, ``invalid`` or ``none``.
        canonical: The accepted answer it matched, as the bank spells it (for ``fuzzy`` and ``alias``).
        feedback: A reject's own feedback, or why the answer could not be read.
    """

    accepted: bool
    how: str
    canonical: str = ""
    feedback: str = ""


@dataclass(frozen=True)
class Reject:
    """A known wrong answer and what to tell the learner who gives it."""

    answer: str
    feedback: str


# ---------------------------------------------------------------------------------------------
# Free text


def normalize(text: str) -> str:
    """The form free-text answers are compared in.

    >>> normalize('  $ `Copy-On_Write`. ')
    'copy on write'
    """
    text = unicodedata.normalize("NFKC", str(text)).casefold().strip()
    if text.startswith("$ "):
        text = text[2:]
    text = text.strip().strip(_QUOTES).strip()
    text = text.rstrip(_TRAILING).strip().strip(_QUOTES).strip()
    text = "".join(ch for ch in text if ch not in _QUOTES)
    return _SEPARATORS.sub(" ", text).strip()


def edit_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn ``a`` into ``b``.

    The optimal-string-alignment distance: a swapped pair ("wirte") is one typo, not two.
    """
    if a == b:
        return 0
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def max_edits(canonical: str) -> int:
    """Typos tolerated for an accepted answer: 1 up to 8 characters, 2 beyond."""
    return 1 if len(canonical) <= 8 else 2


def is_negation(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ, in some word, by a negating prefix or an opposite suffix.

    >>> is_negation("mutable", "immutable"), is_negation("stateful", "stateless")
    (True, True)
    """
    wa, wb = a.split(), b.split()
    if len(wa) != len(wb):
        return False
    for x, y in zip(wa, wb, strict=True):
        if x == y:
            continue
        short, long_ = sorted((x, y), key=len)
        if any(long_ == p + short for p in NEGATIONS):
            return True
        for s1, s2 in SUFFIX_SWAPS:
            for p, q in ((s1, s2), (s2, s1)):
                if x.endswith(p) and y.endswith(q) and x[: -len(p)] == y[: -len(q)]:
                    return True
    return False


#: Words that say "not": an answer holding one (and no accepted answer does) negates itself.
NEGATING_WORDS = frozenset({"not", "no", "never", "isnt", "arent", "wasnt", "doesnt", "dont", "cannot", "cant",
                            "neither", "nor", "without"})

#: Words of the field (and plain English words next to them). Typo tolerance never turns one of
#: these into another: a learner who typed "pgroups" wrote a word, not a slip of "cgroups".
FIELD_WORDS = frozenset("""
    cgroup cgroups pgroup pgroups pgrp process group groups control namespace namespaces
    chroot jail jails zone zones hypervisor vm vms kernel kernels module modules seccomp apparmor selinux
    capability capabilities ulimit ulimits rlimit nice quota quotas
    stateless stateful statefull stateliness statefulness state states status stable statistic
    mutable immutable ephemeral persistent permanent volatile durable
    volume volumes mount mounts bind tmpfs
    layer layers player players lawyer upper lower upperdir lowerdir workdir merged overlay overlayfs
    union unions aufs btrfs zfs devicemapper snapshot snapshots
    whiteout whiteouts blackout whitelist tombstone opaque
    copy copies copying read write writes written on up
    image images container containers config configs configuration state hostconfig networksettings
    label labels env environment
    inspect inspector prospect expect ps top stats logs info diff
    running paused exited created deleted stopped removed dead restarting
""".split())


def readings(text: str) -> list[str]:
    """The ways one normalized answer can be read: as typed, then with sentence words taken off.

    "It is called copy-on-write" also reads as "copy on write"; "in a volume" as "volume";
    "the Config key" as "config"; an answer that is only a filler ("it is") keeps itself.

    >>> readings("it is called copy on write")[-1]
    'copy on write'
    """
    out = [text]
    path = _ARROW.sub(".", text)  # "Config -> Env" is the path Config.Env
    if path != text:
        out.append(path)
    current = text
    while True:
        stripped = _LEAD.sub("", current, count=1)
        if stripped == current or not stripped:
            break
        current = stripped
        out.append(current)
    for form in list(out):
        tail = _TAIL.sub("", form)
        while tail and tail != form:
            out.append(tail)
            form, tail = tail, _TAIL.sub("", tail)
    return list(dict.fromkeys(out))


_LEAD = re.compile(
    r"^(?:i think|i believe|i guess|id say|i would say|i d say|definitely|surely|probably|maybe|my answer is|"
    r"the answer is|answer is|answer|"
    r"it is called|its called|they are called|theyre called|this is called|that is called|is called|called|"
    r"it is known as|its known as|known as|it is named|named|"
    r"it is copied|it gets copied|its copied|it is written|it goes|it should go|it puts|it creates|it writes|"
    r"it adds|it shows|it will show|it will be|it has|it counts|overlayfs puts|overlay puts|"
    r"it is|its|they are|theyre|this is|that is|thats|write it|put it|value|the value|"
    r"in|into|inside|to|on|under|within|at|by|using|use|via|with|overlayfs|overlay|linux|a|an|the)\s+")
_TAIL = re.compile(r"\s+(?:key|keys|field|fields|block|section|object|entry|part|mechanism|strategy|technique|"
                   r"method|principle|feature|marker|one|ones|thing|please|i think|of course|subsystem|"
                   r"of the kernel|in the kernel|of linux|in linux|app|apps|application|applications|"
                   r"service|services|container|containers|mounted into the container|mounted in the container|"
                   r"mounted into it|i think|i guess|i believe)$")
_PARENS = re.compile(r"\(([^()]*)\)")
_ARROW = re.compile(r"\s*(?:>|\u2192|\u203a)\s*")


def _singular(text: str) -> str:
    """Each word without a plural ``s`` ("containers" → "container"; "stateless" keeps its "ss")."""
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in text.split())


def parts(text: str) -> list[str]:
    """A normalized answer and the parts it put in parentheses or after a comma, each on its own
    (empty parts dropped).

    >>> parts("control groups (cgroups)")
    ['control groups', 'cgroups']
    """
    inner = [normalize(p) for p in _PARENS.findall(text)]
    outer, _, apposition = _PARENS.sub(" ", text).partition(", ")  # "copy-on-write, the CoW mechanism"
    return [p for p in [normalize(outer), normalize(apposition), *inner] if p]


def negates(text: str, accept: Sequence[str]) -> bool:
    """Whether an answer negates itself where no accepted answer does ("not copy on write")."""
    words = set(text.split())
    if not words & NEGATING_WORDS:
        return False
    return not any(set(normalize(a).split()) & NEGATING_WORDS for a in accept)


def match_text(
    answer: str,
    accept: Sequence[str],
    reject: Sequence[Reject] = (),
    regex: str | None = None,
    fuzzy: bool | int = False,
    near_miss: Sequence[str] = (),
) -> Match:
    """Judge a free-text answer by the pipeline in this module's docstring.

    Args:
        answer: What the learner typed.
        accept: Accepted answers; the first is the canonical spelling.
        reject: Known wrong answers with their feedback.
        regex: A pattern the whole normalized answer may match instead.
        fuzzy: Allow typo tolerance (step 5); a number caps the edits below the usual 1 or 2.
        near_miss: Words or phrases that are never read as a typo of an accepted answer
            (added to :data:`FIELD_WORDS` for this question).
    """
    whole = normalize(answer)
    if not whole:
        return Match(False, "invalid", feedback="The answer is empty.")
    if negates(whole, accept):
        return Match(False, "negated", feedback="Your answer says what it is not; say what it is.")
    pieces = parts(str(answer))
    if len(pieces) <= 1:
        return _match_one(whole, accept, reject, regex, fuzzy, near_miss)
    # "Control Groups (cgroups)": no part may be wrong, and one part must name the answer.
    results = [_match_one(p, accept, reject, regex, fuzzy, near_miss) for p in pieces]
    for r in results:
        if r.how in ("reject", "near miss"):
            return r
    right = [r for r in results if r.accepted]
    if right and all(r.accepted or r.how == "none" for r in results):
        return right[0]
    return _match_one(whole, accept, reject, regex, fuzzy, near_miss)


def _match_one(
    given: str,
    accept: Sequence[str],
    reject: Sequence[Reject],
    regex: str | None,
    fuzzy: bool | int,
    near_miss: Sequence[str],
) -> Match:
    """Judge one normalized answer (no parentheses) through every reading of it."""
    forms = readings(given)
    accepted = [(normalize(a), a) for a in accept]
    for form in forms:
        for norm, original in accepted:
            if form == norm:
                return Match(True, "exact", canonical=original)
    for form in forms:  # "state less" and "copyonwrite" are spacing slips; "containers" a plural
        for norm, original in accepted:
            if form.replace(" ", "") == norm.replace(" ", "") or _singular(form) == _singular(norm):
                return Match(True, "fuzzy", canonical=original)
    for form in forms:
        for r in reject:
            if form == normalize(r.answer):
                return Match(False, "reject", feedback=r.feedback)
    if regex:
        for form in forms:
            if re.fullmatch(regex, form):
                return Match(True, "regex", canonical=accepted[0][1] if accepted else "")
    misses = {normalize(n) for n in near_miss}
    for form in forms:
        if form in misses:
            return Match(False, "near miss", feedback=f"“{form}” is another word, not a slip of the right one.")
    if not (fuzzy and accepted):
        return Match(False, "none")
    known = FIELD_WORDS | {w for n in misses for w in n.split()}
    for form in reversed(forms):  # the barest reading first: "it is called coppy on write" -> "coppy on write"
        if len(form) < 5:
            continue
        best_d, best = min(((edit_distance(form, n), o) for n, o in accepted if len(n) >= 6 or len(form) >= 6),
                           key=lambda t: t[0], default=(99, ""))
        if not best:
            continue
        best_norm = normalize(best)
        nearest_reject = min((edit_distance(form, normalize(r.answer)) for r in reject), default=None)
        closer = nearest_reject is None or best_d < nearest_reject
        limit = max_edits(best_norm) if fuzzy is True else min(max_edits(best_norm), int(fuzzy))
        if best_d <= limit and closer and not is_negation(form, best_norm):
            other = [w for w in form.split() if w in known and w not in best_norm.split()]
            if other:
                return Match(False, "near miss",
                             feedback=f"“{other[0]}” is another word, not a slip of “{best}”.")
            return Match(True, "fuzzy", canonical=best)
        if nearest_reject is not None and nearest_reject <= max_edits(form):
            r = min(reject, key=lambda r: edit_distance(form, normalize(r.answer)))
            if not is_negation(form, normalize(r.answer)):
                return Match(False, "reject", feedback=r.feedback)
    return Match(False, "none")


# ---------------------------------------------------------------------------------------------
# Options in other words

#: Words that carry no claim of their own in an option or a paraphrase of it.
FILLER_WORDS = frozenset("""
    a an the it its it s is are was were be been being of and or to in into on onto at by with for from as that
    this these those which who whom what there their they them has have had do does did can could would will
    shall should may might just very so then than also both each every any some one i me my we our
    you your think guess believe say says answer option choice because since when while where how like
    but yet though get gets got command commands
""".split())

#: Words a paraphrase may use for an option's word (every word of a row reads as its first).
SYNONYMS = (
    ("virtual machine", "vm", "virtualmachine", "hypervisor"),
    ("ordinary", "regular", "normal", "plain", "usual"),
    ("delete", "remove", "erase", "destroy", "wipe"),
    ("lost", "gone", "vanish", "disappear"),
    ("keep", "preserve", "retain", "stay", "remain", "survive", "persist"),
    ("freeze", "frozen", "suspend"),
    ("limit", "cap", "restrict", "constrain", "budget"),
    ("isolate", "separate", "sandbox", "wall"),
    ("cgroup", "cgroups", "control group", "control groups", "kernel cgroup", "kernel cgroups"),
    # Namespaces are the kernel's: "the kernel's namespaces" claims no kernel of the container's own.
    ("namespace", "namespaces", "ns", "kernel namespace", "kernel namespaces"),
    ("exit", "exited", "stop", "stopped", "end", "ended", "finish", "terminate", "terminated"),
    ("exist", "there"),
    ("share", "common", "reuse"),
    ("copy", "duplicate", "clone"),
    ("memory", "ram"),
    ("database", "db"),
    ("store", "storage"),
    ("program", "application", "app"),
)

_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "s", "e", "ly")


def _stem(word: str) -> str:
    """A crude stem, enough to meet "isolated", "isolates" and "isolation" at "isol"."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    return word[:-2] if word.endswith("at") and len(word) >= 6 else word


_CANON: dict[str, str] = {}
for _row in SYNONYMS:
    for _w in _row:
        _CANON[" ".join(_stem(x) for x in _w.split())] = " ".join(_stem(x) for x in _row[0].split())


def content_words(text: str) -> set[str]:
    """The stems of what a text claims: filler words dropped, synonyms read as one word.

    >>> sorted(content_words("A lightweight VM, with its own kernel"))
    ['kernel', 'lightweight', 'machin', 'own', 'virtual']
    """
    stems = [_stem(w) for w in re.findall(r"[a-z0-9]+", normalize(text)) if w not in FILLER_WORDS]
    out: list[str] = []
    i = 0
    while i < len(stems):
        two = " ".join(stems[i:i + 2])
        if i + 1 < len(stems) and two in _CANON:
            out += _CANON[two].split()
            i += 2
            continue
        out += _CANON.get(stems[i], stems[i]).split()
        i += 1
    return set(out)


#: Of a paraphrase's content words, the share the option must hold; and of the option's, the share the
#: paraphrase must name (the gist: "an isolated process" for a process "isolated by namespaces and limited
#: by cgroups").
PARAPHRASE_PRECISION = 0.6
_OPTION_HEAD = re.compile(r"\s*[:\u2014]\s+|\s+-\s+")
PARAPHRASE_RECALL = 0.4


def _examples(option: str) -> list[str]:
    """The examples an option lists in a parenthesis ("(object storage, a database)"); an aside without a
    comma ("pid (process ids)") lists none."""
    return [e for inside in _PARENS.findall(option) if "," in inside for e in inside.split(",") if e.strip()]


def paraphrase(answer: str, options: Sequence[str], prompt: str = "") -> int | None:
    """The option an answer restates in other words, or ``None`` when it is not one option's unambiguously.

    An answer restates an option when most of its content words (:func:`content_words`) are the option's,
    it names a fair part of the option, at least one of them is the option's alone (no other option says
    it), and none is another option's alone; an answer that negates where the option does not is none.
    An option with a head ("The host's: you can look it up in the host's /proc") is named fairly by its head
    alone, in other words ("in the host's namespace").
    The question's ``prompt`` is its topic. Its words that no option says alone ("container" in "What is
    the state of the container afterwards?", when only the right option says it) count for no option; the
    ones an option does say alone count for that option but never against another: "the container still
    exists" speaks of the question's container, not of the option "Deleted: the container … gone".
    An option that lists examples in a parenthesis ("an external store (object storage, a database) every
    replica reaches") is named fairly by one of them with nothing the option does not say: "in a database
    every replica reaches", not "sessions survive" for "what it held in memory (sessions, caches)".

    "a normal process on the host" restates "Yes: it is an ordinary host process"; "a VM isolated by
    namespaces" restates neither "A lightweight virtual machine…" nor "A regular Linux process … isolated
    by namespaces…", since it names something only each of them says.
    """
    words = [content_words(o) for o in options]
    alone = [w - set().union(*(v for j, v in enumerate(words) if j != i)) for i, w in enumerate(words)]
    topic = content_words(prompt)
    said = content_words(answer) - (topic - set().union(*alone))
    if not said:
        return None
    negated = bool(set(normalize(answer).split()) & NEGATING_WORDS)
    claims = said - topic  # what the answer says beyond the question's own words
    found = []
    for i, own in enumerate(words):
        if not said & alone[i] or any(claims & alone[j] for j in range(len(words)) if j != i):
            continue
        if negated and not set(normalize(options[i]).split()) & NEGATING_WORDS:
            continue
        common = said & own
        head = content_words(_OPTION_HEAD.split(options[i])[0]) or own  # "The host's: you can look it up…"
        if len(common) / len(said) >= PARAPHRASE_PRECISION \
                and max(len(common) / len(own), len(said & head) / len(head)) >= PARAPHRASE_RECALL:
            found.append(i)
        elif common == said and any(said & content_words(e) for e in _examples(options[i])):
            found.append(i)  # "in a database every replica reaches": one example, and nothing the option does not say
    return found[0] if len(found) == 1 else None


def rejects(items: Iterable[dict[str, str]] | None) -> tuple[Reject, ...]:
    """The reject list as a bank writes it (``{answer, feedback}`` mappings)."""
    return tuple(Reject(str(i["answer"]), str(i.get("feedback", ""))) for i in items or ())
