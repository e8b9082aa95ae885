// ImageDynamics motion editor: draw arrows, trajectories and a motion brush on the picture, inside the
// SparseTrajectoryToFlow node. What is drawn is kept in the node's "trajectories" widget as the pack's canonical
// JSON (picture pixels), so saved workflows round-trip and API users can write the same text by hand.
//
// Plain ES module, no build step. Mouse: left button draws with the current tool, middle button pans the graph,
// the wheel zooms the graph. Keys: after a click in the editor it has the keyboard until a click elsewhere; the
// keys it handles (Delete/Backspace, Ctrl+Z, Ctrl+Shift+Z / Ctrl+Y, Escape) never reach the graph, every other
// key goes to ComfyUI. A click in the editor never selects the node, so the graph's Delete cannot remove it.
//
// Drawing is layered: the picture, the brush and every item not being edited are cached canvases, redrawn only
// when they change; a mouse move redraws the edited item and the pointer on top (issue 20: thousands of items).
import { app } from "../../scripts/app.js";
import * as M from "./motion_editor_model.js";
import * as F from "./motion_editor_formats.js";
import * as D from "./motion_editor_draw.js";
import { PictureLoader, inputNode, outputNodes, upstreamPicture, viewUrl, widgetValue } from "./picture_source.js";
import { changed, deselect, el, fitCanvas, injectStyle, panGraph, passGraphNavigation, pictureXY } from "./widget_util.js";

const NODE_TYPE = "SparseTrajectoryToFlow";
const VALUE_WIDGET = "trajectories";
const EDITOR_WIDGET = "motion_editor";
const FALLBACK_SIZE = [512, 512];
const HIT_PX = 9; // pick tolerance on screen, whatever the zoom
const EDITOR_MIN_HEIGHT = 440; // toolbar, a drawing area of about 320 px, the frame slider and two status lines
const NODE_MIN_WIDTH = 440;
const UNDO_DEPTH = 200;
const UNDO_CHARS = 32e6; // a few undo steps of a 5 MB drawing, many of a small one
const TOOLS = [
  ["arrow", "Arrow", "Drag from a point to where it moves in one frame (times speed). Drag a handle to adjust."],
  ["track", "Track", "Drag a path: the region under its start follows it over the frames. Several allowed."],
  ["brush", "Brush", "Paint the motion brush (the region that may move)."],
  ["erase", "Erase", "Erase the motion brush."],
  ["move", "Move", "Select, drag items or their handles; Delete removes the selected item."],
];

const STYLE = `
.imd-editor { display: flex; flex-direction: column; width: 100%; height: 100%; box-sizing: border-box; gap: 3px;
  font: 11px sans-serif; color: var(--input-text, #ddd); user-select: none; }
.imd-toolbar { display: flex; flex-wrap: wrap; gap: 3px; align-items: center; }
.imd-toolbar button { font: 11px sans-serif; padding: 2px 5px; border-radius: 4px; cursor: pointer;
  border: 1px solid var(--border-color, #555); background: var(--comfy-input-bg, #222); color: inherit; }
.imd-toolbar button.active { background: #3a6ea5; border-color: #6aa0e0; color: #fff; }
.imd-toolbar button.inactive { opacity: 0.45; cursor: default; }
.imd-toolbar button[data-action=convert] { background: #2f6b45; border-color: #58a878; color: #fff; }
.imd-toolbar label { display: flex; gap: 2px; align-items: center; }
.imd-toolbar label.disabled { opacity: 0.5; }
.imd-toolbar .imd-sep { width: 6px; }
.imd-toolbar input[type=number] { width: 52px; font: 11px sans-serif; background: var(--comfy-input-bg, #222);
  color: inherit; border: 1px solid var(--border-color, #555); border-radius: 4px; }
.imd-toolbar input[data-control=start], .imd-toolbar input[data-control=end] { width: 44px; }
.imd-toolbar select { font: 11px sans-serif; background: var(--comfy-input-bg, #222); color: inherit;
  border: 1px solid var(--border-color, #555); border-radius: 4px; }
.imd-stage { position: relative; flex: 1 1 auto; min-height: 60px; overflow: hidden; background: #1b1b1b;
  border-radius: 4px; }
.imd-stage canvas { position: absolute; touch-action: none; cursor: crosshair; }
.imd-stage canvas[data-tool=move] { cursor: default; }
.imd-scrub { display: flex; gap: 4px; align-items: center; }
.imd-scrub input[type=range] { flex: 1 1 auto; height: 12px; margin: 0; }
.imd-scrub span { min-width: 72px; text-align: right; font-variant-numeric: tabular-nums; }
.imd-status { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; opacity: 0.85; min-height: 14px; }
.imd-motion { opacity: 0.85; min-height: 28px; max-height: 42px; overflow: hidden; }
.imd-motion.warning { color: #ffb347; opacity: 1; }
.imd-motion.info { color: #9fd4ff; opacity: 1; }
.imd-motion.error { color: #ff8080; opacity: 1; }
.imd-keys { position: absolute; width: 1px; height: 1px; opacity: 0; pointer-events: none; border: 0; padding: 0; }
`;

const CTRL_RESERVED = new Set(["KeyA", "KeyC", "KeyV", "KeyX", "KeyZ", "KeyY", "KeyP", "Backspace", "Delete", "Home", "End"]);

