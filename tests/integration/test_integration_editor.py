"""The motion editor (web/motion_editor.js) and the point picker (web/point_picker.js) in the real ComfyUI front end.

One headless Chromium session, the tests in order on the same page: draw two arrows and a trajectory with mouse
events on the SparseTrajectoryToFlow canvas, queue from the Run button and check that the saved animation moves
the way the arrows point; reload a saved workflow (the drawing comes back exactly); the keys never reach the graph
(Delete over a selected item never removes the node); Undo and Redo by button and by key; other packs' formats are
named and convert the way the node reads them (checked against ops/trajectories); per-track timing, the frame
slider and the motion shown in pixels; a fresh node's size; the picture found through other nodes and after a run;
InteractiveDynamics' point set by a click; a workflow whose pack nodes are unknown (ComfyUI's missing-nodes
dialog). Saves docs/editor.png and docs/point_picker.png, the README's screenshots.
"""
from __future__ import annotations

import copy
import json
import pathlib

import numpy as np
import pytest
from browser import (
    ROOT,
    drag,
    load_workflow,
    node_clip,
    open_page,
    queue_from_ui,
    require_browser,
    screen,
    set_widget,
    show_node,
    widget,
)
from PIL import Image

from imagedynamics.ops.trajectories import parse_arrows, parse_trajectories

require_browser()

SHOT = ROOT / "docs" / "editor.png"
PICKER_SHOT = ROOT / "docs" / "point_picker.png"
EDITOR = '.imd-editor[data-node-id="2"]'
CANVAS = EDITOR + " canvas"
PACK_TYPES = ("SparseTrajectoryToFlow", "EulerianMotion", "SoftmaxSplatRender", "PreviewMotion")

# Picture pixels (the flag of astronaut.png is the only region its mask lets move: x < ~90, y < ~230).
ARROWS = [((20.0, 60.0), (60.0, 60.0)),      # to the right, over the stars
          ((45.0, 150.0), (45.0, 195.0))]    # down, over the stripes
TRACK = [(150.0, 440.0), (180.0, 420.0), (210.0, 425.0), (250.0, 450.0)]
SPEED = 0.1  # 40 px arrows -> 4 px per frame
FRAMES = 12
SIGMA = 60.0


@pytest.fixture(scope="module")
def page(comfy):
    with open_page(comfy) as pg:
        yield pg


def _value(page) -> str:
    return widget(page, 2, "trajectories")


def _doc(page) -> dict:
    return json.loads(_value(page))


def _drag(page, points, steps: int = 6) -> None:
    drag(page, points, CANVAS, steps)


def _screen(page, x, y):
    return screen(page, x, y, CANVAS)


def _motion_line(page) -> tuple[str, str]:
    """(text, class) of the editor's motion line."""
    return tuple(page.evaluate(f"""() => {{ const m = document.querySelector('{EDITOR} .imd-motion');
        return [m.textContent, m.className]; }}"""))


def _nodes(page) -> list[int]:
    return page.evaluate("() => app.graph.nodes.map(n => n.id).sort((a, b) => a - b)")


def _flow(frames: list[np.ndarray], later: int) -> np.ndarray:
    import cv2

    a = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(frames[later], cv2.COLOR_RGB2GRAY)
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 21, 5, 5, 1.1, 0)


def _read_webp(path: pathlib.Path) -> list[np.ndarray]:
    """Every frame of an animated WebP; the encoder merges repeated frames into one longer frame, so a frame
    lasting k times the shortest duration is repeated k times."""
    with Image.open(path) as im:
        frames, durations = [], []
        for index in range(im.n_frames):
            im.seek(index)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info.get("duration", 1) or 1)
    shortest = min(durations)
    return [f for f, d in zip(frames, durations) for _ in range(int(round(d / shortest)))]


def _load_cinemagraph(comfy, page) -> None:
    load_workflow(page, "cinemagraph")
    import_errors = [line for line in comfy.log().splitlines()
                     if "comfyui-imagedynamics" in line and ("Error while calling" in line or "IMPORT FAILED" in line)]
    assert page.evaluate("() => document.querySelectorAll('.p-dialog').length") == 0, import_errors
    show_node(page, 2, size=[470, 860])  # room for the editor, at a zoom that is not 1
    page.wait_for_selector(CANVAS, state="visible", timeout=10_000)
    # The picture comes from the Load Image node's file (/view?...&type=input).
    page.wait_for_function("() => app.graph.getNodeById(2).imdEditor?.picture?.width === 512", timeout=10_000)


