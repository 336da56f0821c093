"""The lifecycle diagram, drawn from the transitions table itself.

Every arrow comes from :data:`labkit.model.lifecycle.TRANSITIONS`: a ``Move(to)``
outcome is an edge ``status → to`` labelled with its verbs. Nothing here restates
a rule; only where the boxes sit is chosen by hand (:data:`POSITIONS`).

Two kinds of rule would tangle the picture if drawn as arrows, so they are found
in the table and written once in a box instead: a verb that leads to the same
status from *every* drawn status (``rm -f`` → deleted, ``restart`` → running).
A verb that changes nothing (``Unchanged``) draws no arrow; the process's own
exit (``exit``) and its restart policy are dashed arrows, since nobody types them.

:class:`LifecycleWidget` adds a button per verb: legal ones call the engine,
refused ones show Docker's error, worded by the same table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from labkit.errors import LabkitError, NoSuchContainer
from labkit.model.lifecycle import (
    BY_ITSELF,
    TRANSITIONS,
    USER_VERBS,
    Move,
    Outcome,
    Refused,
    Status,
    Unchanged,
    Verb,
)
from labkit.viz import palette as P

if TYPE_CHECKING:
    from labkit.engine import Engine

S = Status

#: The five statuses the lesson draws; the others appear when asked for or when current.
LESSON = (S.CREATED, S.RUNNING, S.PAUSED, S.EXITED, S.DELETED)

#: Where each status's box sits (axes units, 0–100).
POSITIONS: Mapping[Status, tuple[float, float]] = {
    S.CREATED: (12.0, 74.0),
    S.RUNNING: (45.0, 74.0),
    S.PAUSED: (84.0, 74.0),
    S.EXITED: (45.0, 35.0),
    S.DELETED: (12.0, 35.0),
    S.RESTARTING: (84.0, 50.0),
    S.REMOVING: (12.0, 0.0),
    S.DEAD: (45.0, 0.0),
}

_BOX_W, _BOX_H = 17.0, 9.0


@dataclass(frozen=True)
class Edge:
    """An arrow of the diagram: the verbs that move a container from one status to another."""

    source: Status
    target: Status
    verbs: tuple[Verb, ...]

    @property
    def by_itself(self) -> bool:
        """Nobody types this move: the process's own exit makes it, or its restart policy."""
        return all(v in BY_ITSELF for v in self.verbs)

    @property
    def label(self) -> str:
        return ", ".join(str(v) for v in self.verbs)


def edges(table: Mapping[Status, Mapping[Verb, Outcome]] = TRANSITIONS,
          statuses: Sequence[Status] = LESSON) -> tuple[list[Edge], list[tuple[Verb, Status]]]:
    """The diagram's arrows and its "from every status" rules, read from ``table``.

    Returns:
        ``(edges, everywhere)``: one :class:`Edge` per (source, target) pair among
        ``statuses`` (self-loops left out), and the ``(verb, target)`` pairs that
        hold from every drawn status that has a row in the table.
    """
    rows = [s for s in statuses if s in table]
    everywhere: list[tuple[Verb, Status]] = []
    for verb in Verb:
        outs = [table[s][verb] for s in rows]
        targets = {o.to for o in outs if isinstance(o, Move)}
        if len(rows) > 1 and len(targets) == 1 and all(isinstance(o, Move) for o in outs):
            everywhere.append((verb, targets.pop()))
    skip = {v for v, _ in everywhere}
    grouped: dict[tuple[Status, Status], list[Verb]] = {}
    for s in rows:
        for verb, out in table[s].items():
            if verb in skip or not isinstance(out, Move) or out.to == s or out.to not in statuses:
                continue
            grouped.setdefault((s, out.to), []).append(verb)
    return [Edge(a, b, tuple(vs)) for (a, b), vs in grouped.items()], everywhere


def verbs_from(status: Status, table: Mapping[Status, Mapping[Verb, Outcome]] = TRANSITIONS
               ) -> tuple[list[Verb], list[Verb], list[Verb]]:
    """``(moves, no-ops, refused)``: the user verbs from ``status``, as the table sorts them."""
    row = table.get(status, {})
    moves: list[Verb] = [v for v in USER_VERBS if isinstance(row.get(v), Move)]
    same: list[Verb] = [v for v in USER_VERBS if isinstance(row.get(v), Unchanged)]
    refused: list[Verb] = [v for v in USER_VERBS if v not in moves and v not in same]
    return moves, same, refused


