"""Building images from a Labfile: COPY layers, config-only steps, and RUN in a real container."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time

import pytest

from labkit.errors import BuildFailed, LabfileError, NoSuchImage
from labkit.images import oci
from labkit.images.build import build, expand
from labkit.images.lessons import FRONTEND_TAG, build_lesson_images, host_node


def no_runner(*args):
    raise AssertionError("this build has no RUN step; the runner must not be called")


def context(tmp_path, labfile, files=None, name="Labfile"):
    ctx = tmp_path / "labkit-ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / name).write_text(labfile)
    for rel, text in (files or {}).items():
        p = ctx / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(ctx)


def quiet(_line):
    pass


def layer_files(layer):
    out = []
    for cur, dirs, files in os.walk(layer.path):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(cur, n), layer.path))
    return sorted(out)


def leftovers(store):
    return os.listdir(store.tmp_root)


# -- without a container ---------------------------------------------------------------------


def test_copy_makes_one_layer_with_only_its_paths(store, tmp_path):
    """COPY makes a layer holding just the copied files and their parent directories."""
    ctx = context(
        tmp_path,
        "FROM busybox\n# layer: app code\nCOPY app/ /srv/app/\nCOPY one.txt /etc/one.conf\n",
        {"app/server.js": "js", "app/lib/util.js": "u", "one.txt": "1"},
    )
    img = build(store, ctx, "copy:1", no_runner, on_step=quiet)
    assert len(img.layers) == 3
    assert layer_files(img.layers[1]) == ["srv", "srv/app", "srv/app/lib", "srv/app/lib/util.js", "srv/app/server.js"]
    assert layer_files(img.layers[2]) == ["etc", "etc/one.conf"]
    assert img.layers[1].comment == "app code"
    assert img.layers[1].created_by.startswith("/bin/sh -c #(nop) COPY dir:") and img.layers[1].created_by.endswith(
        " in /srv/app/ "
    )
    assert img.layers[2].created_by.startswith("/bin/sh -c #(nop) COPY file:")
    # /etc exists in busybox: the COPY layer's /etc keeps busybox's metadata (it is what the merged view shows)
    assert (
        os.stat(os.path.join(img.layers[2].path, "etc")).st_mtime
        == os.stat(os.path.join(img.layers[0].path, "etc")).st_mtime
    )
    assert leftovers(store) == []


@pytest.mark.root
def test_copy_chown_and_relative_dest(store, tmp_path):
    """COPY --chown sets owners (names from the image's /etc/passwd) and a relative dest follows WORKDIR."""
    ctx = context(tmp_path, "FROM busybox\nWORKDIR /app\nCOPY --chown=nobody a.txt ./\n", {"a.txt": "a"})
    img = build(store, ctx, None, no_runner, on_step=quiet)
    st = os.lstat(os.path.join(img.layers[-1].path, "app/a.txt"))
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert img.repo_tags == ()


@pytest.mark.root
def test_copy_without_chown_makes_everything_root_owned(store, tmp_path):
    """Without --chown, every file and directory COPY makes is 0:0, whoever owns it in the context (as Docker)."""
    ctx = context(tmp_path, "FROM busybox\nCOPY . /srv/\n", {"a.txt": "a", "lib/b.txt": "b"})
    for path in ("a.txt", "lib", "lib/b.txt"):
        os.lchown(os.path.join(ctx, path), 1234, 5678)
    img = build(store, ctx, None, no_runner, on_step=quiet)
    top = img.layers[-1].path
    owners = {rel: (os.lstat(os.path.join(top, rel)).st_uid, os.lstat(os.path.join(top, rel)).st_gid)
              for rel in ("srv", "srv/a.txt", "srv/lib", "srv/lib/b.txt")}
    assert set(owners.values()) == {(0, 0)}, owners


def test_config_steps_add_no_layers(store, tmp_path):
    """ENV, WORKDIR, EXPOSE, LABEL, CMD, ENTRYPOINT change the config and history only."""
    ctx = context(
        tmp_path,
        'FROM busybox\nENV A=1 B="x y"\nENV C=${A}-$B\nWORKDIR /app\nWORKDIR sub\n'
        'EXPOSE 3000 53/udp\nLABEL role=web\nENTRYPOINT ["/bin/sh", "-c"]\nCMD ["echo hi"]\n',
    )
    img = build(store, ctx, "cfg:1", no_runner, on_step=quiet)
    base = store.get("busybox")
    assert img.layers == base.layers
    c = img.config
    assert c["Env"][1:] == ["A=1", "B=x y", "C=1-x y"]
    assert c["WorkingDir"] == "/app/sub"
    assert c["ExposedPorts"] == {"3000/tcp": {}, "53/udp": {}}
    assert c["Labels"] == {"role": "web"}
    assert (c["Entrypoint"], c["Cmd"]) == (["/bin/sh", "-c"], ["echo hi"])
    hist = store.history("cfg:1")
    assert hist[0]["CreatedBy"] == '/bin/sh -c #(nop)  CMD ["echo hi"]' and hist[0]["Size"] == 0
    assert "/bin/sh -c #(nop) WORKDIR /app/sub" in [h["CreatedBy"] for h in hist]


def test_entrypoint_drops_inherited_cmd(store, tmp_path):
    """An ENTRYPOINT without a CMD in the same Labfile clears the base image's CMD, as Docker does."""
    img = build(store, context(tmp_path, 'FROM busybox\nENTRYPOINT ["top"]\n'), None, no_runner, on_step=quiet)
    assert img.config["Cmd"] is None


def test_step_lines_look_like_docker(store, tmp_path):
    """The build prints 'Step i/N : <instruction>' and ' ---> <12 hex>' per step, then Successfully built/tagged."""
    lines = []
    ctx = context(tmp_path, 'FROM busybox\nCOPY a /a\nCMD ["sh"]\n', {"a": "a"})
    img = build(store, ctx, "steps", no_runner, on_step=lines.append)
    assert lines[0] == "Step 1/3 : FROM busybox"
    assert lines[1] == f" ---> {store.get('busybox').short_id}"
    assert lines[2] == "Step 2/3 : COPY a /a"
    assert lines[3].startswith(" ---> ") and len(lines[3]) == 18
    assert lines[-2:] == [f"Successfully built {img.short_id}", "Successfully tagged steps:latest"]


@pytest.mark.parametrize("src", ["../outside.txt", "/etc/passwd", "link"])
def test_copy_outside_context_is_refused(store, tmp_path, src):
    """COPY of a path escaping the build context (.., absolute, or a symlink out) is refused and leaves nothing."""
    (tmp_path / "outside.txt").write_text("secret")
    ctx = context(tmp_path, f"FROM busybox\nCOPY {src} /x\n")
    os.symlink(str(tmp_path / "outside.txt"), os.path.join(ctx, "link"))
    base_layers = (
        os.listdir(os.path.join(store.root, "layers")) if os.path.isdir(os.path.join(store.root, "layers")) else []
    )
    with pytest.raises(BuildFailed, match="forbidden path outside the build context"):
        build(store, ctx, "esc:1", no_runner, on_step=quiet)
    assert not store.exists("esc:1")
    assert len(os.listdir(os.path.join(store.root, "layers"))) <= len(base_layers) + 1  # only busybox's
    assert leftovers(store) == []


def test_copy_missing_source(store, tmp_path):
    """COPY of a file not in the context is a BuildFailed naming it."""
    with pytest.raises(BuildFailed, match="file not found in build context: stat nope"):
        build(store, context(tmp_path, "FROM busybox\nCOPY nope /x\n"), "m:1", no_runner, on_step=quiet)


def test_dockerfile_fallback_and_missing_labfile(store, tmp_path):
    """Without a Labfile the build reads a Dockerfile; with neither it says so."""
    ctx = context(tmp_path, "FROM busybox\nLABEL from=dockerfile\n", name="Dockerfile")
    assert build(store, ctx, None, no_runner, on_step=quiet).config["Labels"] == {"from": "dockerfile"}
    empty = tmp_path / "labkit-empty"
    empty.mkdir()
    with pytest.raises(LabfileError, match="no Labfile or Dockerfile"):
        build(store, str(empty), None, no_runner, on_step=quiet)


def test_from_unknown_image(store, tmp_path):
    """FROM an image the store lacks is NoSuchImage (labkit never pulls); FROM scratch needs nothing."""
    with pytest.raises(NoSuchImage, match="No such image: nginx:latest"):
        build(store, context(tmp_path, "FROM nginx\n"), None, no_runner, on_step=quiet)
    img = build(store, context(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a"}), None, no_runner, on_step=quiet)
    assert len(img.layers) == 1 and img.config["Env"] == []


def test_same_context_same_layers(store, tmp_path):
    """Building the same context twice reuses the same COPY layer (content addressed)."""
    ctx = context(tmp_path, "FROM busybox\nCOPY a /a\n", {"a": "a"})
    os.utime(os.path.join(ctx, "a"), (5, 5))
    one = build(store, ctx, "same:1", no_runner, on_step=quiet)
    two = build(store, ctx, "same:2", no_runner, on_step=quiet)
    assert one.layers[-1].digest == two.layers[-1].digest


def test_expand():
    """Variables expand as in Docker: $V, ${V}, ${V:-default}, ${V:+alt}."""
    env = {"A": "1", "E": ""}
    assert [expand(w, env) for w in ["$A", "${A}/x", "${B:-d}", "${A:+y}", "${E:+y}"]] == ["1", "1/x", "d", "y", ""]


# -- RUN in a real container --------------------------------------------------------------------


def view(store, lowerdirs, path):
    """List ``path`` in a read-only overlay of ``lowerdirs`` (needs two or more), mounted in a private mount namespace."""
    mnt = store.mkdtemp("labkit-view-")
    try:
        script = 'mount -t overlay labkit-view -o lowerdir="$2" "$1" && ls -a "$1$3"'
        out = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
                mnt,
                ":".join(lowerdirs),
                path,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.rmdir(mnt)
    return out.stdout.split()


def run_in(store, runner, img, script):
    """Run a shell script in a throwaway container of ``img``; return (exit code, output)."""
    upper = store.mkdtemp("labkit-upper-")
    try:
        return runner(
            img.lowerdirs(), upper, ["/bin/sh", "-c", script], img.config["Env"], img.config["WorkingDir"] or "/"
        )
    finally:
        shutil.rmtree(upper)


@pytest.mark.root
def test_run_writes_a_file_into_its_layer(store, tmp_path, build_runner):
    """A RUN that writes a file makes a layer holding that file (and nothing of the layers below)."""
    ctx = context(tmp_path, "FROM busybox\nENV WHO=labkit\nRUN echo hello $WHO > /greeting && echo built\n")
    lines = []
    img = build(store, ctx, "run:1", build_runner, on_step=lines.append)
    layer = img.layers[-1]
    assert layer_files(layer) == ["greeting"]
    assert open(os.path.join(layer.path, "greeting")).read() == "hello labkit\n"
    assert "built" in lines and any(line.startswith(" ---> Running in ") for line in lines)
    assert layer.created_by == "/bin/sh -c echo hello $WHO > /greeting && echo built"
    assert leftovers(store) == []


@pytest.mark.root
def test_run_delete_leaves_whiteout(store, tmp_path, build_runner):
    """A RUN that deletes a lower file makes a whiteout (char device 0/0), and the image no longer shows the file."""
    ctx = context(tmp_path, "FROM busybox\nRUN rm /etc/hostname\n")
    img = build(store, ctx, "del:1", build_runner, on_step=quiet)
    st = os.lstat(os.path.join(img.layers[-1].path, "etc/hostname"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert "etc/.wh.hostname" in oci.tar_names(img.layers[-1].path)
    listing = view(store, img.lowerdirs(), "/etc")
    assert "passwd" in listing and "hostname" not in listing
    code, out = run_in(store, build_runner, img, "test ! -e /etc/hostname && echo gone")
    assert (code, out.strip()) == (0, "gone")
    assert leftovers(store) == []


@pytest.mark.root
def test_run_recreated_dir_is_opaque(store, tmp_path, build_runner):
    """A directory removed and made again in one RUN is opaque in the layer and '.wh..wh..opq' in its tar."""
    img = build(
        store,
        context(tmp_path, "FROM busybox\nRUN rm -rf /etc && mkdir /etc && echo x > /etc/new\n"),
        "opq:1",
        build_runner,
        on_step=quiet,
    )
    top = img.layers[-1].path
    assert os.getxattr(os.path.join(top, "etc"), "trusted.overlay.opaque") == b"y"
    assert oci.tar_names(top)[:2] == ["etc", "etc/.wh..wh..opq"]
    assert sorted(view(store, img.lowerdirs(), "/etc")) == [".", "..", "new"]


@pytest.mark.root
def test_failed_run_leaves_no_tag_or_layer(store, tmp_path, build_runner):
    """A RUN exiting non-zero is BuildFailed with Docker's message; no tag, image, layer or temp dir is left."""
    from labkit.images.base import ensure_busybox

    ensure_busybox(store)
    before = (sorted(os.listdir(os.path.join(store.root, "layers"))), [i.id for i in store.list()])
    ctx = context(tmp_path, "FROM busybox\nCOPY a /a\nRUN echo partial > /p\nRUN false\n", {"a": "a"})
    with pytest.raises(BuildFailed, match=r"^The command '/bin/sh -c false' returned a non-zero code: 1$"):
        build(store, ctx, "fail:1", build_runner, on_step=quiet)
    assert (sorted(os.listdir(os.path.join(store.root, "layers"))), [i.id for i in store.list()]) == before
    assert not store.exists("fail:1") and leftovers(store) == []


@pytest.mark.root
def test_run_exec_form_and_workdir(store, tmp_path, build_runner):
    """An exec-form RUN runs without a shell in WORKDIR, which is created when missing."""
    ctx = context(tmp_path, 'FROM busybox\nWORKDIR /work/dir\nRUN ["/bin/touch", "made-here"]\n')
    img = build(store, ctx, None, build_runner, on_step=quiet)
    assert "work/dir/made-here" in layer_files(img.layers[-1])
    assert img.layers[-1].created_by == "/bin/touch made-here"


# The server logs to the same output, so each answer is printed on its own marked line.
SERVE = (
    "node server.js & for i in $(seq 1 150); do r=$(wget -q -O - http://127.0.0.1:3000/ 2>/dev/null) && break; "
    'sleep 0.1; done; echo "ROOT=$r"; echo "HEALTH=$(wget -q -O - http://127.0.0.1:3000/health)"; kill $!; wait'
)


@pytest.mark.root
@pytest.mark.parametrize("prefer_host_node", [True, False], ids=["node", "stand-in"])
def test_lesson_image_builds_and_serves(store, build_runner, prefer_host_node):
    """frontend-app:v2.1.0 has base OS/runtime/app code layers and the lesson's config, and answers on port 3000."""
    start = time.monotonic()
    [img] = build_lesson_images(store, build_runner, prefer_host_node=prefer_host_node, on_step=quiet)
    took = time.monotonic() - start
    assert img.repo_tags == (FRONTEND_TAG,)
    assert [layer.comment for layer in img.layers] == ["base OS", "runtime", "app code"]
    c = img.config
    assert c["Env"][1:] == ["NODE_ENV=production", "PORT=3000"]
    assert (c["WorkingDir"], c["ExposedPorts"], c["Cmd"]) == ("/app", {"3000/tcp": {}}, ["node", "server.js"])
    runtime = img.layers[1].path
    node = os.path.join(runtime, "usr/local/bin/node")
    real_node = prefer_host_node and host_node() is not None
    with open(node, "rb") as f:
        assert (f.read(4) == b"\x7fELF") == real_node
    code, out = run_in(store, build_runner, img, SERVE)
    assert code == 0, out
    answer = json.loads(next(line[5:] for line in out.splitlines() if line.startswith("ROOT=")))
    assert {k: answer[k] for k in ("service", "version", "env")} == {
        "service": "frontend-app",
        "version": "2.1.0",
        "env": "production",
    }
    assert isinstance(answer["pid"], int) and answer["hostname"]
    assert "HEALTH=ok" in out.splitlines()
    again = time.monotonic()
    assert build_lesson_images(store, build_runner, prefer_host_node=prefer_host_node, on_step=quiet) == [img]
    print(
        f"lesson image ({'node' if real_node else 'stand-in'}): build {took:.2f}s, up-to-date check {time.monotonic() - again:.2f}s"
    )