/** Keys ComfyUI ignores when a text input has focus (plain keys, Shift+key, Ctrl+A/C/V/X/Z/Y...). */
function reservedByTextInput(e) {
  if (["Control", "Shift", "Alt", "Meta"].includes(e.key)) return false;
  if (!e.ctrlKey && !e.metaKey && !e.altKey) return true;
  return (e.ctrlKey || e.metaKey) && !e.altKey && CTRL_RESERVED.has(e.code);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

const px = (v) => `${Math.round(v)} px`;

function layer(w, h) {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  return c;
}

export class MotionEditor {
  constructor(node, valueWidget) {
    this.node = node;
    this.valueWidget = valueWidget;
    this.drawing = M.emptyDrawing();
    this.baseline = null; // canonical text of the drawing as last loaded or written (null: the text is not ours)
    this.error = null; // why the text cannot be read, or null
    this.foreign = null; // {name, dropped} when the text is another accepted format
    this.tool = "arrow";
    this.selected = null; // {kind, index}
    this.drag = null;
    this.undoStack = [];
    this.redoStack = [];
    this.hover = null; // picture point under the pointer, or null
    this.frame = 0; // the frame whose positions are shown (0: none)
    this.executed = null; // {url, tracedAtRun}: the picture this node reported after a run
    this.source = null; // where the picture comes from (see picture_source.upstreamPicture)
    this.loader = new PictureLoader(() => this.pictureChanged());
    this.writing = false;
    this.layers = { base: null, brush: null, items: null, positions: null, key: "" };
    this.dirty = { base: true, brush: true, items: true, positions: true };
    this.frameRequest = 0;
    this.version = 0; // counts changes of the drawing (the motion line is recomputed only then)
    this.build();
  }

  get picture() {
    return this.loader.picture;
  }

  // ------------------------------------------------------------------------------------------------ DOM
  build() {
    injectStyle("imagedynamics-editor-style", STYLE);
    const noFocus = (b) => {
      b.addEventListener("mousedown", (e) => e.preventDefault()); // the keys stay with the editor
      return b;
    };
    const button = (label, title, action, onClick) => {
      const b = noFocus(el("button", { textContent: label, title, type: "button" }));
      b.dataset.action = action;
      b.addEventListener("click", () => {
        onClick();
        this.focusKeys();
      });
      return b;
    };
    this.toolButtons = {};
    const tools = TOOLS.map(([id, label, tip]) => {
      const b = noFocus(el("button", { textContent: label, title: tip, type: "button" }));
      b.dataset.tool = id;
      b.addEventListener("click", () => {
        this.setTool(id);
        this.focusKeys();
      });
      this.toolButtons[id] = b;
      return b;
    });
    this.undoButton = button("Undo", "Undo the last change (Ctrl+Z)", "undo", () => this.undo());
    this.redoButton = button("Redo", "Redo what Undo took back (Ctrl+Shift+Z or Ctrl+Y)", "redo", () => this.redo());
    const clear = button("Clear", "Remove every arrow, track and brush stroke", "clear", () => this.clear());
    this.convertButton = button("Convert", "Rewrite this text as the pack's JSON in picture pixels, so it can be " +
      "edited here (the node reads both the same way; Undo brings the text back)", "convert", () => this.convert());
    this.convertButton.hidden = true;

    const number = (control, value, step, title, onChange) => {
      const input = el("input", { type: "number", value, step, min: "0", title });
      input.dataset.control = control;
      input.addEventListener("change", onChange);
      input.addEventListener("keydown", (e) => e.stopPropagation()); // typing, not editor or graph keys
      return input;
    };
    this.speedInput = number("speed", "0.1", "0.05", "Speed of the selected arrow (and of new ones): the arrow's " +
      "length times this is its motion in pixels per frame.", () => this.applySpeed());
    this.radiusInput = number("radius", "12", "1", "Brush radius, picture pixels", () => {});
    this.startInput = number("start", "", "1", "Frame where the selected track (and new ones) starts to move " +
      "(empty: frame 0)", () => this.applyTiming());
    this.endInput = number("end", "", "1", "Frame where the selected track (and new ones) reaches its end " +
      "(empty: the last frame)", () => this.applyTiming());
    this.easingSelect = el("select", { title: "How the selected track (and new ones) speeds up and slows down" },
      M.EASINGS.map((name) => el("option", { value: name, textContent: name })));
    this.easingSelect.dataset.control = "easing";
    this.easingSelect.addEventListener("change", () => {
      this.applyTiming();
      this.focusKeys();
    });
    this.easingSelect.addEventListener("keydown", (e) => e.stopPropagation());
    const labelled = (text, input) => el("label", { title: input.title }, [text, input]);
    this.timingLabel = el("label", { title: "Timing of the selected track, in frames of this node's num_frames" },
      ["track", labelled("start", this.startInput), labelled("end", this.endInput), this.easingSelect]);
    this.toolbar = el("div", { className: "imd-toolbar" }, [
      ...tools, el("span", { className: "imd-sep" }), this.undoButton, this.redoButton, clear, this.convertButton,
    ]);
    this.optionsBar = el("div", { className: "imd-toolbar" }, [
      labelled("speed", this.speedInput), labelled("radius", this.radiusInput), el("span", { className: "imd-sep" }),
      this.timingLabel,
    ]);
    this.canvas = el("canvas", { width: FALLBACK_SIZE[0], height: FALLBACK_SIZE[1] });
    this.keys = el("input", { className: "imd-keys", readOnly: true, tabIndex: -1 });
    this.keys.setAttribute("aria-label", "Motion editor keyboard");
    this.stage = el("div", { className: "imd-stage" }, [this.canvas, this.keys]);
    this.frameInput = el("input", { type: "range", min: "0", max: "47", value: "0", step: "1",
      title: "Show where every item is at this frame (0: off)" });
    this.frameInput.dataset.control = "frame";
    this.frameInput.addEventListener("input", () => this.setFrame(Number(this.frameInput.value)));
    this.frameInput.addEventListener("keydown", (e) => e.stopPropagation());
    this.frameLabel = el("span", { textContent: "frame 0" });
    this.scrub = el("div", { className: "imd-scrub", title: this.frameInput.title }, ["positions at", this.frameInput, this.frameLabel]);
    this.status = el("div", { className: "imd-status" });
    this.motion = el("div", { className: "imd-motion" });
    this.element = el("div", { className: "imd-editor" },
      [this.toolbar, this.optionsBar, this.stage, this.scrub, this.status, this.motion]);
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(this.stage);
    this.bindPointer();
    this.element.addEventListener("keydown", (e) => this.onKey(e));
    this.element.addEventListener("keyup", (e) => this.forwardKey(e));
    // The keyboard stays with the editor until a click elsewhere (not when the pointer merely leaves it).
    this.onDocumentPointerDown = (e) => {
      if (!this.element.contains(e.target) && document.activeElement === this.keys) this.keys.blur();
    };
    document.addEventListener("pointerdown", this.onDocumentPointerDown, true);
    this.setTool("arrow");
  }

  focusKeys() {
    this.keys.focus({ preventScroll: true });
  }

  setTool(tool) {
    this.tool = tool;
    for (const [id, b] of Object.entries(this.toolButtons)) b.classList.toggle("active", id === tool);
    this.canvas.dataset.tool = tool;
    if (tool !== "move") this.select(tool === "arrow" && this.selected?.kind === "arrow" ? this.selected : null);
    this.scheduleRedraw();
  }

  select(item) {
    this.selected = item;
    const track = item?.kind === "track" ? this.drawing.tracks[item.index] : null;
    if (item?.kind === "arrow") this.speedInput.value = String(this.drawing.arrows[item.index].speed);
    if (track) {
      this.startInput.value = track.start ?? "";
      this.endInput.value = track.end ?? "";
      this.easingSelect.value = track.easing;
    }
    this.scheduleRedraw();
  }

  /** Picture size in pixels: the loaded picture's, else the drawing's, else 512 x 512. */
  size() {
    if (this.picture) return [this.picture.width, this.picture.height];
    if (this.drawing.width && this.drawing.height) return [this.drawing.width, this.drawing.height];
    return FALLBACK_SIZE;
  }

  layout() {
    const [w, h] = this.size();
    const resized = this.canvas.width !== w || this.canvas.height !== h;
    fitCanvas(this.canvas, this.stage, w, h);
    if (resized) this.invalidate("base", "brush", "items");
    this.redraw();
  }

  // ------------------------------------------------------------------------------------------------ graph
  /** Cheap: called on every node redraw; follows the picture upstream and reloads it when its source changed. */
  syncSource() {
    if (this.element.dataset.nodeId !== String(this.node.id)) this.element.dataset.nodeId = String(this.node.id);
    const traced = upstreamPicture(this.node, "image");
    let source = traced;
    if (!traced?.exact && this.executed && (traced?.url ?? null) === this.executed.tracedAtRun) {
      source = { url: this.executed.url, exact: true, via: [], from: "run" };
    }
    this.source = source;
    this.loader.update(source?.url ?? null);
    const key = this.clipKey();
    if (key !== this.lastClipKey) { // num_frames, strength, mode or a downstream loop changed
      this.lastClipKey = key;
      this.invalidate("items");
      this.updateFrameRange();
      this.scheduleRedraw();
    }
  }

  /** After a run: the picture this node reported (the one it got, whatever made it). */
  setExecutedPicture(url) {
    const traced = upstreamPicture(this.node, "image");
    this.executed = { url, tracedAtRun: traced?.url ?? null };
    this.syncSource();
  }

  pictureChanged() {
    this.invalidate("base");
    this.layout();
    this.updateStatus();
  }

  /**
   * How long and how fast the drawing plays: {mode, numFrames, gain, strength, trackFrames, loop, width, height}.
   * Arrows are velocities, played for the num_frames of the loop node fed by `flow` (EulerianMotion, times its
   * speed) when there is one, else of this node; tracks always span this node's num_frames.
   */
  clip() {
    const own = Number(widgetValue(this.node, "num_frames")) || 48;
    const strength = Number(widgetValue(this.node, "strength") ?? 1);
    const loop = outputNodes(this.node, "DYN_FLOW").find((n) => widgetValue(n, "num_frames") !== undefined) ?? null;
    const loopSpeed = loop && widgetValue(loop, "speed") !== undefined ? Number(widgetValue(loop, "speed")) : 1;
    const [width, height] = this.size();
    return {
      mode: widgetValue(this.node, "mode") ?? "arrows",
      numFrames: loop ? Number(widgetValue(loop, "num_frames")) || own : own,
      gain: strength * loopSpeed, strength, loopSpeed, trackFrames: own, loop, width, height,
    };
  }

  clipKey() {
    const c = this.clip();
    return [c.mode, c.numFrames, c.gain, c.trackFrames, c.width, c.height].join("|");
  }

  /** The slider covers the frames of what the node's mode plays. */
  updateFrameRange() {
    const c = this.clip();
    const last = Math.max(1, (c.mode === "tracks" ? c.trackFrames : c.numFrames) - 1);
    this.frameInput.max = String(last);
    if (this.frame > last) this.setFrame(last);
    this.frameLabel.textContent = `frame ${this.frame} / ${last}`;
    this.endInput.max = String(c.trackFrames - 1);
    this.endInput.placeholder = String(c.trackFrames - 1);
    this.startInput.placeholder = "0";
  }

  setFrame(frame) {
    this.frame = Math.max(0, Math.round(frame));
    this.frameInput.value = String(this.frame);
    this.frameLabel.textContent = `frame ${this.frame} / ${this.frameInput.max}`;
    this.invalidate("positions");
    this.redraw();
  }

  // ------------------------------------------------------------------------------------------------ value
  /** Re-read the widget value (workflow loaded, text edited, graph undo). */
  loadFromValue() {
    const text = this.valueWidget.value ?? "";
    const parsed = M.parseDrawing(text);
    const described = F.describe(text, parsed);
    this.foreign = described && !described.error ? described : null;
    this.error = described?.error ?? null;
    const drawing = parsed.drawing;
    this.drawing = this.foreign || this.error ? M.emptyDrawing() : drawing;
    this.baseline = this.foreign || this.error ? null : M.serializeDrawing(this.drawing);
    this.selected = null;
    this.drag = null;
    this.convertButton.hidden = !this.foreign;
    this.invalidate("brush", "items");
    this.updateFrameRange();
    this.layout();
    this.updateStatus();
  }

  serialize() {
    return M.serializeDrawing(this.drawing);
  }

  setValue(text) {
    this.writing = true;
    try {
      this.valueWidget.value = text;
    } finally {
      this.writing = false;
    }
    changed();
  }

  pushUndo(text) {
    this.undoStack.push(text);
    let chars = this.undoStack.reduce((n, t) => n + t.length, 0);
    while (this.undoStack.length > 1 && (this.undoStack.length > UNDO_DEPTH || chars > UNDO_CHARS)) {
      chars -= this.undoStack.shift().length;
    }
  }

  /**
   * After an edit: when the drawing differs from what was there before, remember the widget text `before` for
   * undo and write the new one. Text the edit did not change (formatting included) is left alone.
   */
  commit(before) {
    const text = this.serialize();
    if (text !== this.baseline) {
      this.pushUndo(before);
      this.redoStack = [];
      this.baseline = text;
      this.foreign = null;
      this.error = null;
      this.convertButton.hidden = true;
      if (text !== this.valueWidget.value) this.setValue(text);
    }
    this.invalidate("items");
    this.redraw();
    this.updateStatus();
  }

  /**
   * Before an edit: the drawing takes the picture's size (coordinates rescaled as the Python parser does). That
   * alone is no edit: the baseline follows, so a click that changes nothing else writes nothing.
   */
  adoptSize() {
    const [w, h] = this.size();
    if (this.drawing.width !== w || this.drawing.height !== h) {
      this.drawing = M.rescale(this.drawing, w, h);
      if (this.baseline !== null) this.baseline = this.serialize();
      this.invalidate("brush", "items");
    }
  }

  /** Put back a widget text exactly (undo / redo), and show it. */
  restore(text) {
    this.setValue(text);
    this.loadFromValue();
  }

  undo() {
    if (!this.undoStack.length) return;
    this.redoStack.push(this.valueWidget.value);
    this.restore(this.undoStack.pop());
  }

  redo() {
    if (!this.redoStack.length) return;
    this.pushUndo(this.valueWidget.value);
    this.restore(this.redoStack.pop());
  }

  clear() {
    const before = this.valueWidget.value;
    const [w, h] = this.size();
    this.drawing = M.emptyDrawing(w, h);
    this.select(null);
    this.invalidate("brush", "items");
    this.commit(before);
  }

  /** Another format's text becomes the pack's JSON in pixels (read as the node reads it). */
  convert() {
    if (!this.foreign) return;
    const before = this.valueWidget.value;
    const [w, h] = this.size();
    try {
      this.drawing = F.convert(before, w, h);
    } catch (e) {
      this.updateStatus(`could not convert: ${e.message}`);
      return;
    }
    this.invalidate("brush", "items");
    this.commit(before);
  }

  deleteSelected() {
    if (!this.selected || this.foreign || this.error) return;
    const before = this.valueWidget.value;
    M.removeHit(this.drawing, this.selected);
    this.select(null);
    this.commit(before);
  }

  applySpeed() {
    const speed = Number(this.speedInput.value);
    if (!isFinite(speed) || speed < 0) return;
    if (this.selected?.kind === "arrow" && this.baseline !== null) {
      const before = this.valueWidget.value;
      this.drawing.arrows[this.selected.index].speed = speed;
      this.commit(before);
    }
  }

  /** The timing boxes' values {start, end, easing} (null = the default), or {error}. */
  timing() {
    const read = (input) => (input.value === "" ? null : Number(input.value));
    const start = read(this.startInput);
    const end = read(this.endInput);
    const last = this.clip().trackFrames - 1;
    if ((start !== null && !(start >= 0)) || (end !== null && !(end >= 0))) return { error: "frames are numbers >= 0" };
    if (end !== null && end > last) return { error: `the last frame is ${last} (num_frames ${last + 1})` };
    if (!((end ?? last) > (start ?? 0))) return { error: "the end must come after the start" };
    return { start, end, easing: this.easingSelect.value };
  }

  applyTiming() {
    const timing = this.timing();
    if (timing.error) {
      this.updateStatus(`track timing: ${timing.error}`);
      return;
    }
    const track = this.selected?.kind === "track" ? this.drawing.tracks[this.selected.index] : null;
    if (track && this.baseline !== null) {
      const before = this.valueWidget.value;
      Object.assign(track, timing);
      this.commit(before);
    }
  }

  // ------------------------------------------------------------------------------------------------ input
  /** Picture pixel coordinates of a pointer event, rounded to the drawing's precision. */
  toPicture(e) {
    const [w, h] = this.size();
    const [x, y] = pictureXY(this.canvas, e, w, h);
    return [M.round(x), M.round(y)];
  }

  clamp(p) {
    const [w, h] = this.size();
    return [M.round(Math.min(Math.max(p[0], 0), w - 1)), M.round(Math.min(Math.max(p[1], 0), h - 1))];
  }

  /** Picture pixels per on-screen pixel (includes graph zoom). */
  screenScale() {
    const rect = this.canvas.getBoundingClientRect();
    return rect.width > 0 ? this.size()[0] / rect.width : 1;
  }

  bindPointer() {
    const c = this.canvas;
    c.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    c.addEventListener("pointermove", (e) => this.onPointerMove(e));
    c.addEventListener("pointerup", (e) => this.onPointerUp(e));
    c.addEventListener("pointercancel", () => this.cancelDrag());
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("pointerleave", () => {
      if (this.drag) return; // captured: the drag goes on
      this.hover = null;
      this.scheduleRedraw();
    });
    passGraphNavigation(this.element);
  }

  onPointerDown(e) {
    if (panGraph(e, "down")) return;
    if (e.button !== 0) return;
    e.preventDefault();
    e.stopPropagation();
    this.focusKeys();
    deselect(this.node);
    if (this.foreign || this.error) {
      this.updateStatus();
      return;
    }
    this.canvas.setPointerCapture?.(e.pointerId);
    const before = this.valueWidget.value;
    this.adoptSize();
    const p = this.clamp(this.toPicture(e));
    const hit = M.hitTest(this.drawing, p, HIT_PX * this.screenScale());
    const onHandle = hit && hit.part !== "body";
    if (this.tool === "move" || ((this.tool === "arrow" || this.tool === "track") && onHandle)) {
      this.select(hit ? { kind: hit.kind, index: hit.index } : null);
      this.drag = hit ? { type: "move", hit, origin: p, base: M.clone(this.drawing), before, moved: false } : null;
    } else if (this.tool === "arrow") {
      this.drag = { type: "arrow", start: p, end: p, before };
    } else if (this.tool === "track") {
      this.drag = { type: "track", points: [p], before };
    } else {
      const radius = Math.max(1, Number(this.radiusInput.value) || 12);
      this.drag = { type: "stroke", stroke: { points: [p], radius: M.round(radius), erase: this.tool === "erase" }, before };
      this.paintTip();
    }
    this.redraw();
    this.updateStatus();
  }

  onPointerMove(e) {
    if (panGraph(e, "move", !!this.drag)) return;
    const p = this.clamp(this.toPicture(e));
    this.hover = p;
    const d = this.drag;
    if (d) {
      e.stopPropagation();
      if (d.type === "arrow") d.end = p;
      else if (d.type === "track") {
        if (M.distance(p, d.points[d.points.length - 1]) >= 2 * this.screenScale()) d.points.push(p);
        else d.points[d.points.length - 1] = d.points.length > 1 ? p : d.points[0];
      } else if (d.type === "stroke") {
        if (M.distance(p, d.stroke.points[d.stroke.points.length - 1]) >= 1) {
          d.stroke.points.push(p);
          this.paintTip();
        }
      } else if (d.type === "move") {
        if (!d.moved) {
          d.moved = true;
          this.invalidate("items"); // the moved item leaves the cached layer while it is dragged
        }
        M.moveHit(this.drawing, d.base, d.hit, p[0] - d.origin[0], p[1] - d.origin[1], (q) => this.clamp(q));
        this.version++;
      }
    }
    this.scheduleRedraw();
  }

  onPointerUp(e) {
    if (panGraph(e, "up")) return;
    const d = this.drag;
    if (!d) return;
    e.stopPropagation();
    this.canvas.releasePointerCapture?.(e.pointerId);
    this.drag = null;
    const p = this.clamp(this.toPicture(e));
    if (d.type === "arrow") {
      d.end = p;
      if (M.distance(d.start, d.end) >= 1) {
        const speed = Number(this.speedInput.value);
        this.drawing.arrows.push({ start: d.start, end: d.end, speed: isFinite(speed) && speed >= 0 ? speed : 1.0 });
        this.select({ kind: "arrow", index: this.drawing.arrows.length - 1 });
      } else {
        const hit = M.hitTest(this.drawing, p, HIT_PX * this.screenScale());
        this.select(hit ? { kind: hit.kind, index: hit.index } : null);
      }
    } else if (d.type === "track") {
      const pts = d.points;
      if (M.distance(pts[pts.length - 1], p) > 0) pts.push(p);
      const simplified = M.simplify(pts, 4 * this.screenScale());
      if (simplified.length >= 2) {
        const timing = this.timing();
        this.drawing.tracks.push(M.newTrack(simplified, timing.error ? {} : timing));
        this.select({ kind: "track", index: this.drawing.tracks.length - 1 });
      }
    } else if (d.type === "stroke") {
      this.drawing.strokes.push(d.stroke);
    }
    this.commit(d.before);
  }

  cancelDrag() {
    if (!this.drag) return false;
    const { before } = this.drag;
    this.drag = null;
    this.drawing = M.parseDrawing(before).drawing ?? this.drawing;
    this.select(null);
    this.invalidate("brush", "items");
    this.redraw();
    this.updateStatus();
    return true;
  }

  /**
   * Keys reach here while the editor has the keyboard (a hidden input holds focus from a click in the editor until
   * a click elsewhere, so ComfyUI's shortcuts and graph undo skip them). The editor's own keys are always consumed,
   * even when there is nothing to delete or undo; the rest are handed to ComfyUI as if nothing had focus.
   */
  onKey(e) {
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key;
    let ours = true;
    if ((key === "Delete" || key === "Backspace") && !ctrl && !e.altKey) this.deleteSelected();
    else if (ctrl && !e.altKey && e.code === "KeyZ" && !e.shiftKey) this.undo();
    else if (ctrl && !e.altKey && ((e.code === "KeyZ" && e.shiftKey) || (e.code === "KeyY" && !e.shiftKey))) this.redo();
    else if (key === "Escape") {
      if (!this.cancelDrag()) this.select(null);
    } else ours = false;
    if (ours) {
      e.preventDefault();
      e.stopPropagation();
      return;
    }
    this.forwardKey(e);
  }

  /** Whether a key event is one of the editor's own (those are consumed on keydown). */
  isOwnKey(e) {
    const ctrl = e.ctrlKey || e.metaKey;
    if ((e.key === "Delete" || e.key === "Backspace") && !ctrl && !e.altKey) return true;
    return e.key === "Escape" || (ctrl && !e.altKey && (e.code === "KeyZ" || e.code === "KeyY"));
  }

  /**
   * Hand a key that is not the editor's to ComfyUI as if nothing had focus (it skips keys aimed at a focused text
   * input); keyups too, so a held key (Space pans the graph) is released. Ctrl+S, Ctrl+Enter... reach it as they are.
   */
  forwardKey(e) {
    if (e.target !== this.keys || !reservedByTextInput(e) || (e.type === "keyup" && this.isOwnKey(e))) return;
    e.stopPropagation();
    this.keys.blur();
    document.body.dispatchEvent(new KeyboardEvent(e.type, {
      key: e.key, code: e.code, ctrlKey: e.ctrlKey, shiftKey: e.shiftKey, altKey: e.altKey, metaKey: e.metaKey,
      repeat: e.repeat, bubbles: true, cancelable: true,
    }));
    this.focusKeys();
  }

  // ------------------------------------------------------------------------------------------------ drawing
  invalidate(...parts) {
    for (const p of parts) this.dirty[p] = true;
    if (parts.includes("items") || parts.includes("brush")) this.version++;
  }

  /** Redraw on the next animation frame (mouse moves come faster than frames). */
  scheduleRedraw() {
    if (this.frameRequest) return;
    this.frameRequest = requestAnimationFrame(() => {
      this.frameRequest = 0;
      this.redraw();
      this.updateStatus();
    });
  }

  /** The drawing in the picture's pixels (a rescaled copy, view only, when it was drawn at another size). */
  view() {
    const [w, h] = this.size();
    const d = this.drawing;
    if (!(d.width && d.height && (d.width !== w || d.height !== h))) return d;
    if (this.viewCache?.source !== d || this.viewCache.w !== w || this.viewCache.h !== h) {
      this.viewCache = { source: d, w, h, drawing: M.rescale(d, w, h) };
    }
    return this.viewCache.drawing;
  }

  /** Line widths and handles keep their on-screen size at graph zoom 1 (layout pixels, not zoomed ones). */
  lineScale() {
    return this.canvas.clientWidth > 0 ? this.canvas.width / this.canvas.clientWidth : 1;
  }

  /** The item being dragged (drawn live on top of the cached layer), or null. */
  liveItem() {
    return this.drag?.type === "move" && this.drag.moved ? { kind: this.drag.hit.kind, index: this.drag.hit.index } : null;
  }

  renderBase(w, h) {
    const base = (this.layers.base = layer(w, h));
    const ctx = base.getContext("2d");
    if (this.picture) {
      ctx.fillStyle = "#808080";
      ctx.fillRect(0, 0, w, h);
      ctx.drawImage(this.picture.opaque ?? this.picture.img, 0, 0, w, h);
      if (this.picture.tint && this.maskFromPicture()) ctx.drawImage(this.picture.tint, 0, 0, w, h);
    } else {
      ctx.fillStyle = "#555";
      ctx.fillRect(0, 0, w, h);
    }
  }

  renderBrush(w, h) {
    const brush = (this.layers.brush = layer(w, h));
    const ctx = brush.getContext("2d");
    ctx.translate(0.5, 0.5);
    D.paintStrokes(ctx, this.view().strokes);
  }

  /** Paint the newest piece of the stroke being drawn straight onto the cached brush layer. */
  paintTip() {
    const ctx = this.layers.brush?.getContext("2d");
    if (!ctx || this.dirty.brush) return; // rebuilt (with the stroke) on the next redraw
    ctx.setTransform(1, 0, 0, 1, 0.5, 0.5);
    D.paintStrokeTip(ctx, this.drag.stroke);
  }

  /** Labels and the motion summary of the drawing as shown. */
  summary() {
    return M.motionSummary(this.view(), this.clip());
  }

  arrowLabels(d, summary) {
    if (d.arrows.length > D.LABEL_LIMIT) return null;
    return summary.arrows.map((m) => `${m.perFrame.toFixed(1)} px/f · ${px(m.total)}`);
  }

  trackLabels(d) {
    if (d.tracks.length > D.LABEL_LIMIT) return null;
    return d.tracks.map((t) => (M.hasTiming(t) ? `f ${t.start ?? 0}–${t.end ?? "end"}${t.easing === "linear" ? "" : ` ${t.easing}`}` : ""));
  }

  /**
   * [[from, at], ...] at this.frame for the items the node's mode plays (arrows or tracks) that `which` (a
   * predicate on kind and index) accepts.
   */
  positions(d, clip, which) {
    const out = [];
    if (this.frame <= 0) return out;
    if (clip.mode !== "tracks") {
      d.arrows.forEach((a, i) => { if (which("arrow", i)) out.push([a.start, M.arrowPositionAt(a, this.frame, clip.gain)]); });
      return out;
    }
    d.tracks.forEach((t, i) => {
      if (!which("track", i)) return;
      const at = M.trackPositionAt(t, this.frame, clip.trackFrames);
      const s = t.points[0];
      out.push([s, [s[0] + clip.strength * (at[0] - s[0]), s[1] + clip.strength * (at[1] - s[1])]]);
    });
    return out;
  }

  /** Items not being edited, or their positions at this.frame (`positions`): a layer each. */
  renderItems(w, h, k, positions = false) {
    const canvas = layer(w, h);
    this.layers[positions ? "positions" : "items"] = canvas;
    const ctx = canvas.getContext("2d");
    ctx.translate(0.5, 0.5); // pixel centres
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    const d = this.view();
    const dense = D.isDense(d);
    const live = this.liveItem();
    const keep = (kind, i) => !(live && live.kind === kind && live.index === i);
    if (positions) {
      D.drawPositions(ctx, this.positions(d, this.clip(), keep), k, dense);
      return;
    }
    const summary = this.summary();
    const labels = dense ? null : this.arrowLabels(d, summary)?.filter((_, i) => keep("arrow", i)) ?? null;
    const warn = summary.arrows.map((m) => m.tooLarge).filter((_, i) => keep("arrow", i));
    const trackLabels = dense ? null : this.trackLabels(d)?.filter((_, i) => keep("track", i)) ?? null;
    D.drawTracks(ctx, d.tracks.filter((_, i) => keep("track", i)), k, D.COLORS.track, false, trackLabels, dense);
    D.drawArrows(ctx, d.arrows.filter((_, i) => keep("arrow", i)), k, D.COLORS.arrow, labels, warn, dense);
  }

  /**
   * Compose the cached layers and draw what changes with the pointer on top. `full` redraws every layer first
   * (what every mouse move cost before the layers were cached; the browser test measures both).
   */
  redraw(full = false) {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const [w, h] = this.size();
    const k = this.lineScale();
    const key = `${w}x${h}@${k}`;
    if (full || key !== this.layers.key) this.invalidate("base", "brush", "items");
    const clip = this.clipKey(); // the labels show the clip's length
    if (clip !== this.layers.clip) this.invalidate("items");
    this.layers.key = key;
    this.layers.clip = clip;
    if (this.dirty.base) this.renderBase(w, h);
    if (this.dirty.brush) this.renderBrush(w, h);
    if (this.dirty.items) this.renderItems(w, h, k);
    if (this.dirty.items || this.dirty.positions) this.renderItems(w, h, k, true);
    this.dirty = { base: false, brush: false, items: false, positions: false };
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.drawImage(this.layers.base, 0, 0);
    ctx.globalAlpha = D.BRUSH_ALPHA;
    ctx.drawImage(this.layers.brush, 0, 0);
    ctx.globalAlpha = 1;
    ctx.drawImage(this.layers.items, 0, 0);
    if (this.frame > 0) ctx.drawImage(this.layers.positions, 0, 0);
    this.drawOverlay(ctx, k);
  }

  drawOverlay(ctx, k) {
    ctx.translate(0.5, 0.5);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    const d = this.view();
    const sel = this.selected;
    const live = this.liveItem();
    for (const item of [live, sel]) {
      if (!item || (item === live && sel && sel.kind === live.kind && sel.index === live.index)) continue;
      const selected = sel && sel.kind === item.kind && sel.index === item.index;
      if (item.kind === "arrow" && d.arrows[item.index]) {
        const a = d.arrows[item.index];
        const m = M.motionSummary({ arrows: [a], tracks: [] }, this.clip()).arrows[0];
        D.drawArrows(ctx, [a], k, selected ? D.COLORS.selected : D.COLORS.arrow,
          [`${m.perFrame.toFixed(1)} px/f · ${px(m.total)}`], [m.tooLarge]);
      } else if (item.kind === "track" && d.tracks[item.index]) {
        D.drawTracks(ctx, [d.tracks[item.index]], k, selected ? D.COLORS.selected : D.COLORS.track, selected,
          this.trackLabels({ tracks: [d.tracks[item.index]] }));
      }
    }
    if (live) D.drawPositions(ctx, this.positions(d, this.clip(), (kind, i) => kind === live.kind && i === live.index), k);
    const g = this.drag;
    if (g?.type === "arrow" && M.distance(g.start, g.end) > 0) {
      D.drawArrows(ctx, [{ start: g.start, end: g.end, speed: Number(this.speedInput.value) }], k, D.COLORS.selected);
    } else if (g?.type === "track") D.drawTracks(ctx, [{ points: g.points }], k, D.COLORS.selected);
    if (this.hover && (this.tool === "brush" || this.tool === "erase")) {
      D.drawRing(ctx, this.hover, g?.type === "stroke" ? g.stroke.radius : Number(this.radiusInput.value) || 12, k);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
  }

  /** True when the node's mask input comes from the Load Image node that gives the picture (its alpha). */
  maskFromPicture() {
    const image = inputNode(this.node, "image");
    return !!image && image === inputNode(this.node, "mask");
  }

  // ------------------------------------------------------------------------------------------------ status
  pictureText() {
    const [w, h] = this.size();
    const s = this.source;
    if (!this.picture) {
      if (this.loader.error) return `${w}x${h}, ${this.loader.error}`;
      return `${w}x${h}, no picture yet (connect a Load Image, or run once)`;
    }
    if (s?.from === "run") return `${w}x${h}, the picture of the last run`;
    if (s?.via?.length) return `${w}x${h} from Load Image through ${s.via.join(", ")} (the node rescales if its size differs)`;
    return `${w}x${h}`;
  }

  /** The line under the drawing: what an item does over the clip, in pixels, and whether that is plausible. */
  motionText() {
    const d = this.view();
    const c = this.clip();
    const frames = c.loop ? `${c.numFrames} frames (${c.loop.title ?? c.loop.type})` : `${c.numFrames} frames`;
    const gain = [c.strength !== 1 ? `strength ${c.strength}` : "", c.loopSpeed !== 1 ? `loop speed ${c.loopSpeed}` : ""]
      .filter(Boolean).join(" × ");
    const limit = `the picture's ${Math.min(c.width, c.height)} px`;
    // One item's figures when one is selected (cheap while it is dragged), the whole drawing's otherwise.
    const one = (kind, item) => M.motionSummary(kind === "arrow" ? { arrows: [item], tracks: [] } : { arrows: [], tracks: [item] }, c);
    const describeArrow = (i) => {
      const a = d.arrows[i];
      const m = one("arrow", a).arrows[0];
      const text = `arrow ${i + 1}: ${px(M.distance(a.start, a.end))} × speed ${a.speed}${gain ? ` × ${gain}` : ""} = ` +
        `${m.perFrame.toFixed(1)} px/frame, ${px(m.total)} over ${frames}`;
      return { text: m.tooLarge ? `${text}: more than ${limit}, lower the speed` : text, warning: m.tooLarge };
    };
    const describeTrack = (i) => {
      const t = d.tracks[i];
      const m = one("track", t).tracks[0];
      const [s, e] = m.frames;
      const timing = `frames ${s}–${e}${t.easing === "linear" ? "" : `, ${t.easing}`}`;
      let text = `track ${i + 1}: ${px(m.total)} along its path${c.strength !== 1 ? ` (× strength ${c.strength})` : ""}, ${timing}`;
      const late = e > c.trackFrames - 1;
      if (late) text += `: ends after the last frame ${c.trackFrames - 1}`;
      return { text: m.tooLarge ? `${text}: more than ${limit}` : text, warning: m.tooLarge || late };
    };
    const describeAll = () => {
      const summary = this.summary();
      const l = summary.largest;
      if (!l) return { text: "", warning: false };
      const tooLarge = summary.arrows.filter((m) => m.tooLarge).length + summary.tracks.filter((m) => m.tooLarge).length;
      if (tooLarge) {
        return { text: `${plural(tooLarge, "item")} move farther than ${limit} over the clip (largest: ${l.kind} ` +
          `${l.index + 1}, ${px(l.total)}); lower the speed`, warning: true };
      }
      return { text: `largest motion: ${l.kind} ${l.index + 1}, ${px(l.total)}${l.kind === "arrow" ? ` over ${frames}` : ""}`, warning: false };
    };
    const notes = [];
    const unused = (n, word, mode) => `mode "${mode}": ${n === 1 ? `the ${word} is` : `the ${n} ${word}s are`} not used`;
    if (c.mode === "arrows" && d.arrows.length && d.tracks.length) notes.push(unused(d.tracks.length, "track", "arrows"));
    if (c.mode === "tracks" && d.arrows.length && d.tracks.length) notes.push(unused(d.arrows.length, "arrow", "tracks"));
    const sel = this.selected;
    let main;
    if (sel?.kind === "arrow" && d.arrows[sel.index]) main = describeArrow(sel.index);
    else if (sel?.kind === "track" && d.tracks[sel.index]) main = describeTrack(sel.index);
    else main = describeAll();
    return { text: [main.text, ...notes].filter(Boolean).join(" · "), warning: main.warning || notes.length > 0 };
  }

  updateStatus(message) {
    const d = this.drawing;
    const parts = [];
    if (this.hover) parts.push(`x ${this.hover[0].toFixed(1)}, y ${this.hover[1].toFixed(1)}`);
    parts.push(`${plural(d.arrows.length, "arrow")}, ${plural(d.tracks.length, "track")}, ${plural(d.strokes.length, "stroke")}`);
    parts.push(this.pictureText());
    this.status.textContent = parts.join(" · ");
    this.status.title = this.status.textContent;
    // Not `disabled`: a click on a disabled button would take the keyboard from the editor.
    for (const [b, off] of [[this.undoButton, !this.undoStack.length], [this.redoButton, !this.redoStack.length]]) {
      b.classList.toggle("inactive", off);
      b.setAttribute("aria-disabled", String(off));
    }
    this.timingLabel.classList.toggle("disabled", this.selected?.kind !== "track");
    // The motion line costs a pass over the drawing: only when something it shows changed, not on every hover.
    const key = [this.version, this.selected?.kind, this.selected?.index, this.clipKey(), message, this.foreign?.name,
      this.error].join("|");
    if (key === this.motionKey) return;
    this.motionKey = key;
    const m = this.motion;
    let cls = "";
    if (message) {
      cls = "error";
      m.textContent = message;
    } else if (this.foreign) {
      cls = "info";
      m.textContent = `This is ${this.foreign.name}. The node reads it as it is. To edit it here, press Convert: it ` +
        `becomes arrows and tracks in picture pixels, which the node reads the same way` +
        `${this.foreign.dropped ? ` (${this.foreign.dropped} are left out)` : ""}; Undo brings the text back.`;
    } else if (this.error) {
      cls = "error";
      m.textContent = `The text above cannot be read: ${this.error}. Fix it there, or press Clear to start a drawing ` +
        "(Undo brings the text back).";
    } else {
      const { text, warning } = this.motionText();
      cls = warning ? "warning" : "";
      m.textContent = text;
    }
    m.className = `imd-motion ${cls}`.trim();
    m.title = m.textContent;
  }

  remove() {
    this.resizeObserver?.disconnect();
    document.removeEventListener("pointerdown", this.onDocumentPointerDown, true);
  }
}

function attachEditor(node) {
  const valueWidget = node.widgets?.find((w) => w.name === VALUE_WIDGET);
  if (!valueWidget || node.imdEditor) return;
  const editor = new MotionEditor(node, valueWidget);
  node.imdEditor = editor;
  const widget = node.addDOMWidget(EDITOR_WIDGET, "imagedynamics.motion_editor", editor.element, {
    serialize: false, // the drawing lives in the "trajectories" widget
    hideOnZoom: false,
    selectOn: [], // a click in the drawing does not select the node
    getMinHeight: () => EDITOR_MIN_HEIGHT,
    getValue: () => undefined,
    setValue: () => {},
  });
  widget.serialize = false;
  widget.serializeValue = () => undefined;
  widget.onRemove = () => editor.remove();
  editor.widget = widget;
  // The JSON text stays visible (and editable) but small; the editor takes the room.
  valueWidget.options = Object.assign(valueWidget.options ?? {}, { getMinHeight: () => 40, getMaxHeight: () => 90 });
  const callback = valueWidget.callback;
  valueWidget.callback = function (...args) {
    const r = callback?.apply(this, args);
    if (!editor.writing) editor.loadFromValue();
    return r;
  };
  editor.loadFromValue();
}

/** Grow the node to at least its minimum size (widgets plus the editor) and NODE_MIN_WIDTH. */
function fitNode(node) {
  const min = node.computeSize();
  const w = Math.max(node.size[0], min[0], NODE_MIN_WIDTH);
  const h = Math.max(node.size[1], min[1]);
  if (w !== node.size[0] || h !== node.size[1]) node.setSize([w, h]);
}

app.registerExtension({
  name: "ImageDynamics.MotionEditor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_TYPE) return;
    const proto = nodeType.prototype;
    const onNodeCreated = proto.onNodeCreated;
    proto.onNodeCreated = function (...args) {
      const r = onNodeCreated?.apply(this, args);
      attachEditor(this);
      fitNode(this);
      // The node reports its picture only for the editor: no image preview of it under the drawing (ComfyUI adds
      // one from onDrawBackground, which would grow the node after every run).
      this.onDrawBackground = function () {};
      return r;
    };
    const onConfigure = proto.onConfigure;
    proto.onConfigure = function (...args) {
      const r = onConfigure?.apply(this, args);
      this.imdEditor?.loadFromValue(); // widget values are set by now: restore the drawing exactly
      fitNode(this);
      return r;
    };
    const onDrawForeground = proto.onDrawForeground;
    proto.onDrawForeground = function (...args) {
      const r = onDrawForeground?.apply(this, args);
      this.imdEditor?.syncSource();
      return r;
    };
    const onExecuted = proto.onExecuted;
    proto.onExecuted = function (output, ...rest) {
      const r = onExecuted?.call(this, output, ...rest);
      const img = output?.images?.[0]; // the picture the node got, whatever made it
      if (img && this.imdEditor) this.imdEditor.setExecutedPicture(viewUrl(img.filename, img.type, img.subfolder));
      return r;
    };
  },
});
