"""The image commands on both backends, as a learner types them: commit, history, tag, rmi, save, load,
export, import, images -a/--filter/REPO, image inspect's keys, build -q."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import state_root

BACKENDS = ["sim", pytest.param("linux", marks=pytest.mark.root)]


@pytest.fixture(scope="module", params=BACKENDS)
def lk(request):
    """``labkit ARGS...`` in a new process on a fresh state root of one backend: (rc, stdout, stderr)."""
    root = state_root()
    env = {**os.environ, "LABKIT_ROOT": str(root), "LABKIT_BACKEND": request.param, "LABKIT_NO_SERVER": "1"}

    def run(*args: str, stdin: bytes | None = None, text: bool = True) -> tuple[int, str, str]:
        p = subprocess.run([sys.executable, "-m", "labkit", *args], input=stdin, capture_output=True, env=env,
                           timeout=180)
        err = p.stderr.decode()
        assert "Traceback" not in err, err
        return p.returncode, p.stdout.decode() if text else p.stdout, err

    run.backend = request.param
    yield run
    for cid in run("ps", "-aq")[1].split():
        run("rm", "-f", cid)


def test_commit_makes_a_layer_of_the_upper_dir_and_history_shows_it(lk):
    """commit turns the container's changes (a new file, a deleted one, a replaced directory) into one
    more layer of a new image, prints its id, and history lists the step with its message; the new
    image runs with the change applied and the deleted file gone."""
    rc, _, err = lk("run", "--name", "box", "busybox", "sh", "-c",
                    "echo made > /made; rm /etc/group; mkdir -p /srv/a; echo x > /srv/a/f")
    assert rc == 0, err
    rc, out, err = lk("commit", "-m", "my change", "-a", "Ada", "-c", 'CMD ["cat", "/made"]', "box", "mine:1")
    assert rc == 0, err
    image_id = out.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    rc, out, _ = lk("history", "mine:1")
    lines = out.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert lines[1].startswith(image_id[7:19]) and "sh -c echo made > /made; rm /etc/group; mkdi…" in lines[1]
    assert lines[1].rstrip().endswith("my change")
    busybox_id = lk("inspect", "-f", "{{.Id}}", "busybox")[1].strip()
    assert lines[2].startswith(busybox_id[7:19]), "the parent image's newest step carries its id"
    assert lk("history", "-q", "--no-trunc", "mine:1")[1].splitlines()[0] == image_id
    assert lk("history", "--format", "{{.CreatedBy}}|{{.Comment}}", "--no-trunc", "mine:1")[1].splitlines()[0] \
        == "sh -c echo made > /made; rm /etc/group; mkdir -p /srv/a; echo x > /srv/a/f|my change"
    assert lk("run", "--rm", "mine:1")[1] == "made\n"
    rc, out, _ = lk("run", "--rm", "mine:1", "sh", "-c", "ls /etc; cat /srv/a/f")
    assert "group" not in out.split() and "passwd" in out.split() and out.endswith("x\n")
    info = json.loads(lk("image", "inspect", "mine:1")[1])[0]
    assert (info["Parent"], info["Author"], info["Comment"]) == (busybox_id, "Ada", "my change")
    assert info["Config"]["Cmd"] == ["cat", "/made"]
    assert len(info["RootFS"]["Layers"]) == len(json.loads(lk("image", "inspect", "busybox")[1])[0]["RootFS"]["Layers"]) + 1
    lk("rm", "box")


def test_image_inspect_has_dockers_keys(lk):
    """inspect of an image has Docker 28's keys, and -f '{{.Os}}/{{.Architecture}}' prints linux/<arch>."""
    rc, out, err = lk("inspect", "-f", "{{.Os}}/{{.Architecture}}", "busybox")
    assert rc == 0, err
    assert re.fullmatch(r"linux/(amd64|arm64|arm|386|[a-z0-9_]+)\n", out)
    info = json.loads(lk("image", "inspect", "busybox")[1])[0]
    assert list(info)[:4] == ["Id", "RepoTags", "RepoDigests", "Parent"]
    assert {"Os", "Architecture", "RepoDigests", "Metadata", "Parent", "Comment", "Author", "RootFS"} <= set(info)
    assert info["RepoDigests"] == [] and "LastTagTime" in info["Metadata"]