def _ensure_cinemagraph(comfy, page) -> None:
    """The tests run in order on one page; one run alone (-k) loads the graph the earlier ones leave."""
    if not page.evaluate("() => app.graph.getNodeById(2)?.type === 'SparseTrajectoryToFlow'"
                         " && app.graph.getNodeById(3)?.type === 'EulerianMotion'"):
        _load_cinemagraph(comfy, page)


def _clear(page) -> None:
    page.click(EDITOR + " button[data-action=clear]")
    assert _doc(page)["arrows"] == [] and _doc(page)["tracks"] == []


def test_draw_queue_and_the_frames_move_the_drawn_way(comfy, page):
    _load_cinemagraph(comfy, page)
    _clear(page)
    doc = _doc(page)
    assert (doc["width"], doc["height"]) == (512, 512)

    view = page.evaluate("() => [app.canvas.ds.scale, ...app.canvas.ds.offset, ...app.graph.getNodeById(2).pos]")
    page.fill(EDITOR + " input[data-control=speed]", str(SPEED))
    page.dispatch_event(EDITOR + " input[data-control=speed]", "change")
    page.click(EDITOR + " button[data-tool=arrow]")
    for start, end in ARROWS:
        _drag(page, [start, end])
    page.click(EDITOR + " button[data-tool=track]")
    _drag(page, TRACK)

    # Drawing neither panned the graph nor dragged the node.
    assert page.evaluate("() => [app.canvas.ds.scale, ...app.canvas.ds.offset, ...app.graph.getNodeById(2).pos]") == view
    value = _value(page)
    doc = json.loads(value)
    assert doc["coordinates"] == "pixels" and (doc["width"], doc["height"]) == (512, 512)
    assert len(doc["arrows"]) == 2, doc
    for arrow, (start, end) in zip(doc["arrows"], ARROWS):
        assert np.allclose(arrow["start"], start, atol=1.5) and np.allclose(arrow["end"], end, atol=1.5), arrow
        assert arrow["speed"] == pytest.approx(SPEED)
    assert len(doc["tracks"]) == 1 and len(doc["tracks"][0]) >= 2, doc
    track = np.asarray(doc["tracks"][0])  # no timing set: a bare point list, as before timing existed
    assert np.allclose(track[0], TRACK[0], atol=1.5) and np.allclose(track[-1], TRACK[-1], atol=1.5), track
    # Every drawn point lies near the dragged polyline.
    assert max(min(_segment_distance(p, a, b) for a, b in zip(TRACK, TRACK[1:])) for p in track) < 2.0

    # Queue from the UI; the prompt carries the drawn JSON. A short loop and no motion preview keep this quick on
    # a shared 2-core CPU (the preview branch is muted, as a user would with Ctrl+M).
    # A narrower Gaussian than the automatic 170 px keeps each arrow's motion its own near it.
    set_widget(page, 2, "sigma", SIGMA)
    set_widget(page, 3, "num_frames", FRAMES)
    page.evaluate("() => { app.graph.getNodeById(7).mode = 2; }")
    queued = queue_from_ui(page)
    response = queued["response"]
    assert not response.get("node_errors"), response
    inputs = queued["prompt"]["2"]["inputs"]
    assert inputs["trajectories"] == value and inputs["sigma"] == SIGMA
    assert "motion_editor" not in inputs  # the editor itself is not an input of the node
    entry = comfy.wait(response["prompt_id"], timeout=300)
    assert entry["status"]["status_str"] == "success"
    frames = _read_webp(comfy.output_path(entry["outputs"]["5"]["images"][0]))
    assert len(frames) == FRAMES and frames[0].shape[:2] == (512, 512)

    flow = _flow(frames, later=3)
    for start, end in ARROWS:
        direction = np.subtract(end, start) / np.linalg.norm(np.subtract(end, start))
        x0, y0 = (np.asarray(start) + np.asarray(end)) / 2
        window = flow[int(y0) - 12:int(y0) + 13, int(x0) - 12:int(x0) + 13].reshape(-1, 2)
        mean = window.mean(axis=0)
        speed = float(np.linalg.norm(mean))
        print("arrow", start, end, "mean flow", mean)
        assert speed > 1.0, (start, end, mean)  # about 3 frames x 4 px, blurred by the loop's cross-fade
        assert float(mean @ direction) / speed > 0.9, (start, end, mean)  # within 25 degrees of the arrow
    still = np.abs(frames[3].astype(np.float32) - frames[0].astype(np.float32))[:, 300:].mean()
    assert still < 2.0, still  # outside the mask (the astronaut) nothing moves


