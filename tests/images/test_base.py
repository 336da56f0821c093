"""The base image made from the host: its sources, its layout, and a shell that runs."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from labkit.errors import HostUnsupported
from labkit.images import base
from labkit.images.ownership import HostIds
from labkit.images.store import ImageStore


def test_is_static():
    """A dynamically linked binary (ls) has an ELF interpreter; a file that is not ELF is not static."""
    assert not base.is_static(os.path.realpath("/bin/ls"))
    assert not base.is_static(__file__)
    if (
        os.path.exists(base.DEBIAN_BUSYBOX)
        and "statically linked"
        in subprocess.run(["file", "-L", base.DEBIAN_BUSYBOX], capture_output=True, text=True).stdout
    ):
        assert base.is_static(base.DEBIAN_BUSYBOX)


def test_shared_libraries_include_the_loader():
    """ldd's answer for a dynamic binary includes libc and the dynamic loader, as absolute paths."""
    sh = os.path.realpath("/bin/ls")
    libs = base.shared_libraries(sh)
    assert any("libc.so" in lib for lib in libs)
    assert any("ld-linux" in lib or "ld-musl" in lib for lib in libs)
    assert all(lib.startswith("/") for lib in libs)


def test_busybox_layout_and_config(store):
    """busybox:latest has one 'base OS' layer laid out like Docker's busybox, with PATH and Cmd ["sh"]."""
    img = base.ensure_busybox(store)
    assert img.repo_tags == ("busybox:latest",)
    assert len(img.layers) == 1 and img.layers[0].comment == "base OS"
    assert img.config["Env"] == [base.PATH_ENV] and img.config["Cmd"] == ["sh"]
    root = img.layers[0].path
    assert stat.S_IMODE(os.stat(os.path.join(root, "tmp")).st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(os.path.join(root, "root")).st_mode) == 0o700
    for d in ("proc", "sys", "dev"):
        assert os.path.isdir(os.path.join(root, d))
    passwd = open(os.path.join(root, "etc/passwd")).read()
    assert passwd.startswith("root:x:0:0:") and "nobody:x:65534" in passwd
    assert os.path.lexists(os.path.join(root, "bin/sh"))
    assert store.history("busybox")[0]["CreatedBy"] == '/bin/sh -c #(nop)  CMD ["sh"]'


def test_busybox_is_idempotent_and_deterministic(store, tmp_path):
    """ensure_busybox twice returns the same image; a second store on this host gets the same id and digest."""
    first = base.ensure_busybox(store)
    assert base.ensure_busybox(store) == first
    other = base.ensure_busybox(ImageStore(str(tmp_path / "labkit-other"), HostIds()))
    assert other.id == first.id and other.layers[0].digest == first.layers[0].digest


def test_missing_source_is_host_unsupported(store, tmp_path):
    """Asking for a source the host lacks says what to install."""
    with pytest.raises(HostUnsupported, match="no path source") as err:
        base.ensure_busybox(store, source="path", search_path=str(tmp_path))
    assert "busybox-static" in err.value.hint


def chroot_sh(root, script):
    return subprocess.run(["chroot", root, "/bin/sh", "-c", script], capture_output=True, text=True, timeout=30)


SOURCES = ["auto", "host"] + (["path"] if base.shutil.which("busybox") else [])


@pytest.mark.root
@pytest.mark.parametrize("source", SOURCES)
def test_base_layer_shell_runs(store, source):
    """Each way of making the base layer this host offers gives a layer whose /bin/sh runs under chroot(2)."""
    img = base.ensure_busybox(store, source=source)
    done = chroot_sh(img.layers[0].path, "echo ok; ls / >/dev/null 2>&1 || ls /")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


@pytest.mark.root
def test_host_tools_layer_has_libraries(store):
    """The layer assembled from host binaries carries their shared libraries and the loader."""
    img = base.ensure_busybox(store, source="host")
    root = img.layers[0].path
    libs = base.shared_libraries(os.path.realpath("/bin/ls"))
    for lib in libs:
        assert os.path.isfile(os.path.join(root, lib.lstrip("/"))), lib
    done = chroot_sh(root, "ls /bin | grep -c .")
    assert done.returncode == 0 and int(done.stdout) >= 10