def refusal(status: Status, verb: Verb, cid: str = "<id>", ref: str = "<name>",
            table: Mapping[Status, Mapping[Verb, Outcome]] = TRANSITIONS) -> str | None:
    """Docker's error for ``verb`` in ``status`` (from the table), or ``None`` when it is legal."""
    if status not in table:
        return f"No such container: {ref}"
    out = table[status][verb]
    if not isinstance(out, Refused):
        return None
    return out.message.format(id=cid, ref=ref, status=status.value)


def draw(status: Status | str | None = None, *, all_statuses: bool = False,
         table: Mapping[Status, Mapping[Verb, Outcome]] = TRANSITIONS, name: str = "", into: Any = None) -> Any:
    """The lifecycle diagram, with ``status`` (if given) highlighted.

    The current status's box is vermillion with white text; the arrows that leave it
    are vermillion too, and a footer lists what each verb would do from there.

    Artists carry ``gid`` names tests can find: ``status:NAME`` (boxes) and
    ``edge:SOURCE->TARGET`` (arrows).

    Drawn on ``into``, a figure made before, when given (see :func:`labkit.viz.palette.figure`).
    """
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    current = Status(status) if status is not None else None
    statuses = list(Status) if all_statuses else list(LESSON)
    if current is not None and current not in statuses:
        statuses.append(current)
    arrows, everywhere = edges(table, statuses)

    fig = P.figure(13.0, 7.5, into=into)
    ax = P.blank_axes(fig, ylim=(5.0 if not all_statuses else -14.0, 100.0))
    title = "The container lifecycle"
    if name and current is not None:
        title += f": {name} is {current.value}"
    elif current is not None:
        title += f" (now: {current.value})"
    ax.text(50, 98, title, ha="center", va="top", fontsize=P.TITLE, fontweight="bold", family=P.FONT)

    for s in statuses:
        x, y = POSITIONS.get(s, (50.0, 50.0))
        on = s == current
        ax.add_patch(FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
                                    boxstyle="round,pad=0.4,rounding_size=2", linewidth=2.5 if on else 1.5,
                                    facecolor=P.CURRENT if on else P.IDLE, edgecolor=P.BLACK,
                                    gid=f"status:{s.value}", zorder=2))
        ax.text(x, y, s.value, ha="center", va="center", fontsize=P.LABEL + 2, fontweight="bold",
                color=P.WHITE if on else P.BLACK, family=P.FONT, zorder=3)

    if everywhere:
        lines = ["from every status:"] + [f"{v.value} → {t.value}" for v, t in everywhere]
        # Beside "exited" unless "restarting" is drawn: its arrows to the left need that room for their labels.
        note_y = 35.0 if S.RESTARTING not in statuses else (3.0 if all_statuses else 23.0)
        ax.text(68, note_y, "\n".join(lines), ha="left", va="center", fontsize=P.TEXT, family=P.FONT, gid="everywhere",
                bbox={"boxstyle": "round,pad=0.5", "facecolor": P.WHITE, "edgecolor": P.GREY})

    patches, labels = [], []
    for e in arrows:
        (x1, y1), (x2, y2) = POSITIONS.get(e.source, (50, 50)), POSITIONS.get(e.target, (50, 50))
        # Two arrows between one pair of boxes both bend, apart; a dashed one (nobody types it) bends out of
        # the way of a solid one, which stays straight.
        back = any(o.source == e.target and o.target == e.source and (e.by_itself or not o.by_itself)
                   for o in arrows)
        rad = 0.18 if back else 0.0
        hot = e.source == current
        colour = P.CURRENT if hot else P.GREY
        arrow = FancyArrowPatch(_edge_of((x1, y1), (x2, y2)), _edge_of((x2, y2), (x1, y1)),
                                arrowstyle="-|>", mutation_scale=26,
                                linewidth=3.2 if hot else 2.0, color=colour,
                                linestyle="--" if e.by_itself else "-",
                                connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2,
                                gid=f"edge:{e.source.value}->{e.target.value}", zorder=1)
        P.add_arrow(ax, arrow)
        patches.append(arrow)
        # arc3 bends the arrow towards (dy, -dx); its middle sits rad/2 of that away from the chord's.
        dx, dy = x2 - x1, y2 - y1
        norm = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        lx, ly = (x1 + x2) / 2 + rad / 2 * dy, (y1 + y2) / 2 - rad / 2 * dx
        ha, va = "center", "center"
        if back:
            px, py = dy / norm, -dx / norm
            lx, ly = lx + 1.0 * px, ly + 1.5 * py
            ha = "left" if px > 0.3 else "right" if px < -0.3 else "center"
            va = "bottom" if py > 0.3 else "top" if py < -0.3 else "center"
        label = "exit (PID 1 ends)" if all(v is Verb.EXIT for v in e.verbs) else e.label
        text = ax.text(lx, ly, label, ha=ha, va=va, fontsize=P.TEXT, color=P.BLACK, family=P.FONT,
                       fontweight="bold" if hot else "normal", zorder=4,
                       gid=f"label:{e.source.value}->{e.target.value}",
                       bbox={"boxstyle": "round,pad=0.2", "facecolor": P.WHITE, "edgecolor": "none", "alpha": 0.9})
        labels.append((text, arrow, None if back else (_edge_of((x1, y1), (x2, y2)), _edge_of((x2, y2), (x1, y1)))))
    _place_labels(fig, ax, labels, patches)

    if any(e.by_itself for e in arrows):
        policy = any(Verb.RESTART_POLICY in e.verbs for e in arrows)
        ax.text(2, 20, "dashed: nobody types it" if policy else "dashed: the process ends by itself",
                ha="left", va="top", fontsize=P.SMALL, color=P.GREY, family=P.FONT)
    if current is not None and current in table:
        moves, same, refused = verbs_from(current, table)
        foot = f"from {current.value}:  legal: {', '.join(map(str, moves)) or '-'}"
        if same:
            foot += f"   ·   no change: {', '.join(map(str, same))}"
        foot += f"   ·   refused: {', '.join(map(str, refused)) or '-'}"
        ax.text(50, 13 if not all_statuses else -8, foot, ha="center", va="top", fontsize=P.TEXT, family=P.FONT, color=P.BLACK)
    elif current is Status.DELETED:
        ax.text(50, 13, "deleted: the container and its writable layer are gone; no verb applies",
                ha="center", va="top", fontsize=P.TEXT, family=P.FONT)
    return fig