def test_saved_drawing_reloads_exactly(page):
    """Uses the drawing of the test above (same browser page)."""
    before = page.evaluate("""() => { const e = app.graph.getNodeById(2).imdEditor;
        e.select(null); e.redraw();
        return {value: e.valueWidget.value, drawing: JSON.stringify(e.drawing), pixels: e.canvas.toDataURL()}; }""")
    assert len(json.loads(before["value"])["arrows"]) == 2
    saved = page.evaluate("() => JSON.parse(JSON.stringify(app.graph.serialize()))")
    page.evaluate("wf => app.loadGraphData(wf)", json.loads(json.dumps(saved)))
    page.wait_for_function("() => app.graph.getNodeById(2)?.imdEditor?.picture?.width === 512", timeout=10_000)
    after = page.evaluate("""() => { const e = app.graph.getNodeById(2).imdEditor; e.redraw();
        return {value: e.valueWidget.value, drawing: JSON.stringify(e.drawing), pixels: e.canvas.toDataURL()}; }""")
    assert after["value"] == before["value"]
    assert after["drawing"] == before["drawing"]
    assert after["pixels"] == before["pixels"]  # the same items drawn the same way on the same picture
    # The brush and the eraser add strokes with their radius; Undo (the button) takes the last one back.
    page.fill(EDITOR + " input[data-control=radius]", "9")
    page.click(EDITOR + " button[data-tool=brush]")
    _drag(page, [(300, 100), (360, 120)])
    page.click(EDITOR + " button[data-tool=erase]")
    _drag(page, [(330, 90), (330, 130)])
    strokes = _doc(page)["brush"]["strokes"]
    assert [(s["erase"], s["radius"]) for s in strokes] == [(False, 9), (True, 9)], strokes
    assert np.allclose(strokes[0]["points"][0], (300, 100), atol=1.5)
    assert np.allclose(strokes[1]["points"][-1], (330, 130), atol=1.5)
    page.click(EDITOR + " button[data-action=undo]")
    assert len(_doc(page)["brush"]["strokes"]) == 1
    # The wheel over the editor zooms the graph, as over any node.
    scale = page.evaluate("() => app.canvas.ds.scale")
    page.mouse.move(*_screen(page, 256, 256))
    page.mouse.wheel(0, -200)
    page.wait_for_function(f"() => app.canvas.ds.scale > {scale}", timeout=5_000)
    show_node(page, 2)


def test_delete_over_a_selected_item_never_removes_the_node(comfy, page):
    _ensure_cinemagraph(comfy, page)
    nodes = _nodes(page)
    _clear(page)
    page.click(EDITOR + " button[data-tool=arrow]")
    _drag(page, [(100, 300), (160, 300)])
    # The node was selected (a click on its title); a click in the drawing leaves it unselected.
    page.evaluate("() => app.canvas.selectNode(app.graph.getNodeById(2))")
    page.click(EDITOR + " button[data-tool=move]")
    page.mouse.click(*_screen(page, 130, 300))  # the arrow's body: selects it
    assert page.evaluate("() => app.graph.getNodeById(2).imdEditor.selected") == {"kind": "arrow", "index": 0}
    assert page.evaluate("() => Object.keys(app.canvas.selected_nodes)") == []
    # The pointer slightly off the drawing, over the graph: the editor keeps the keyboard.
    x, y = _screen(page, 0, 300)
    page.mouse.move(x - 25, y)
    page.keyboard.press("Delete")
    assert _doc(page)["arrows"] == []
    assert _nodes(page) == nodes
    # Nothing is selected in the drawing now: Delete and Backspace still stay in the editor.
    page.keyboard.press("Delete")
    page.keyboard.press("Backspace")
    assert _nodes(page) == nodes
    # A click on the graph gives the keyboard back to ComfyUI.
    assert page.evaluate(f"() => document.querySelector('{EDITOR}').contains(document.activeElement)")
    page.mouse.click(1380, 880)
    assert not page.evaluate(f"() => document.querySelector('{EDITOR}').contains(document.activeElement)")


