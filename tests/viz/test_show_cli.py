"""`labkit show KIND NAME -o FILE` saves a picture; matplotlib stays out of everything else."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from labkit import cli


class StatusEngine:
    """Answers inspect with a fixed status (enough for the lifecycle picture), on a real backend."""

    class backend:  # noqa: N801 — what the pictures ask of an engine's backend
        simulated = False

    def inspect(self, ref):
        from labkit.errors import NoSuchContainer

        if ref != "web":
            raise NoSuchContainer(ref)
        return {"Id": "a" * 64, "Name": "/web", "State": {"Status": "paused", "Running": True}}


def run(argv, engine=None):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, engine_factory=lambda **_kw: engine or StatusEngine(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_show_lifecycle_saves_png_and_svg(tmp_path):
    """The lifecycle picture is saved as PNG and SVG and the file name printed; the SVG names the status."""
    png, svg = tmp_path / "life.png", tmp_path / "life.svg"
    assert run(["show", "lifecycle", "web", "-o", str(png)])[:2] == (0, f"{png}\n")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run(["show", "lifecycle", "web", "-o", str(svg)])[0] == 0
    assert "paused" in svg.read_text()


def test_show_refuses_bad_input_in_one_line(tmp_path):
    """A wrong extension, two names for a one-container picture, or a missing container: one line, no traceback."""
    code, _, err = run(["show", "lifecycle", "web", "-o", str(tmp_path / "x.jpg")])
    assert code == 125 and "name the file .png or .svg" in err and "Traceback" not in err
    code, _, err = run(["show", "walls", "a", "b", "-o", str(tmp_path / "x.png")])
    assert code == 125 and "exactly one container" in err
    code, _, err = run(["show", "lifecycle", "nope", "-o", str(tmp_path / "x.png")])
    assert code == 1 and err.strip().startswith("Error response from daemon: No such container: nope")


def test_heavy_imports_stay_out_of_labkit_and_the_cli():
    """`import labkit`, `labkit.cli` and `labkit.engine` import neither matplotlib nor ipywidgets."""
    code = ("import sys, labkit, labkit.cli, labkit.engine, labkit.viz; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'ipywidgets')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.root
def test_show_layers_of_real_containers(engine, lesson_image, tmp_path):
    """`show layers` draws real containers sharing the lesson's image, with --path."""
    engine.run(lesson_image, ["sleep", "30"], detach=True, name="viz-cli-a")
    engine.exec_output("viz-cli-a", "rm /app/package.json")
    out = tmp_path / "layers.svg"
    code, printed, err = run(["show", "layers", "viz-cli-a", "-o", str(out), "--path", "/app/server.js"],
                             engine=engine)
    assert code == 0, err
    text = out.read_text()
    assert "app code" in text and "base OS" in text and "/app/package.json" in text