#: Where along a straight arrow its label may sit (fractions of the drawn arrow, tail to tip), best first.
_ALONG = (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8)


def _place_labels(fig: Any, ax: Any, labels: list[tuple[Any, Any, Any]], arrows: list[Any]) -> None:
    """Put each straight arrow's label where it touches no other label and no box.

    Curved arrows (a pair between the same two statuses) keep their labels beside
    the curve's middle. A straight arrow's label is tried on the arrow at its middle,
    then further towards either end, then beside the arrow (either side); it takes
    the first place where its box, with half an em of margin, overlaps no label
    placed before it, no status box and no note, and crosses no other arrow (else
    the first that overlaps nothing). Labels are placed in the arrows' order and in
    the reverse order, and the better result kept. Extents are measured with the
    figure's own renderer, as it will draw (without hinting, as :func:`palette.png` draws).
    """
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    import matplotlib

    with matplotlib.rc_context(P.RC):  # type: ignore[arg-type]
        _place(fig, ax, labels, arrows)


def _place(fig: Any, ax: Any, labels: list[tuple[Any, Any, Any]], arrows: list[Any]) -> None:
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    from matplotlib.path import Path
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    # Half an em of the labels' type on every side: two labels closer than one em read as one.
    margin = 0.5 * P.TEXT * fig.dpi / 72

    def extent(artist: Any) -> Any:
        box = artist.get_window_extent(renderer)
        return Bbox.from_extents(box.x0 - margin, box.y0 - margin, box.x1 + margin, box.y1 + margin)

    obstacles = [extent(a) for a in ax.patches if (a.get_gid() or "").startswith("status:")]
    obstacles += [extent(t) for t in ax.texts if t.get_gid() == "everywhere"]
    placed = [extent(t) for t, _arrow, chord in labels if chord is None]
    to_data = ax.transData.inverted()
    # Each arrow as polylines in data units (its line and its head; curves flattened).
    lines = {id(a): [Path(p) for p in a.get_path().to_polygons(closed_only=False)] for a in arrows}

    def crosses(box: Any, own: Any) -> bool:
        return any(line.intersects_bbox(box, filled=False) for a in arrows if a is not own for line in lines[id(a)])

    straight = [(text, arrow, chord) for text, arrow, chord in labels if chord is not None]
    # A one-line label's box is its size put at its anchor by its alignment (as Text lays it out), so
    # each label is measured once rather than once per place tried.
    sizes = {id(text): text.get_window_extent(renderer).size for text, _arrow, _chord in straight}

    def box_at(text: Any, x: float, y: float, ha: str, va: str) -> Any:
        w, h = sizes[id(text)]
        px, py = ax.transData.transform((x, y))
        x0 = px - {"left": 0.0, "center": w / 2, "right": w}[ha]
        y0 = py - {"bottom": 0.0, "center": h / 2, "top": h}[va]
        return Bbox.from_extents(x0 - margin, y0 - margin, x0 + w + margin, y0 + h + margin)

    def attempt(order: list[tuple[Any, Any, Any]]) -> tuple[int, int, list[tuple[Any, tuple[float, float, str, str]]]]:
        """Place labels in ``order``; (labels left overlapping, labels crossing an arrow, the places)."""
        taken, chosen, overlapping, crossing = list(placed), [], 0, 0
        for text, arrow, chord in order:
            options = _candidates(chord)
            best, best_cost, best_box = options[0], (1, 1), None
            for where in options:
                box = box_at(text, *where)
                cost = (int(any(box.overlaps(o) for o in obstacles + taken)),
                        int(crosses(box.transformed(to_data), arrow)))
                if cost < best_cost or best_box is None:
                    best, best_cost, best_box = where, cost, box
                if cost == (0, 0):
                    break
            taken.append(best_box)
            chosen.append((text, best))
            overlapping += best_cost[0]
            crossing += best_cost[1]
        return overlapping, crossing, chosen

    # The first label placed takes the best spot; try both orders and keep the better picture.
    first = attempt(straight)
    _o, _c, chosen = first if first[:2] == (0, 0) else min(first, attempt(straight[::-1]), key=lambda r: r[:2])
    for text, where in chosen:
        _put(text, *where)