def test_undo_then_redo_round_trips_by_button_and_by_key(comfy, page):
    _ensure_cinemagraph(comfy, page)
    nodes = _nodes(page)
    page.evaluate("() => { window.editorBefore = app.graph.getNodeById(2).imdEditor; }")
    _clear(page)
    v0 = _value(page)
    page.click(EDITOR + " button[data-tool=arrow]")
    _drag(page, [(100, 300), (160, 320)])
    v1 = _value(page)
    page.click(EDITOR + " button[data-tool=track]")
    _drag(page, [(200, 400), (260, 380), (300, 420)])
    v2 = _value(page)
    assert len({v0, v1, v2}) == 3

    def press(button: str | None = None, key: str | None = None) -> str:
        if button:
            page.click(EDITOR + f" button[data-action={button}]")
        else:
            page.keyboard.press(key)
        return _value(page)

    assert press("undo") == v1
    assert press("redo") == v2
    assert press("undo") == v1
    assert press(key="Control+y") == v2  # redo by key right after the Undo button
    assert press(key="Control+z") == v1
    assert press(key="Control+z") == v0
    assert press(key="Control+Shift+z") == v1
    assert press("redo") == v2
    assert press(key="Control+y") == v2  # nothing left to redo: the key stays in the editor
    assert press(key="Control+z") == v1
    assert press("redo") == v2
    # The graph's own undo never ran: the same node, its editor object and every node are still there.
    assert _nodes(page) == nodes
    assert page.evaluate("() => app.graph.getNodeById(2).imdEditor === window.editorBefore")


FORMATS = [  # (text, what the editor calls it)
    ("10,10,60,20\n30,30,80,40,0.5", "Motion-I2V drag lines"),
    ('[{"x": 10, "y": 20}, {"x": 40, "y": 30}, {"x": 80, "y": 60}]', "KJNodes spline"),
    ('[[10, 20], [40, 30], [80, 60], [120, 70]]', "DragNUWA / MotionCtrl point list"),
    ('{"track_path": [[[10, 20], [100, 100]], [[40, 30], [120, 110]], [[80, 60], [150, 130]]]}', "ComfyUI TRACKS"),
    ('{"coordinates": "normalized", "arrows": [{"start": [0.1, 0.2], "end": [0.3, 0.25], "speed": 0.5}]}',
     "normalised coordinates"),
    ("[[10, 20, 60, 20], [30, 30, 80, 40, 0.25]]", "arrow rows"),
]


@pytest.mark.parametrize(("text", "name"), FORMATS, ids=[name for _, name in FORMATS])
def test_other_formats_are_named_and_convert_as_the_node_reads_them(comfy, page, text, name):
    _ensure_cinemagraph(comfy, page)
    set_widget(page, 2, "trajectories", text)
    line, cls = _motion_line(page)
    assert name in line and "Convert" in line and cls == "imd-motion info", (line, cls)  # not an error
    assert _value(page) == text  # never rewritten unasked
    page.click(EDITOR + " button[data-action=convert]")
    converted = _value(page)
    assert json.loads(converted)["coordinates"] == "pixels"
    assert _motion_line(page)[1] != "imd-motion info"
    # The node reads the converted drawing as it read the text, in both modes (to the editor's 0.1 px).
    a, b = parse_arrows(text, 512, 512), parse_arrows(converted, 512, 512)
    for x, y in ((a.start, b.start), (a.end, b.end), (a.speed, b.speed)):
        assert np.allclose(x.numpy(), y.numpy(), atol=0.051), (text, converted)
    a, b = parse_trajectories(text, 512, 512), parse_trajectories(converted, 512, 512)
    assert a.points.shape == b.points.shape and np.allclose(a.points.numpy(), b.points.numpy(), atol=0.051)
    page.click(EDITOR + " button[data-action=undo]")
    assert _value(page) == text


