"""The copy-up explorer runs actions in a container, real or simulated, and shows the copy-up's bytes and time."""

from __future__ import annotations

import pytest

from labkit.viz import explorer, layers
from labkit.viz import palette as P


@pytest.mark.root
def test_actions_show_what_overlayfs_did(engine, lesson_image):
    """Read copies nothing; chmod copies the whole file up; delete leaves a whiteout; the picture and table change."""
    engine.run(lesson_image, ["sleep", "60"], detach=True, name="viz-explore")
    ex = explorer.CopyUpExplorer(engine, "viz-explore", under="/app")
    assert "/app/server.js" in ex.file.options and "/app/package.json" in ex.file.options
    blank = ex.image.value
    ex.file.value, ex.action.value = "/app/server.js", "read"
    ex.run_button.click()
    read = ex.results[-1]
    assert read.exit_code == 0 and read.copied == 0 and read.steps == ()
    assert layers.gather(engine, ["viz-explore"]).containers[0].changes == ()
    after_read = ex.image.value
    assert after_read != blank  # the chosen file's serving layer is now framed
    ex.action.value = "chmod"
    ex.run_button.click()
    chmod = ex.results[-1]
    size = engine.exec_output("viz-explore", ["stat", "-c", "%s", "/app/server.js"])[1].strip()
    assert chmod.copied == int(size) > 0 and chmod.seconds > 0
    assert f"copy-up of {P.size_text(chmod.copied)}" in ex.message.value
    assert ex.image.value != after_read
    assert [c.kind for c in layers.gather(engine, ["viz-explore"]).containers[0].changes] == ["copy-up"]
    ex.file.value, ex.action.value = "/app/package.json", "delete"
    ex.run_button.click()
    assert [s.kind for s in ex.results[-1].steps] == ["whiteout"]
    assert "/app/package.json" not in ex.file.options
    assert ex.history.value.count("<tr>") == 4  # header + three actions


@pytest.mark.root
def test_unknown_action_is_refused(engine, lesson_image):
    """An action outside the five is refused in one sentence."""
    engine.run(lesson_image, ["sleep", "30"], detach=True, name="viz-explore-2")
    from labkit.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="unknown action"):
        explorer.run_action(engine, "viz-explore-2", "shred", "/app/server.js")


# -- on the simulator ---------------------------------------------------------------------------------

def test_merged_files_come_from_the_simulators_model(sim_lab):
    """On the simulator the explorer lists the merged view's regular files without find(1): the image's and the
    container's own, never a deleted one, nothing of /proc; a stopped container cannot be listed."""
    from labkit.errors import LabkitError

    sim_lab.run("frontend-app:v2.1.0", ["sleep", "600"], detach=True, name="sim-explore-files")
    assert explorer.merged_files(sim_lab, "sim-explore-files", "/app") == ["/app/package.json", "/app/server.js"]
    sim_lab.exec_output("sim-explore-files", "echo hi > /app/notes.txt && rm /app/package.json")
    assert explorer.merged_files(sim_lab, "sim-explore-files", "/app") == ["/app/notes.txt", "/app/server.js"]
    everything = explorer.merged_files(sim_lab, "sim-explore-files")
    assert "/etc/passwd" in everything and "/app/server.js" in everything
    assert not [p for p in everything if p.startswith(("/proc/", "/sys/"))]
    assert explorer.merged_files(sim_lab, "sim-explore-files", "/no/such/dir") == []
    sim_lab.kill("sim-explore-files")
    with pytest.raises(LabkitError):
        explorer.merged_files(sim_lab, "sim-explore-files", "/app")


def test_explorer_widget_runs_on_the_simulator(sim_lab):
    """Built on a simulated container, the widget offers /app's files; read copies nothing, append copies the whole
    file up and redraws the picture, delete leaves a whiteout and the file leaves the list; the table grows."""
    sim_lab.run("frontend-app:v2.1.0", ["sleep", "600"], detach=True, name="sim-explore")
    ex = explorer.CopyUpExplorer(sim_lab, "sim-explore", under="/app")
    assert "labkit-explorer" in ex.widget._dom_classes
    assert list(ex.file.options) == ["/app/package.json", "/app/server.js"]
    blank = ex.image.value
    assert blank[:8] == b"\x89PNG\r\n\x1a\n"
    ex.file.value, ex.action.value = "/app/server.js", "read"
    ex.run_button.click()
    read = ex.results[-1]
    assert (read.exit_code, read.copied, read.steps) == (0, 0, ())
    assert "read /app/server.js: no copy-up" in ex.message.value
    after_read = ex.image.value
    assert after_read != blank  # the chosen file's serving layer is now framed
    ex.action.value = "append"
    ex.run_button.click()
    append = ex.results[-1]
    size = int(sim_lab.exec_output("sim-explore", ["wc", "-c", "/app/server.js"])[1].split()[0])
    assert append.exit_code == 0 and append.copied == size - len("labkit\n") > 0
    assert f"append /app/server.js: copy-up of {P.size_text(append.copied)}" in ex.message.value
    # The simulator models bytes, not a kernel's time: no milliseconds are shown as if they were one's.
    assert append.simulated and "time not modelled (simulator)" in ex.message.value and " ms" not in ex.message.value
    ex.run_button.click()
    again = ex.results[-1]
    assert again.copied == 0 and "no copy-up" in ex.message.value  # copied once: the second append copies nothing
    assert ex.image.value != after_read
    assert layers.gather(sim_lab, ["sim-explore"], "/app/server.js").containers[0].serves == "upper"
    ex.file.value, ex.action.value = "/app/package.json", "delete"
    ex.run_button.click()
    assert [s.kind for s in ex.results[-1].steps] == ["whiteout"]
    assert list(ex.file.options) == ["/app/server.js"]
    assert ex.history.value.count("<tr>") == 5 and "ms</td>" not in ex.history.value  # header + four actions


def test_a_click_after_the_container_is_gone_says_so_or_makes_it_again(sim_lab):
    """Run it on a removed container never fails silently: without ``remake`` it says the container is gone and
    how to bring it back; with it, a fresh container is started, the action runs, and the message says so."""
    make = lambda: sim_lab.run("frontend-app:v2.1.0", ["sleep", "600"], detach=True, name="sim-gone")  # noqa: E731
    make()
    plain = explorer.CopyUpExplorer(sim_lab, "sim-gone", under="/app")
    kept = explorer.CopyUpExplorer(sim_lab, "sim-gone", under="/app", remake=make)
    sim_lab.rm("sim-gone", force=True)
    plain.file.value, plain.action.value = "/app/server.js", "append"
    plain.run_button.click()
    assert "sim-gone is gone" in plain.message.value and "Run the cell that starts it" in plain.message.value
    assert plain.results == []
    kept.file.value, kept.action.value = "/app/server.js", "append"
    kept.run_button.click()
    assert "was gone: a fresh one was started" in kept.message.value and "copy-up of" in kept.message.value
    assert sim_lab.inspect("sim-gone")["State"]["Running"] and len(kept.results) == 1