def test_tag_and_rmi_in_dockers_words(lk):
    """tag adds a name silently; rmi of one of two tags untags; rmi of an image a container uses is refused
    with Docker's words and exit 1, -f untags it; an image made from another keeps that one; a missing
    image is one line, exit 1."""
    lk("run", "--name", "maker", "busybox", "touch", "/solo")
    solo = lk("commit", "maker", "solo:1")[1].strip()
    lk("rm", "maker")
    assert lk("tag", "solo:1", "bb:1")[:2] == (0, "")
    assert lk("rmi", "bb:1")[:2] == (0, "Untagged: bb:1\n")
    lk("create", "--name", "user", "solo:1")
    rc, out, err = lk("rmi", solo[7:19])
    assert rc == 1 and err.startswith(f"Error response from daemon: conflict: unable to delete {solo[7:19]} "
                                      "(must be forced) - image is being used by stopped container ")
    rc, out, err = lk("rmi", "solo:1")
    assert rc == 1 and 'unable to remove repository reference "solo:1" (must force) - container ' in err
    # -f of an image a stopped container uses deletes the image; its layers stay for the container, which still
    # starts, and ps names it by id; they go with the container.
    assert lk("rmi", "-f", "solo:1")[:2] == (0, f"Untagged: solo:1\nDeleted: {solo}\n")
    assert lk("ps", "-a", "--format", "{{.Names}} {{.Image}}")[1] == f"user {solo[7:19]}\n"
    assert lk("images", "-aq", "--no-trunc")[1].count(solo) == 0
    assert lk("start", "user")[0] == 0
    lk("stop", "-t", "0", "user")
    lk("rm", "user")
    rc, out, err = lk("rmi", solo)
    assert (rc, out) == (1, ""), "gone with its container"
    busybox_id = lk("inspect", "-f", "{{.Id}}", "busybox")[1].strip()
    lk("run", "--name", "child", "busybox", "true")
    child = lk("commit", "child")[1].strip()
    lk("rm", "child")
    rc, out, err = lk("rmi", busybox_id)
    assert rc == 1 and "(cannot be forced) - image has dependent child images" in err
    assert lk("rmi", child)[0] == 0
    rc, out, err = lk("rmi", "nope")
    assert (rc, err.splitlines()[0].split(".")[0]) == (1, "Error response from daemon: No such image: nope:latest")
    rc, out, err = lk("tag", "busybox", "Bad")
    assert rc == 1 and "must be lowercase" in err


def test_save_load_round_trip_and_load_refuses_a_bad_archive(lk, tmp_path):
    """save -o writes an archive; after rmi, load brings the image back under its id and tag and it runs;
    save to a terminal-less stdout works; a bad archive is one line, exit 1, and changes nothing."""
    lk("run", "--name", "saver", "busybox", "sh", "-c", "echo saved > /s")
    image_id = lk("commit", "saver", "saved:1")[1].strip()
    lk("rm", "saver")
    path = tmp_path / "saved.tar"
    assert lk("save", "-o", str(path), "saved:1")[0] == 0
    assert {"manifest.json", "index.json", "oci-layout"} <= set(tarfile.open(path).getnames())
    rc, out, _ = lk("save", "saved:1", text=False)
    assert rc == 0 and out == path.read_bytes()[:0] + out and tarfile.is_tarfile(str(path))
    assert lk("rmi", "saved:1")[0] == 0
    rc, out, err = lk("load", "-i", str(path))
    assert (rc, out) == (0, "Loaded image: saved:1\n"), err
    assert lk("inspect", "-f", "{{.Id}}", "saved:1")[1].strip() == image_id
    assert lk("run", "--rm", "saved:1", "cat", "/s")[1] == "saved\n"
    before = lk("images", "-aq", "--no-trunc")[1]
    rc, out, err = lk("load", stdin=b"this is not a tar archive" * 50)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "not a tar archive" in err
    assert lk("images", "-aq", "--no-trunc")[1] == before
    rc, _, err = lk("save", "-o", str(tmp_path / "none.tar"), "nope")
    assert rc == 1 and "No such image: nope:latest" in err and not (tmp_path / "none.tar").exists()