def test_text_the_node_refuses_is_an_error_and_clear_starts_over(comfy, page):
    _ensure_cinemagraph(comfy, page)
    set_widget(page, 2, "trajectories", '{"arrows": [{"start": [1, 2]}]}')
    line, cls = _motion_line(page)
    assert "cannot be read" in line and cls == "imd-motion error", (line, cls)
    page.click(EDITOR + " button[data-action=clear]")
    assert _doc(page)["arrows"] == []
    page.click(EDITOR + " button[data-action=undo]")
    assert _value(page) == '{"arrows": [{"start": [1, 2]}]}'
    _clear(page)


def _pixels(page, box) -> np.ndarray:
    """RGBA pixels [h, w, 4] of the editor canvas in box (x0, y0, x1, y1), picture pixels."""
    data = page.evaluate(f"""box => {{ const c = document.querySelector('{CANVAS}');
        const d = c.getContext('2d').getImageData(box[0], box[1], box[2] - box[0], box[3] - box[1]);
        return Array.from(d.data); }}""", list(box))
    return np.asarray(data, dtype=np.float32).reshape(box[3] - box[1], box[2] - box[0], 4)


def test_track_timing_and_the_frame_slider(comfy, page):
    _ensure_cinemagraph(comfy, page)
    _clear(page)
    set_widget(page, 2, "mode", "tracks")  # the slider plays what the mode plays: tracks over this node's frames
    # New tracks take the timing boxes' values; the selected track's timing follows the boxes.
    page.fill(EDITOR + " input[data-control=start]", "4")
    page.fill(EDITOR + " input[data-control=end]", "20")
    page.click(EDITOR + " button[data-tool=track]")
    _drag(page, [(150, 440), (200, 400), (260, 430), (330, 420)])
    page.select_option(EDITOR + " select[data-control=easing]", "ease-in-out")
    track = _doc(page)["tracks"][0]
    assert (track["start"], track["end"], track["easing"]) == (4, 20, "ease-in-out"), track
    assert "frames 4–20, ease-in-out" in _motion_line(page)[0]
    # An end past the node's last frame (num_frames 48) is refused by name; the drawing keeps its timing.
    page.fill(EDITOR + " input[data-control=end]", "60")
    page.dispatch_event(EDITOR + " input[data-control=end]", "change")
    line, cls = _motion_line(page)
    assert "the last frame is 47" in line and cls == "imd-motion error", line
    assert _doc(page)["tracks"][0]["end"] == 20
    page.fill(EDITOR + " input[data-control=end]", "20")
    page.dispatch_event(EDITOR + " input[data-control=end]", "change")

    # The slider shows where the region is at a frame: frame 12 is half-way in time, and ease-in-out's half-way.
    points = np.asarray(track["points"])
    u = 0.5 * (len(points) - 1)
    k = int(u)
    expected = points[k] + (u - k) * (points[k + 1] - points[k])
    x, y = (int(v) for v in np.round(expected))
    near, far = (x - 6, y - 6, x + 7, y + 7), (x + 40, y - 60, x + 53, y - 47)
    page.evaluate("() => { const e = app.graph.getNodeById(2).imdEditor; e.select(null); e.redraw(); }")
    before = _pixels(page, near), _pixels(page, far)
    _set_frame(page, 12)
    assert page.inner_text(EDITOR + " .imd-scrub span") == "frame 12 / 47"
    after = _pixels(page, near), _pixels(page, far)
    print("position ring at", expected, "change", np.abs(after[0] - before[0]).mean())
    assert np.abs(after[0] - before[0]).max() > 100  # the ring is drawn there
    assert np.array_equal(after[1], before[1])  # and nothing changes away from it
    _set_frame(page, 0)
    set_widget(page, 2, "mode", "arrows")


def _set_frame(page, frame: int) -> None:
    page.evaluate(f"""f => {{ const s = document.querySelector('{EDITOR} input[data-control=frame]');
        s.value = f; s.dispatchEvent(new Event('input')); }}""", frame)


def _half_up(v: float) -> int:
    return int(np.floor(v + 0.5))  # JavaScript's Math.round