def _candidates(chord: tuple[tuple[float, float], tuple[float, float]]) -> list[tuple[float, float, str, str]]:
    """Places for a straight arrow's label, best first: ``(x, y, ha, va)`` on the arrow, then beside it."""
    (x1, y1), (x2, y2) = chord
    dx, dy = x2 - x1, y2 - y1
    norm = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    px, py = dy / norm, -dx / norm
    out = [(x1 + t * dx, y1 + t * dy, "center", "center") for t in _ALONG[:5]]  # clear of the arrowhead
    for side in (1.0, -1.0):
        sx, sy = side * px, side * py
        ha = "left" if sx > 0.3 else "right" if sx < -0.3 else "center"
        va = "bottom" if sy > 0.3 else "top" if sy < -0.3 else "center"
        out += [(x1 + t * dx + sx, y1 + t * dy + 1.5 * sy, ha, va) for t in _ALONG]
    return out


def _put(text: Any, x: float, y: float, ha: str, va: str) -> None:
    text.set_position((x, y))
    text.set_horizontalalignment(ha)
    text.set_verticalalignment(va)


def _edge_of(centre: tuple[float, float], towards: tuple[float, float]) -> tuple[float, float]:
    """Where the line from a box's centre towards another point leaves the box (plus a margin)."""
    (x, y), (tx, ty) = centre, towards
    dx, dy = tx - x, ty - y
    a, b = _BOX_W / 2 + 1.2, _BOX_H / 2 + 1.8
    t = min(a / abs(dx) if dx else float("inf"), b / abs(dy) if dy else float("inf"))
    return x + t * dx, y + t * dy


def gather(engine: Engine, ref: str) -> Status:
    """The container's status now (``deleted`` when it no longer exists)."""
    try:
        return Status(engine.inspect(ref)["State"]["Status"])
    except NoSuchContainer:
        return Status.DELETED