def test_export_and_import(lk, tmp_path):
    """export writes the container's whole filesystem (its changes over its image) as a tar; import makes a
    one-layer image of it with -c and -m, prints its id, and the image runs."""
    lk("run", "--name", "exp", "busybox", "sh", "-c", "echo exported > /e; rm /etc/group")
    path = tmp_path / "fs.tar"
    assert lk("export", "-o", str(path), "exp")[0] == 0
    names = tarfile.open(path).getnames()
    assert "e" in names and "bin/busybox" in names and "etc/passwd" in names and "etc/group" not in names
    assert not any(".wh." in n for n in names)
    rc, out, err = lk("import", "-m", "from a tar", "-c", 'CMD ["cat", "/e"]', str(path), "imported:1")
    assert rc == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", out), err
    assert lk("run", "--rm", "imported:1")[1] == "exported\n"
    rows = lk("history", "imported:1")[1].splitlines()
    assert len(rows) == 2 and rows[1].rstrip().endswith("from a tar")
    rc, out, err = lk("import", "-", stdin=path.read_bytes())
    assert rc == 0 and lk("history", "--format", "{{.Comment}}", out.strip())[1] == "Imported from -\n"
    rc, _, err = lk("import", "-c", "RUN true", str(path))
    assert rc == 1 and "Error response from daemon: run is not a valid change command" in err
    rc, _, err = lk("import", "https://example.com/x.tar")
    assert rc == 1 and "offline" in err
    lk("rm", "exp")


def test_export_holds_dockers_init_layer(lk, tmp_path):
    """export shows what Docker's init layer puts over the image: /.dockerenv, /dev/console, /dev/pts and
    /dev/shm, and empty 0755 placeholders for /etc/hosts, /etc/hostname and /etc/resolv.conf (the image's
    own /etc/hosts replaced), /etc/mtab a link to /proc/mounts; the image's /proc stays as the image has it.
    What the container wrote to /etc/hostname went to its bind-mounted file, not its layer: the placeholder
    stays empty, as in Docker's export."""
    lk("run", "--name", "initl", "busybox", "sh", "-c", "echo mine > /etc/hostname")
    path = tmp_path / "fs.tar"
    assert lk("export", "-o", str(path), "initl")[0] == 0
    lk("rm", "initl")
    with tarfile.open(path) as tar:
        m = {t.name: t for t in tar.getmembers()}
        hostname = tar.extractfile(m["etc/hostname"]).read()
    for name in (".dockerenv", "dev/console", "etc/hosts", "etc/resolv.conf"):
        assert m[name].isreg() and m[name].size == 0 and m[name].mode == 0o755, name
    for name in ("dev/pts", "dev/shm"):
        assert m[name].isdir() and m[name].mode == 0o755, name
    assert m["etc/mtab"].issym() and m["etc/mtab"].linkname == "/proc/mounts"
    assert m["proc"].isdir() and m["proc"].mode == 0o555, "the image's /proc, not a placeholder"
    assert m["etc"].mode == 0o755 and m["etc/passwd"].size > 0
    assert hostname == b"" and m["etc/hostname"].mode == 0o755


def test_images_filters_all_and_reference(lk):
    """images REPO[:TAG], --filter reference/dangling/before/since/label and -a choose the rows Docker would."""
    lk("tag", "busybox", "flt:1")
    assert lk("run", "--name", "flt", "busybox", "true")[0] == 0
    assert lk("commit", "-c", "LABEL tier=app", "flt", "flt:2")[0] == 0
    untagged = lk("commit", "flt")[1].strip()
    lk("rm", "flt")

    def repos(*args):
        return [line.split()[:2] for line in lk("images", *args)[1].splitlines()[1:]]

    assert repos("flt") == [["flt", "2"], ["flt", "1"]]
    assert repos("flt:1") == [["flt", "1"]]
    assert repos("--filter", "reference=fl*:2") == [["flt", "2"]]
    dangling = repos("--filter", "dangling=true")
    assert dangling and all(row == ["<none>", "<none>"] for row in dangling)
    assert untagged in lk("images", "-q", "--no-trunc", "--filter", "dangling=true")[1].split()
    assert untagged not in lk("images", "-q", "--no-trunc", "--filter", "dangling=false")[1].split()
    assert ["flt", "2"] in repos("--filter", "label=tier=app") and ["flt", "1"] not in repos("--filter", "label=tier")
    assert repos("--filter", "since=flt:1", "--filter", "reference=flt") == [["flt", "2"]]
    assert ["busybox", "latest"] in repos("--filter", "before=flt:2")
    rc, _, err = lk("images", "--filter", "colour=red")
    assert rc == 1 and "invalid filter 'colour'" in err
    assert lk("rmi", untagged)[0] == 0