def test_motion_is_shown_in_pixels_with_a_warning_when_implausible(comfy, page):
    _ensure_cinemagraph(comfy, page)
    _clear(page)
    page.fill(EDITOR + " input[data-control=speed]", "0.4")
    page.click(EDITOR + " button[data-tool=arrow]")
    _drag(page, [(100, 300), (180, 300)])  # about 80 px at 0.4: 32 px per frame
    arrow = _doc(page)["arrows"][0]
    length = float(np.hypot(*np.subtract(arrow["end"], arrow["start"])))
    assert length == pytest.approx(80, abs=1.5)

    def expected(speed, frames):
        v = length * speed
        return f"{_half_up(length)} px × speed {speed} = {v:.1f} px/frame, {_half_up(v * frames)} px over {frames} frames"

    set_widget(page, 3, "num_frames", 12)
    page.wait_for_function(f"""() => document.querySelector('{EDITOR} .imd-motion').textContent
        .includes('over 12 frames')""", timeout=5_000)
    line, cls = _motion_line(page)
    # The loop downstream (EulerianMotion) sets the clip's length.
    assert expected(0.4, 12) + " (Eulerian Motion" in line, line
    assert cls == "imd-motion", (line, cls)
    set_widget(page, 3, "num_frames", 48)
    page.wait_for_function(f"""() => document.querySelector('{EDITOR} .imd-motion').textContent
        .includes('over 48 frames')""", timeout=5_000)
    line, cls = _motion_line(page)
    assert expected(0.4, 48) in line and "more than the picture's 512 px" in line, line
    assert cls == "imd-motion warning", (line, cls)
    page.fill(EDITOR + " input[data-control=speed]", "0.02")
    page.dispatch_event(EDITOR + " input[data-control=speed]", "change")
    line, cls = _motion_line(page)
    assert expected(0.02, 48) in line and cls == "imd-motion", (line, cls)

    # The README's screenshot: arrows with their motion in pixels, and where they are at frame 24 of the loop.
    _clear(page)
    page.fill(EDITOR + " input[data-control=speed]", "0.1")
    for start, end in ARROWS:
        _drag(page, [start, end])
    _drag(page, [(200, 250), (260, 240)])
    page.evaluate("() => app.graph.getNodeById(2).imdEditor.select(null)")
    _set_frame(page, 24)
    page.mouse.move(*_screen(page, 300, 300))
    page.wait_for_timeout(100)
    SHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOT), clip=node_clip(page, 2))
    assert SHOT.stat().st_size > 10_000
    _set_frame(page, 0)


TIMED = {"start": 4, "end": 12, "easing": "ease-in", "frames": 16}
TIMED_TRACK = [(170.0, 380.0), (190.0, 365.0), (210.0, 350.0)]  # the mission patch, up and to the right


