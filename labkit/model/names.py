"""Container ids and names, made and checked the way Docker does.

An id is 32 random bytes as 64 lowercase hex characters; 12 are shown. A
name matches ``[a-zA-Z0-9][a-zA-Z0-9_.-]+`` and is stored with a leading
``/``. Without ``--name`` a container gets ``adjective_surname``; a clash
retries with a digit appended, and after six tries the short id is used.
A reference (what a user types) resolves as a full id, then an exact name,
then a unique id prefix.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable, Iterable, Mapping

from labkit.errors import AmbiguousReference, InvalidName

#: The labels that mark a service's replicas (``labkit service``): the service's name, and the replica's
#: slot (1…N). The engine reads them to find a service's containers; the service's controller writes them.
SERVICE_LABEL = "labkit.service"
SERVICE_SLOT_LABEL = "labkit.service.slot"

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ID_RE = re.compile(r"^[0-9a-f]{64}$")
SHORT = 12

ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold brave busy "
    "charming clever compassionate competent condescending confident cool cranky crazy dazzling determined "
    "distracted dreamy eager ecstatic elastic elated elegant eloquent epic exciting fervent festive "
    "flamboyant focused friendly frosty funny gallant gifted goofy gracious great happy hardcore heuristic "
    "hopeful hungry infallible inspiring intelligent interesting jolly jovial keen kind laughing loving "
    "lucid magical modest musing mystifying naughty nervous nice nifty nostalgic objective optimistic "
    "peaceful pedantic pensive practical priceless quirky quizzical recursing relaxed reverent romantic "
    "sad serene sharp silly sleepy stoic strange stupefied suspicious sweet tender thirsty trusting "
    "unruffled upbeat vibrant vigilant vigorous wizardly wonderful xenodochial youthful zealous zen"
).split()

SURNAMES = (
    "agnesi albattani allen almeida antonelli archimedes ardinghelli aryabhata austin babbage banach "
    "bardeen bartik bassi beaver bell benz bhabha bhaskara black blackburn blackwell bohr booth borg bose "
    "bouman boyd brahmagupta brattain brown buck burnell cannon carson cartwright carver cerf chandrasekhar "
    "chaplygin chatelet chatterjee chaum chebyshev clarke cohen colden cori cray curie curran darwin "
    "davinci dewdney dhawan diffie dijkstra dirac driscoll dubinsky easley edison einstein elbakyan elgamal "
    "elion ellis engelbart euclid euler faraday feistel fermat fermi feynman franklin gagarin galileo "
    "galois ganguly gates gauss germain goldberg goldstine goldwasser golick goodall gould greider "
    "grothendieck haibt hamilton haslett hawking heisenberg hellman hermann herschel hertz heyrovsky "
    "hodgkin hofstadter hoover hopper hugle hypatia ishizaka jackson jang jemison jennings jepsen johnson "
    "joliot jones kalam kapitsa kare keldysh keller kepler khayyam khorana kilby kirch knuth kowalevski "
    "lalande lamarr lamport leakey leavitt lederberg lehmann lewin lichterman liskov lovelace lumiere "
    "mahavira margulis matsumoto maxwell mayer mccarthy mcclintock mclaren mclean mcnulty meitner mendel "
    "mendeleev meninsky merkle mestorf mirzakhani montalcini moore morse moser murdock napier nash neumann "
    "newton nightingale nobel noether northcutt noyce panini pare pascal pasteur payne perlman pike "
    "poincare poitras proskuriakova ptolemy raman ramanujan rhodes ride ritchie robinson roentgen rosalind "
    "rubin saha sammet sanderson satoshi shamir shannon shaw shirley shockley shtern sinoussi snyder "
    "solomon spence stonebraker sutherland swanson swartz swirles taussig tesla tharp thompson torvalds tu "
    "turing varahamihira vaughan villani visvesvaraya volhard wescoff wilbur wiles williams williamson "
    "wilson wing wozniak wright wu yalow yonath zhukovsky"
).split()


def new_id(rand: Callable[[int], str] = secrets.token_hex) -> str:
    """A fresh 64-hex container id."""
    return rand(32)


def short_id(cid: str) -> str:
    """The 12 characters of an id that ``ps`` shows."""
    return cid[:SHORT]


def check_name(name: str) -> str:
    """Return ``name`` without a leading ``/``, or raise :class:`InvalidName`."""
    if not NAME_RE.match(name):
        raise InvalidName(name)
    return name.lstrip("/")


def random_name(rng: random.Random | None = None, retry: int = 0) -> str:
    """``adjective_surname`` (never ``boring_wozniak``), with ``retry`` appended after a clash."""
    rng = rng or random.Random()
    while True:
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        if name != "boring_wozniak":
            break
    return f"{name}{rng.randint(0, 9)}" if retry else name


def pick_name(taken: Iterable[str], cid: str, rng: random.Random | None = None) -> str:
    """A generated name not in ``taken``: six tries, then the short id."""
    used = set(taken)
    for attempt in range(6):
        name = random_name(rng, attempt)
        if name not in used:
            return name
    return short_id(cid)


def resolve(ref: str, names: Mapping[str, str], ids: Iterable[str]) -> str | None:
    """Find the container id that ``ref`` means.

    Args:
        ref: What the user typed: a full id, a name (with or without ``/``) or an id prefix.
        names: Every container's name (without ``/``) mapped to its id.
        ids: Every container's id.

    Returns:
        The id, or ``None`` if nothing matches.

    Raises:
        AmbiguousReference: When ``ref`` is a prefix of several ids.
    """
    all_ids = list(ids)
    if ID_RE.match(ref) and ref in all_ids:
        return ref
    name = ref[1:] if ref.startswith("/") else ref
    if name in names:
        return names[name]
    if not ref or not re.fullmatch(r"[0-9a-f]+", ref):
        return None
    found = [i for i in all_ids if i.startswith(ref)]
    if len(found) > 1:
        raise AmbiguousReference(ref)
    return found[0] if found else None