def test_build_prints_success_once_and_q_only_the_id(lk, tmp_path):
    """build prints 'Successfully built' and 'Successfully tagged' once each; -q prints only sha256:<id>."""
    (tmp_path / "Labfile").write_text('FROM busybox\nENV A=1\nCMD ["true"]\n')
    rc, out, err = lk("build", "-t", "once:1", str(tmp_path))
    assert rc == 0, err
    assert out.count("Successfully built") == 1 and out.count("Successfully tagged once:1") == 1
    rc, out, err = lk("build", "-q", "-t", "once:2", str(tmp_path))
    assert rc == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", out), err
    assert lk("inspect", "-f", "{{.Id}}", "once:2")[1] == out


def test_setup_builds_the_lesson_images_and_lists_them(lk):
    """``labkit setup`` (what ``make lab`` runs first) builds busybox and the lesson's images, then prints
    the image table, as ``labkit images`` would, with exit 0."""
    rc, out, err = lk("setup")
    assert rc == 0, err
    listed = lk("images")[1]
    table = out[out.index("REPOSITORY"):]
    assert table.split("\n", 1)[0].split() == listed.split("\n", 1)[0].split()
    assert "busybox" in table and "frontend-app" in table


def test_image_prune_system_df_and_digests(lk):
    """image prune removes a dangling image alone (Docker's lower-case lines, the bytes reclaimed), -a every image no
    container uses; system df counts them in Docker's table, --format and json; images --digests shows <none>."""
    lk("image", "prune", "-a", "-f")  # what the module's other tests left
    lk("run", "--name", "pw", "busybox", "sh", "-c", "echo x > /x")
    snap = lk("commit", "pw", "snap:1")[1].strip()
    dangling = lk("commit", "pw")[1].strip()
    lk("rm", "pw")
    rc, out, err = lk("image", "prune", stdin=b"n\n")
    assert (rc, out) == (0, "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] ")
    assert lk("image", "prune", "-f")[1] == f"Deleted Images:\ndeleted: {dangling}\n\nTotal reclaimed space: 0B\n"
    assert lk("image", "prune", "-f")[1] == "Total reclaimed space: 0B\n"
    lk("create", "--name", "keeper", "busybox")
    rows = lk("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")[1].splitlines()
    assert rows[:2] == ["Images 2 1", "Containers 1 0"], rows
    table = lk("system", "df")[1].splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"] and table[1].endswith("%)")
    assert [list(json.loads(line)) for line in lk("system", "df", "--format", "json")[1].splitlines()][0] == \
        ["Active", "Reclaimable", "Size", "TotalCount", "Type"]
    verbose = lk("system", "df", "-v")[1]
    assert "Images space usage:" in verbose and "\nkeeper\n" not in verbose and verbose.count("space usage:") == 3
    rc, out, _ = lk("image", "prune", "-a", "-f")
    assert out.startswith(f"Deleted Images:\nuntagged: snap:1\ndeleted: {snap}\ndeleted: sha256:")
    assert out.endswith("\nTotal reclaimed space: 2B\n") and "busybox" not in out
    assert lk("images", "--digests", "--format", "{{.Repository}} {{.Digest}}")[1] == "busybox <none>\n"
    assert lk("images", "--digests")[1].splitlines()[0].split() == \
        ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
    lk("rm", "keeper")