def test_track_timing_drawn_in_the_editor_reaches_the_rendered_frames(comfy, page):
    """The region under a track drawn with start 4, end 12 and ease-in sits still until frame 4, is an eighth of
    the way at frame 8 (ease-in's u^3 at u = 1/2) and arrives at the track's end at frame 12, in the saved file."""
    from imagedynamics.ops.trajectories import resample_tracks

    load_workflow(page, "drag_region")
    show_node(page, 2)
    page.wait_for_function("() => app.graph.getNodeById(2).imdEditor?.picture?.width === 512", timeout=10_000)
    _clear(page)
    page.fill(EDITOR + " input[data-control=start]", str(TIMED["start"]))
    page.fill(EDITOR + " input[data-control=end]", str(TIMED["end"]))
    page.select_option(EDITOR + " select[data-control=easing]", TIMED["easing"])
    page.click(EDITOR + " button[data-tool=track]")
    _drag(page, TIMED_TRACK)
    text = _value(page)
    track = json.loads(text)["tracks"][0]
    assert {k: track[k] for k in ("start", "end", "easing")} == {k: TIMED[k] for k in ("start", "end", "easing")}
    # The whole picture follows the one track (no brush), so the patch keeps its look; short and unpreviewed.
    page.evaluate("() => { app.graph.getNodeById(2).disconnectInput(1); app.graph.getNodeById(5).mode = 2;"
                  " app.graph.getNodeById(6).mode = 2; }")
    set_widget(page, 2, "num_frames", TIMED["frames"])
    queued = queue_from_ui(page)
    assert not queued["response"].get("node_errors"), queued["response"]
    assert queued["prompt"]["2"]["inputs"]["trajectories"] == text
    entry = comfy.wait(queued["response"]["prompt_id"], timeout=300)
    frames = _read_webp(comfy.output_path(entry["outputs"]["4"]["images"][0]))
    assert len(frames) == TIMED["frames"]

    # Where the backend puts the track at each frame, and what that means for this timing.
    expected = resample_tracks(parse_trajectories(text, 512, 512), TIMED["frames"]).points[:, 0].numpy()
    first, last = np.asarray(track["points"][0]), np.asarray(track["points"][-1])
    assert np.allclose(expected[:TIMED["start"] + 1], first, atol=1e-3)
    assert np.allclose(expected[TIMED["end"]:], last, atol=1e-3)
    assert np.linalg.norm(expected[8] - first) == pytest.approx(np.linalg.norm(last - first) / 8, rel=0.15)
    import cv2

    x0, y0 = (int(v) for v in first)
    patch = frames[0][y0 - 15:y0 + 16, x0 - 15:x0 + 16]
    for k in (2, TIMED["start"], 8, TIMED["end"], TIMED["frames"] - 1):
        score = cv2.matchTemplate(frames[k], patch, cv2.TM_SQDIFF)
        y, x = np.unravel_index(int(np.argmin(score)), score.shape)
        found = np.asarray([x + 15, y + 15], dtype=float)
        print("frame", k, "patch at", found, "track at", expected[k])
        assert np.linalg.norm(found - expected[k]) <= 2.0, (k, found, expected[k])


def test_a_fresh_node_has_room_to_draw(page):
    node_id = page.evaluate("""() => {
        const n = LiteGraph.createNode('SparseTrajectoryToFlow'); app.graph.add(n);
        const ds = app.canvas.ds;
        n.pos = [40 / ds.scale - ds.offset[0], 40 / ds.scale - ds.offset[1]];
        n.imdEditor.speedInput.value = '0.15';
        app.canvas.setDirty(true, true);
        return n.id; }""")
    editor = f"app.graph.getNodeById({node_id}).imdEditor"
    page.wait_for_function(f"() => {editor}.stage.clientHeight > 0", timeout=10_000)
    sizes = page.evaluate(f"""() => {{ const e = {editor}, n = e.node;
        return {{node: n.size, stage: [e.stage.clientWidth, e.stage.clientHeight],
                 speed: [e.speedInput.scrollWidth, e.speedInput.clientWidth]}}; }}""")
    page.evaluate(f"() => app.graph.remove({editor}.node)")
    print("fresh node", sizes)
    assert sizes["stage"][0] >= 400 and sizes["stage"][1] >= 280, sizes  # was 140 px tall
    assert sizes["speed"][0] <= sizes["speed"][1], sizes  # "0.15" fits its box (scrollWidth grows when cut)


