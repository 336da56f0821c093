"""The copy-up explorer runs real actions in a container and shows the copy-up's bytes and time."""

from __future__ import annotations

import pytest

from labkit.viz import explorer, layers
from labkit.viz import palette as P

pytestmark = pytest.mark.root


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


def test_unknown_action_is_refused(engine, lesson_image):
    """An action outside the five is refused in one sentence."""
    engine.run(lesson_image, ["sleep", "30"], detach=True, name="viz-explore-2")
    from labkit.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="unknown action"):
        explorer.run_action(engine, "viz-explore-2", "shred", "/app/server.js")