def picture(engine: Engine, ref: str, all_statuses: bool = False) -> Any:
    """The diagram with ``ref``'s current status highlighted (NoSuchContainer if there is no ``ref``), stamped
    when the simulator's."""
    return P.mark_simulated(draw(Status(engine.inspect(ref)["State"]["Status"]), all_statuses=all_statuses,
                                 name=ref), engine.backend.simulated)


class LifecycleWidget:
    """The diagram plus one button per verb, acting on a real container.

    A legal verb's button (green) calls the engine; a refused verb's button (red)
    carries Docker's error as its tooltip, and clicking it asks the engine anyway,
    which answers with that same error from the same table. After each click the
    diagram is redrawn from the container's status.

    Args:
        engine: A :class:`labkit.Engine`.
        ref: The container's name or id.
        stop_timeout: Seconds ``stop`` and ``restart`` wait before SIGKILL (Docker waits 10).
        exec_command: What the ``exec`` button runs.
    """

    def __init__(self, engine: Engine, ref: str, stop_timeout: float = 2.0,
                 exec_command: Sequence[str] = ("true",)) -> None:
        # ipywidgets loads when a widget is made: a picture alone does not need it
        import ipywidgets as W

        self.engine = engine
        self.ref = ref
        self.stop_timeout = stop_timeout
        self.exec_command = list(exec_command)
        self.image = W.Image(format="png")
        self.message = W.HTML()
        self.buttons = {v: W.Button(description=v.value, layout=W.Layout(width="90px")) for v in USER_VERBS}
        for verb, button in self.buttons.items():
            button.on_click(lambda _b, verb=verb: self.click(verb))
        self.widget = W.VBox([W.HBox(list(self.buttons.values())), self.message, self.image])
        self.status = Status.DELETED
        self.cid = ref
        self._figure: Any = None
        self.refresh()

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)

    def refresh(self) -> None:
        """Read the status, restyle the buttons, redraw."""
        try:
            info = self.engine.inspect(self.ref)
            self.status, self.cid = Status(info["State"]["Status"]), info["Id"]
        except NoSuchContainer:
            self.status = Status.DELETED
        for verb, button in self.buttons.items():
            why = refusal(self.status, verb, cid=self.cid, ref=self.ref)
            button.button_style = "danger" if why else "success"
            button.tooltip = why or f"{verb.value}: legal from {self.status.value}"
        # One figure drawn again on every click: its canvas and the text sizes measured on it are kept.
        self._figure = P.mark_simulated(draw(self.status, name=self.ref, into=self._figure),
                                        self.engine.backend.simulated)
        self.image.value = P.png(self._figure)

    def click(self, verb: Verb) -> None:
        """Do ``verb`` to the container through the engine; show what happened."""
        before = self.status
        try:
            self._do(verb)
        except LabkitError as err:
            self.message.value = f"<b style='color:{P.CURRENT}'>Error response from daemon:</b> {escape(err.message)}"
            if isinstance(err, NoSuchContainer):
                self.message.value += (f"<br>{escape(self.ref)} is gone (deleted here, or by the notebook's clean-up): "
                                       "run the cell that creates it again to bring it back.")
        else:
            after = gather(self.engine, self.ref)
            self.message.value = f"<b>{escape(verb.value)}</b>: {before.value} → {after.value}"
        self.refresh()

    def _do(self, verb: Verb) -> None:
        e, ref = self.engine, self.ref
        actions = {
            Verb.START: lambda: e.start(ref),
            Verb.STOP: lambda: e.stop(ref, timeout=self.stop_timeout),
            Verb.RESTART: lambda: e.restart(ref, timeout=self.stop_timeout),
            Verb.KILL: lambda: e.kill(ref),
            Verb.PAUSE: lambda: e.pause(ref),
            Verb.UNPAUSE: lambda: e.unpause(ref),
            Verb.RM: lambda: e.rm(ref),
            Verb.RM_FORCE: lambda: e.rm(ref, force=True),
            Verb.EXEC: lambda: e.exec_output(ref, self.exec_command),
        }
        actions[verb]()


__all__ = ["LESSON", "POSITIONS", "Edge", "LifecycleWidget", "draw", "edges", "gather", "picture", "refusal",
           "verbs_from"]