def test_the_picture_is_found_through_other_nodes_and_after_a_run(comfy, page):
    ids = page.evaluate("""() => {
        app.graph.clear();
        const add = (type, pos) => { const n = LiteGraph.createNode(type); n.pos = pos; app.graph.add(n); return n; };
        const load = add('LoadImage', [0, 0]);
        load.widgets.find(w => w.name === 'image').value = 'astronaut.png';
        const half = add('ImageScaleBy', [0, 420]);
        half.widgets.find(w => w.name === 'scale_by').value = 0.5;
        const reroute = add('Reroute', [340, 420]);
        const scaled = add('SparseTrajectoryToFlow', [400, 0]);
        const rerouted = add('SparseTrajectoryToFlow', [900, 0]);
        const preview = add('PreviewMotion', [1400, 0]);
        const show = add('PreviewImage', [1400, 400]);
        load.connect(0, half, 0); half.connect(0, scaled, 0);
        load.connect(0, reroute, 0); reroute.connect(0, rerouted, 0);
        half.connect(0, preview, 0); scaled.connect(0, preview, 1); preview.connect(0, show, 0);
        rerouted.mode = 2;  // muted: only the scaled branch runs
        scaled.widgets.find(w => w.name === 'trajectories').value =
            '{"arrows": [{"start": [40, 40], "end": [60, 40], "speed": 0.1}]}';
        app.canvas.ds.scale = 0.5; app.canvas.ds.offset = [20, 60]; app.canvas.setDirty(true, true);
        return [scaled.id, rerouted.id]; }""")
    pictures = """ids => ids.map(id => { const e = app.graph.getNodeById(id).imdEditor;
        return [e.picture?.width ?? null, e.status.textContent]; })"""
    page.wait_for_function(f"() => ({pictures})({ids}).every(p => p[0] === 512)", timeout=10_000)
    (scaled_width, scaled_status), (rerouted_width, rerouted_status) = page.evaluate(pictures, ids)
    assert "through Upscale Image By" in scaled_status, scaled_status  # the file, marked approximate
    assert "through" not in rerouted_status and "no picture" not in rerouted_status, rerouted_status
    # After a run the node shows the picture it really got: half the size.
    queued = queue_from_ui(page)
    assert not queued["response"].get("node_errors"), queued["response"]
    comfy.wait(queued["response"]["prompt_id"], timeout=120)
    page.wait_for_function(f"() => ({pictures})({ids})[0][0] === 256", timeout=10_000)
    assert "the picture of the last run" in page.evaluate(pictures, ids)[0][1]


def test_the_point_picker_sets_interactive_dynamics_point(page):
    load_workflow(page, "drag_and_release")
    show_node(page, 3, scale=1.0)
    picker = '.imd-picker[data-node-id="3"] canvas'
    # The picture comes through the spectrum: Spectral Volume Sampler's image, a Load Image.
    page.wait_for_function("() => app.graph.getNodeById(3).imdPicker?.loader.picture?.width === 512", timeout=10_000)
    page.mouse.click(*screen(page, 40, 120, picker))
    assert [widget(page, 3, n) for n in ("x", "y")] == [40, 120]
    drag(page, [(60, 160), (90, 140)], picker)  # a drag sets the point where it starts and the pull
    assert [widget(page, 3, n) for n in ("x", "y", "dx", "dy")] == [60, 160, 30, -20]
    assert page.evaluate("() => Object.keys(app.canvas.selected_nodes)") == []
    status = page.inner_text('.imd-picker[data-node-id="3"] .imd-status')
    assert "point (60, 160) · pull (30, -20) px" in status, status
    prompt = page.evaluate("async () => JSON.parse(JSON.stringify((await app.graphToPrompt()).output))")
    assert {k: prompt["3"]["inputs"][k] for k in ("x", "y", "dx", "dy")} == {"x": 60, "y": 160, "dx": 30, "dy": -20}
    page.screenshot(path=str(PICKER_SHOT), clip=node_clip(page, 3))
    # Typing a value moves the marker.
    set_widget(page, 3, "x", 300)
    page.wait_for_function("""() => document.querySelector('.imd-picker[data-node-id="3"] .imd-status').textContent
        .includes('point (300, 160)')""", timeout=5_000)


def test_workflow_without_the_pack_shows_the_missing_nodes_dialog(page):
    workflow = json.loads((ROOT / "workflows" / "cinemagraph.json").read_text())
    missing = copy.deepcopy(workflow)
    for node in missing["nodes"]:
        if node["type"] in PACK_TYPES:
            node["type"] = "NotInstalled" + node["type"]
    page.evaluate("wf => app.loadGraphData(wf)", missing)
    page.wait_for_selector(".p-dialog:has-text('missing nodes')", timeout=10_000)
    text = "\n".join(page.evaluate("() => [...document.querySelectorAll('.p-dialog')].map(d => d.innerText)"))
    assert "NotInstalledSparseTrajectoryToFlow" in text, text
    page.keyboard.press("Escape")
    page.wait_for_selector(".p-dialog", state="detached", timeout=5_000)
    assert page.evaluate("() => !app.graph.nodes.some(n => n.imdEditor)")  # unknown nodes get no editor
    assert not page.errors, page.errors


def _segment_distance(p, a, b) -> float:
    p, a, b = (np.asarray(v, dtype=float) for v in (p, a, b))
    d = b - a
    t = np.clip(np.dot(p - a, d) / np.dot(d, d), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * d)))
