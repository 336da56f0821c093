"""Building an image from a Labfile, one layer per COPY and RUN.

The build follows Docker's classic builder step by step, because that is
what the lesson explains:

- ``FROM`` starts from an image's layers and config (``scratch``: none).
- ``COPY`` writes the copied files, and the directories above them, into a
  fresh directory: that directory is the new layer.
- ``RUN`` runs the command in a real container whose root is an overlay of
  the image so far under an empty upper directory; what the command changed
  (files it wrote, whiteouts for files it deleted, opaque directories) is
  exactly that upper directory, and it becomes the new layer.
- ``ENV``, ``CMD``, ``ENTRYPOINT``, ``WORKDIR``, ``EXPOSE`` and ``LABEL``
  change the config only; history records them as empty layers.

The container itself is the caller's: :data:`Runner` is a seam that the
linux backend fills, so this module never mounts or forks.
"""

from __future__ import annotations

import copy
import dataclasses
import glob
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence

from labkit.errors import BuildFailed, HostUnsupported, LabfileError, NoSuchImage
from labkit.images import labfile, tree
from labkit.images.base import ensure_busybox
from labkit.images.ownership import Ownership
from labkit.images.store import (
    Image,
    ImageStore,
    Layer,
    canonical_json,
    empty_config,
    normalize_ref,
    parse_ref,
    rfc3339_nano,
)
from labkit.model.overlay import MAX_STACK

Runner = Callable[[list[str], str, list[str], list[str], str], tuple[int, str]]
"""``runner(lowerdirs_top_first, upper_dir, argv, env, workdir) -> (exit_code, output)``.

Runs ``argv`` (with environment ``env``, a list of ``KEY=VALUE``, in directory
``workdir``) in a real container whose root filesystem is
``overlay(lowerdir=lowerdirs, upperdir=upper_dir)``, waits for it, and returns
its exit code and its stdout and stderr combined. The runner may create
siblings of ``upper_dir`` (same filesystem) for overlay's workdir and a mount
point; the builder removes them. When it returns nothing may still be mounted
or running, and ``upper_dir`` holds the changes as the kernel made them.
"""

LABFILE_NAMES = ("Labfile", "Dockerfile")
_VAR_RE = re.compile(r"\\\$|\$(?:\{(\w+)(?::([-+])([^}]*))?\}|(\w+))")


def find_labfile(context_dir: str, file: str | None = None) -> str:
    """The Labfile to build: ``file`` (relative to the context), else ``Labfile``, else ``Dockerfile``.

    Raises:
        LabfileError: When there is none.
    """
    if file is not None:
        path = file if os.path.isabs(file) else os.path.join(context_dir, file)
        if not os.path.isfile(path):
            raise LabfileError(f"no such Labfile: {file}", f"Check the path; it is read relative to {context_dir}")
        return path
    for name in LABFILE_NAMES:
        path = os.path.join(context_dir, name)
        if os.path.isfile(path):
            return path
    raise LabfileError(
        f"no Labfile or Dockerfile in {context_dir}",
        "Write a Labfile there (it starts with FROM busybox) or name one with file=",
    )


def expand(word: str, env: Mapping[str, str]) -> str:
    """Substitute ``$VAR``, ``${VAR}``, ``${VAR:-default}`` and ``${VAR:+alt}`` as Docker does in COPY, ENV, WORKDIR, LABEL."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "\\$":
            return "$"
        value = env.get(m.group(1) or m.group(4), "")
        if m.group(2) == "-":
            return value or m.group(3)
        if m.group(2) == "+":
            return m.group(3) if value else ""
        return value

    return _VAR_RE.sub(sub, word)


def _go_list(argv: list[str]) -> str:
    """``["node" "server.js"]``: how Docker's history prints a command (Go's %q of a slice)."""
    return "[" + " ".join(_go_quote(a) for a in argv) + "]"


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _env_dict(env_list: list[str]) -> dict[str, str]:
    return dict(tuple(e.split("=", 1)) if "=" in e else (e, "") for e in env_list)  # type: ignore[misc]


@dataclasses.dataclass
class _Build:
    """What the build has made so far."""

    store: ImageStore
    context: str
    runner: Runner
    on_step: Callable[[str], object]
    work: str
    created: str
    layers: list[Layer] = dataclasses.field(default_factory=list)
    history: list[dict] = dataclasses.field(default_factory=list)
    config: dict = dataclasses.field(default_factory=empty_config)
    new_layers: list[str] = dataclasses.field(default_factory=list)
    cmd_set: bool = False
    step: int = 0

    def lowerdirs(self) -> list[str]:
        return [layer.path for layer in reversed(self.layers)]

    def env(self) -> dict[str, str]:
        return _env_dict(self.config.get("Env") or [])

    def note(self, created_by: str) -> None:
        self.history.append({"created": self.created, "created_by": created_by, "empty_layer": True})

    def add_layer(self, layer: Layer) -> None:
        self.layers.append(layer)
        self.new_layers.append(layer.digest)
        entry = {"created": self.created, "created_by": layer.created_by}
        if layer.comment:
            entry["comment"] = layer.comment
        self.history.append(entry)

    def state_id(self) -> str:
        """The id this state would have as an image (what each step prints)."""
        doc = {"config": self.config, "history": self.history, "diff_ids": [x.digest for x in self.layers]}
        return hashlib.sha256(canonical_json(doc)).hexdigest()


def build(
    store: ImageStore,
    context_dir: str,
    tag: str | None,
    runner: Runner,
    file: str | None = None,
    on_step: Callable[[str], object] = print,
    labels: Mapping[str, str] | None = None,
) -> Image:
    """Build the Labfile in ``context_dir`` into an image, tagged ``tag``.

    Args:
        store: Where layers and the image go.
        context_dir: The build context; COPY reads only from here.
        tag: ``name[:tag]``, or ``None`` for an untagged image.
        runner: Runs each RUN in a real container (see :data:`Runner`).
        file: The Labfile's path if not ``Labfile``/``Dockerfile`` in the context.
        on_step: Receives each line of progress (``Step 2/7 : COPY …``, `` ---> 3f2a…``, RUN output).
        labels: Extra labels for the final image.

    Returns:
        The built image.

    Raises:
        LabfileError: The Labfile cannot be parsed.
        BuildFailed: A COPY source is missing or outside the context, or a RUN
            exited non-zero (``The command '/bin/sh -c false' returned a non-zero code: 1``).
        NoSuchImage: FROM names an image that is not in the store.

    A failed build leaves no tag, no image and no layer it made.
    """
    context = os.path.realpath(context_dir)
    if not os.path.isdir(context):
        raise BuildFailed(
            f"unable to prepare context: path {context_dir!r} not found", "Give the directory that holds the Labfile"
        )
    path = find_labfile(context, file)
    if tag is not None:
        name, t = parse_ref(tag)
        tag = f"{name}:{t}"
    with open(path, encoding="utf-8") as f:
        instructions = labfile.parse(f.read(), os.path.basename(path))
    layered = sum(inst.keyword in _LAYERED for inst in instructions)
    if layered >= MAX_STACK:  # the base image adds its own layers: checked again once FROM is read
        raise _too_deep(layered)
    b = _Build(store, context, runner, on_step, store.mkdtemp("build-"), rfc3339_nano())
    try:
        for b.step, inst in enumerate(instructions, start=1):
            on_step(f"Step {b.step}/{len(instructions)} : {inst.text}")
            shown = _STEPS[inst.keyword](b, inst)
            if inst.keyword == "FROM":
                depth = len(b.layers) + sum(later.keyword in _LAYERED for later in instructions[b.step:])
                if depth >= MAX_STACK:
                    raise _too_deep(depth)
            on_step(f" ---> {(shown or b.state_id())[:12]}")
        config = copy.deepcopy(b.config)
        if labels:
            config["Labels"] = {**(config.get("Labels") or {}), **labels}
        image = store.add_image(b.layers, config, tag, b.history, created=b.created)
    except BaseException:
        store.prune_layers(b.new_layers)
        raise
    finally:
        shutil.rmtree(b.work, ignore_errors=True)
    on_step(f"Successfully built {image.short_id}")
    if tag:
        on_step(f"Successfully tagged {tag}")
    return image


#: The instructions that add a layer.
_LAYERED = ("COPY", "ADD", "RUN")


def _too_deep(depth: int) -> LabfileError:
    """A Labfile whose image would have more layers than an overlay stacks under a container."""
    return LabfileError(
        f"this Labfile makes an image of {depth} layers; overlayfs stacks at most {MAX_STACK} lower layers "
        f"(OVL_MAX_STACK), one of them a container's own, so an image may have {MAX_STACK - 1}",
        "Join RUN lines with && and COPY whole directories, so that fewer steps make layers",
    )


def _from(b: _Build, inst: labfile.Instruction) -> str | None:
    ref = inst.args[0]
    if ref == "scratch":
        return "scratch"
    try:
        base = b.store.get(ref)
    except NoSuchImage:
        if normalize_ref(ref) != "busybox:latest":
            raise
        base = ensure_busybox(b.store)
    b.layers = list(base.layers)
    b.history = [dict(h) for h in base.history]
    b.config = {**empty_config(), **copy.deepcopy(base.config)}
    if inst.role:
        layered = [h for h in b.history if not h.get("empty_layer")]
        if layered and not layered[-1].get("comment"):
            layered[-1]["comment"] = inst.role
    return base.id[7:]


def _resolve_owner(b: _Build, spec: str | None) -> tuple[int, int]:
    """``--chown=user[:group]`` as numbers, names looked up in the image's /etc/passwd and /etc/group.

    Without it every file and directory COPY makes is ``0:0``, whoever owns the context
    (Docker's reference: "All new files and directories are created with a UID and GID of
    0"). Rootless the user's own ids are 0 inside, so the files simply stay the user's.
    """
    if not spec:
        return 0, 0
    user, _, group = spec.partition(":")

    def number(name: str, table: str) -> int:
        if name.isdigit():
            return int(name)
        found = tree.lookup(b.lowerdirs(), f"/etc/{table}")
        if found:
            with open(found, encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.strip().split(":")
                    if len(fields) > 2 and fields[0] == name:
                        return int(fields[2])
        raise BuildFailed(
            f"unable to convert uid/gid chown string to host mapping: can't find uid for user {name}: no such user: {name}"
            if table == "passwd"
            else f"unable to find group {name}",
            f"Use numbers (--chown=1000:1000) or a name in the image's /etc/{table}",
        )

    uid = number(user, "passwd")
    gid = number(group, "group") if group else uid
    return uid, gid


def _copy(b: _Build, inst: labfile.Instruction) -> None:
    env = b.env()
    *sources, dest = [expand(a, env) for a in inst.args]
    uid, gid = _resolve_owner(b, inst.flag("chown"))
    workdir = b.config.get("WorkingDir") or "/"
    dest_abs = dest if dest.startswith("/") else os.path.join(workdir, dest)
    matches = []
    for src in sources:
        pattern = os.path.join(b.context, src)
        if os.path.commonpath([os.path.normpath(pattern), b.context]) != b.context:  # ../ names it, found or not
            raise BuildFailed(f"COPY failed: forbidden path outside the build context: {src}",
                              "Only files inside the build context can be copied; move them into it")
        found = sorted(glob.glob(pattern)) if glob.has_magic(src) else [pattern]
        if not found or not os.path.lexists(found[0]):
            raise BuildFailed(
                f"COPY failed: file not found in build context: stat {src}: file does not exist",
                f"COPY reads from the build context {b.context}",
            )
        for match in found:
            real = os.path.realpath(match)
            if os.path.commonpath([real, b.context]) != b.context:
                raise BuildFailed(
                    f"COPY failed: forbidden path outside the build context: {src} ({real})",
                    "Only files inside the build context can be copied; move them into it",
                )
            matches.append(real)
    below = tree.lookup(b.lowerdirs(), dest_abs)
    dest_is_dir = (
        dest.endswith("/")
        or len(matches) > 1
        or any(os.path.isdir(m) for m in matches)
        or (below is not None and os.path.isdir(below) and not os.path.islink(below))
    )
    # New directories take the newest source's mtime, so the same context gives the same layer.
    stamp = max(os.stat(m).st_mtime for m in matches)
    root = os.path.join(b.work, f"copy-{b.step}")
    os.mkdir(root, 0o755)
    lowers = b.lowerdirs()
    links: dict = {}
    made: dict[str, int] = {}
    for real in matches:
        if os.path.isdir(real):
            target = tree.make_dirs(root, dest_abs, lowers, uid, gid, stamp, made)
            for name in sorted(os.listdir(real)):
                s = os.path.join(real, name)
                st = os.lstat(s)
                if os.path.isdir(s) and not os.path.islink(s):
                    tree.copy_tree(s, os.path.join(target, name), uid, gid)
                else:
                    _replace(os.path.join(target, name))
                    tree.copy_entry(s, os.path.join(target, name), st, links, uid, gid)
        else:
            if dest_is_dir:
                target = os.path.join(
                    tree.make_dirs(root, dest_abs, lowers, uid, gid, stamp, made), os.path.basename(real)
                )
            else:
                parent = tree.make_dirs(
                    root, os.path.dirname(dest_abs.rstrip("/")), lowers, uid, gid, stamp, made
                )
                target = os.path.join(parent, os.path.basename(dest_abs.rstrip("/")))
            _replace(target)
            tree.copy_entry(real, target, os.stat(real), links, uid, gid)
    tree.restore_times(made)
    if inst.flag("chown") and b.store.ownership.mapped:  # as root the copy gave the owner itself
        _chown_mapped(b.store.ownership, root, lowers, made, uid, gid)
    layer = b.store.commit_layer(root, "", inst.role)
    kind = "file" if len(matches) == 1 and not os.path.isdir(matches[0]) else "dir"
    b.add_layer(dataclasses.replace(layer, created_by=f"/bin/sh -c #(nop) COPY {kind}:{layer.digest[7:]} in {dest} "))


def _chown_mapped(ownership: Ownership, root: str, lowers: list[str], made: dict[str, int], uid: int,
                  gid: int) -> None:
    """``--chown`` in a rootless build: what the copy made gets the owner, through the store's id map.

    A user cannot chown(2) to another host id, so the copy left everything its own
    (root in a container); the ownership strategy gives the owner with the user's
    subordinate ids (:meth:`labkit.images.ownership.Ownership.chown`). Parent directories
    that exist in a lower layer keep that layer's owner, as they do as root.
    """
    paths = []
    for cur, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(cur, name)
            if path in made:
                below = tree.lookup(lowers, "/" + os.path.relpath(path, root))
                if below is not None and os.path.isdir(below) and not os.path.islink(below):
                    continue
            paths.append(path)
    try:
        ownership.chown(paths, uid, gid)
    except HostUnsupported as err:
        raise BuildFailed(f"COPY --chown={uid}:{gid} failed: {err.message}", err.hint) from None


def _replace(path: str) -> None:
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _run(b: _Build, inst: labfile.Instruction) -> None:
    argv = inst.argv()
    workdir = b.config.get("WorkingDir") or "/"
    run_dir = os.path.join(b.work, f"run-{b.step}")
    upper = os.path.join(run_dir, "upper")
    os.makedirs(upper)
    os.chmod(upper, 0o755)
    lowers = b.lowerdirs()
    if not lowers:
        # overlayfs needs a lower layer; FROM scratch gives it an empty one.
        lowers = [os.path.join(run_dir, "empty")]
        os.mkdir(lowers[0], 0o755)
    elif workdir != "/" and tree.lookup(lowers, workdir) is None:
        tree.make_dirs(upper, workdir, lowers)  # Docker creates a missing WORKDIR too
    cid = secrets.token_hex(32)[:12]
    b.on_step(f" ---> Running in {cid}")
    code, output = b.runner(lowers, upper, argv, list(b.config.get("Env") or []), workdir)
    for line in output.splitlines():
        b.on_step(line)
    if code != 0:
        raise BuildFailed(
            f"The command '{' '.join(argv)}' returned a non-zero code: {code}",
            "Fix the RUN line (its output is above) and build again",
        )
    b.on_step(f" ---> Removed intermediate container {cid}")
    created_by = " ".join(argv)
    b.add_layer(b.store.commit_layer(upper, created_by, inst.role))


def _env(b: _Build, inst: labfile.Instruction) -> None:
    before = b.env()
    env_list = list(b.config.get("Env") or [])
    shown = []
    for key, value in inst.pairs():
        value = expand(value, before)
        shown.append(f"{key}={value}")
        env_list = [e for e in env_list if e.split("=", 1)[0] != key] + [f"{key}={value}"]
    b.config["Env"] = env_list
    b.note("/bin/sh -c #(nop)  ENV " + " ".join(shown))


def _label(b: _Build, inst: labfile.Instruction) -> None:
    env = b.env()
    labels = dict(b.config.get("Labels") or {})
    shown = []
    for key, value in inst.pairs():
        labels[key] = expand(value, env)
        shown.append(f"{key}={labels[key]}")
    b.config["Labels"] = labels
    b.note("/bin/sh -c #(nop)  LABEL " + " ".join(shown))


def _cmd(b: _Build, inst: labfile.Instruction) -> None:
    b.config["Cmd"] = inst.argv()
    b.cmd_set = True
    b.note(f"/bin/sh -c #(nop)  CMD {_go_list(inst.argv())}")


def _entrypoint(b: _Build, inst: labfile.Instruction) -> None:
    b.config["Entrypoint"] = inst.argv()
    if not b.cmd_set:
        b.config["Cmd"] = None  # Docker drops an inherited CMD when ENTRYPOINT changes
    b.note(f"/bin/sh -c #(nop)  ENTRYPOINT {_go_list(inst.argv())}")


def _workdir(b: _Build, inst: labfile.Instruction) -> None:
    path = expand(inst.args[0], b.env())
    if not path.startswith("/"):
        path = os.path.join(b.config.get("WorkingDir") or "/", path)
    b.config["WorkingDir"] = os.path.normpath(path)
    b.note(f"/bin/sh -c #(nop) WORKDIR {b.config['WorkingDir']}")


def _expose(b: _Build, inst: labfile.Instruction) -> None:
    ports = dict(b.config.get("ExposedPorts") or {})
    for port in inst.args:
        ports[port] = {}
    b.config["ExposedPorts"] = ports
    b.note("/bin/sh -c #(nop)  EXPOSE " + " ".join(inst.args))


_STEPS: dict[str, Callable[[_Build, labfile.Instruction], str | None]] = {
    "FROM": _from,
    "COPY": _copy,  # type: ignore[dict-item]
    "RUN": _run,  # type: ignore[dict-item]
    "ENV": _env,  # type: ignore[dict-item]
    "LABEL": _label,  # type: ignore[dict-item]
    "CMD": _cmd,  # type: ignore[dict-item]
    "ENTRYPOINT": _entrypoint,  # type: ignore[dict-item]
    "WORKDIR": _workdir,  # type: ignore[dict-item]
    "EXPOSE": _expose,  # type: ignore[dict-item]
}


#: The Labfile instructions ``commit --change`` and ``import --change`` may give (Docker's list, less those
#: labkit's Labfiles do not have).
CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "WORKDIR")


def apply_changes(config: Mapping, changes: Sequence[str]) -> dict:
    """``commit -c`` / ``import -c``: the image config ``config`` with each Labfile line of ``changes`` applied.

    Raises:
        LabfileError: A line cannot be parsed, or is not one of :data:`CHANGES`
            (``run is not a valid change command``, Docker's words).
    """
    b = _Build(None, "", None, lambda _line: None, "", rfc3339_nano())  # type: ignore[arg-type]
    b.config = {**empty_config(), **copy.deepcopy(dict(config))}
    for line in changes:
        if not line.strip():
            continue
        try:
            inst = labfile.parse("FROM scratch\n" + line, "change")[1]
        except LabfileError as err:
            # Docker parses each change as a one-line Dockerfile: its line 1, our line 2 after the FROM
            raise LabfileError(err.message.replace("change line 2: ", "dockerfile parse error line 1: "),
                               err.hint) from None
        if inst.keyword not in CHANGES:
            raise LabfileError(f"{inst.keyword.lower()} is not a valid change command",
                               "Give one of " + ", ".join(CHANGES) + " (e.g. -c 'CMD [\"sh\"]')")
        _STEPS[inst.keyword](b, inst)
    return b.config
