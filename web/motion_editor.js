// ImageDynamics motion editor: draw arrows, trajectories and a motion brush on the picture, inside the
// SparseTrajectoryToFlow node. What is drawn is kept in the node's "trajectories" widget as the pack's canonical
// JSON (picture pixels), so saved workflows round-trip and API users can write the same text by hand.
//
// Plain ES module, no build step. Mouse: left button draws with the current tool, middle button pans the graph,
// the wheel zooms the graph. Keys act only while the pointer is over the editor: Delete/Backspace removes the
// selected item, Ctrl+Z / Ctrl+Shift+Z (Ctrl+Y) undo / redo, Escape cancels; every other key goes to ComfyUI.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import * as M from "./motion_editor_model.js";

const NODE_TYPE = "SparseTrajectoryToFlow";
const VALUE_WIDGET = "trajectories";
const EDITOR_WIDGET = "motion_editor";
const FALLBACK_SIZE = [512, 512];
const HANDLE_PX = 5; // handle radius on screen, at graph zoom 1
const HIT_PX = 9; // pick tolerance on screen, whatever the zoom
const COLORS = { arrow: "#ffcc33", track: "#33d6ff", selected: "#ff5577", brush: "rgba(80, 255, 160, 0.38)",
  mask: "rgba(90, 170, 255, 0.22)" };
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
.imd-toolbar label { display: flex; gap: 2px; align-items: center; }
.imd-toolbar input[type=number] { width: 38px; font: 11px sans-serif; background: var(--comfy-input-bg, #222);
  color: inherit; border: 1px solid var(--border-color, #555); border-radius: 4px; }
.imd-stage { position: relative; flex: 1 1 auto; min-height: 60px; overflow: hidden; background: #1b1b1b;
  border-radius: 4px; }
.imd-stage canvas { position: absolute; touch-action: none; cursor: crosshair; }
.imd-stage canvas[data-tool=move] { cursor: default; }
.imd-status { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; opacity: 0.85; min-height: 14px; }
.imd-status.error { color: #ff8080; opacity: 1; }
.imd-keys { position: absolute; width: 1px; height: 1px; opacity: 0; pointer-events: none; border: 0; padding: 0; }
`;

function injectStyle() {
  if (document.getElementById("imagedynamics-editor-style")) return;
  const style = document.createElement("style");
  style.id = "imagedynamics-editor-style";
  style.textContent = STYLE;
  document.head.append(style);
}

function el(tag, props = {}, children = []) {
  const e = Object.assign(document.createElement(tag), props);
  for (const c of children) e.append(c);
  return e;
}

const CTRL_RESERVED = new Set(["KeyA", "KeyC", "KeyV", "KeyX", "KeyZ", "KeyY", "KeyP", "Backspace", "Delete", "Home", "End"]);

/** Keys ComfyUI ignores when a text input has focus (plain keys, Shift+key, Ctrl+A/C/V/X/Z/Y...). */
function reservedByTextInput(e) {
  if (["Control", "Shift", "Alt", "Meta"].includes(e.key)) return false;
  if (!e.ctrlKey && !e.metaKey && !e.altKey) return true;
  return (e.ctrlKey || e.metaKey) && !e.altKey && CTRL_RESERVED.has(e.code);
}

function viewUrl(filename, type = "input", subfolder = "") {
  const params = new URLSearchParams({ filename, type, subfolder });
  return api.apiURL(`/view?${params}`);
}

/** "sub/name.png [output]" (a LoadImage value) -> /view URL. */
function urlFromImageValue(value) {
  if (typeof value !== "string" || !value) return null;
  let type = "input";
  let name = value.trim();
  const m = name.match(/^(.*) \[(input|output|temp)\]$/);
  if (m) [, name, type] = m;
  const slash = name.lastIndexOf("/");
  const subfolder = slash >= 0 ? name.slice(0, slash) : "";
  return viewUrl(slash >= 0 ? name.slice(slash + 1) : name, type, subfolder);
}

/**
 * The picture's colours without its alpha, as ComfyUI's IMAGE sees them (Load Image drops alpha into a MASK).
 * A 2D canvas would lose the colour of fully transparent pixels (premultiplied alpha); WebGL can upload the
 * image unpremultiplied. Returns a canvas, or null when WebGL is unavailable.
 */
function opaqueCopy(img) {
  const w = img.naturalWidth;
  const h = img.naturalHeight;
  const out = document.createElement("canvas");
  out.width = w;
  out.height = h;
  const gl = out.getContext("webgl", { premultipliedAlpha: false, alpha: false, preserveDrawingBuffer: true });
  if (!gl) return null;
  const shader = (type, src) => {
    const sh = gl.createShader(type);
    gl.shaderSource(sh, src);
    gl.compileShader(sh);
    return sh;
  };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER,
    "attribute vec2 p; varying vec2 uv; void main() { uv = vec2(p.x + 1.0, 1.0 - p.y) * 0.5; gl_Position = vec4(p, 0, 1); }"));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER,
    "precision mediump float; uniform sampler2D t; varying vec2 uv; void main() { gl_FragColor = vec4(texture2D(t, uv).rgb, 1.0); }"));
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) return null;
  gl.useProgram(prog);
  gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  const loc = gl.getAttribLocation(prog, "p");
  gl.enableVertexAttribArray(loc);
  gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
  gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
  gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
  gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
  for (const [k, v] of [[gl.TEXTURE_MIN_FILTER, gl.NEAREST], [gl.TEXTURE_MAG_FILTER, gl.NEAREST],
    [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) gl.texParameteri(gl.TEXTURE_2D, k, v);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, img);
  gl.viewport(0, 0, w, h);
  gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  return gl.getError() === gl.NO_ERROR ? out : null;
}

/** A layer tinting where the picture is transparent (Load Image's MASK: the region that may move), or null. */
function transparencyTint(img) {
  const w = img.naturalWidth;
  const h = img.naturalHeight;
  const layer = document.createElement("canvas");
  layer.width = w;
  layer.height = h;
  const ctx = layer.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(img, 0, 0);
  const alpha = ctx.getImageData(0, 0, w, h).data;
  let transparent = false;
  for (let i = 3; i < alpha.length; i += 4) if (alpha[i] < 255) { transparent = true; break; }
  if (!transparent) return null;
  ctx.globalCompositeOperation = "source-out"; // colour only where the picture is not opaque
  ctx.fillStyle = COLORS.mask;
  ctx.fillRect(0, 0, w, h);
  return layer;
}

function changed() {
  app.graph?.setDirtyCanvas?.(true, true);
  try {
    app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.();
  } catch (e) {
    // the change tracker is optional
  }
}

export class MotionEditor {
  constructor(node, valueWidget) {
    this.node = node;
    this.valueWidget = valueWidget;
    this.drawing = M.emptyDrawing();
    this.error = null;
    this.tool = "arrow";
    this.selected = null; // {kind, index}
    this.drag = null;
    this.undoStack = [];
    this.redoStack = [];
    this.hover = null; // picture point under the pointer, or null
    this.picture = null; // {img, url, width, height}
    this.pictureUrl = null;
    this.writing = false;
    this.build();
  }

  // ------------------------------------------------------------------------------------------------ DOM
  build() {
    injectStyle();
    this.toolButtons = {};
    const tools = TOOLS.map(([id, label, tip]) => {
      const b = el("button", { textContent: label, title: tip, type: "button" });
      b.dataset.tool = id;
      b.addEventListener("click", () => this.setTool(id));
      this.toolButtons[id] = b;
      return b;
    });
    this.speedInput = el("input", { type: "number", value: "0.1", step: "0.05", min: "0", title:
      "Speed of the selected arrow (and of new ones): the arrow's length times this is its motion in pixels per frame." });
    this.speedInput.dataset.control = "speed";
    this.speedInput.addEventListener("change", () => this.applySpeed());
    this.radiusInput = el("input", { type: "number", value: "12", step: "1", min: "1", title: "Brush radius, picture pixels" });
    this.radiusInput.dataset.control = "radius";
    for (const input of [this.speedInput, this.radiusInput]) {
      input.addEventListener("keydown", (e) => e.stopPropagation());
    }
    const undo = el("button", { textContent: "Undo", title: "Undo (Ctrl+Z over the editor)", type: "button" });
    undo.dataset.action = "undo";
    undo.addEventListener("click", () => this.undo());
    const clear = el("button", { textContent: "Clear", title: "Remove every arrow, track and brush stroke", type: "button" });
    clear.dataset.action = "clear";
    clear.addEventListener("click", () => this.clear());
    this.toolbar = el("div", { className: "imd-toolbar" }, [
      ...tools,
      el("label", { title: this.speedInput.title }, ["speed", this.speedInput]),
      el("label", { title: this.radiusInput.title }, ["radius", this.radiusInput]),
      undo, clear,
    ]);
    this.canvas = el("canvas", { width: FALLBACK_SIZE[0], height: FALLBACK_SIZE[1] });
    this.keys = el("input", { className: "imd-keys", readOnly: true, tabIndex: -1 });
    this.keys.setAttribute("aria-label", "Motion editor keyboard");
    this.stage = el("div", { className: "imd-stage" }, [this.canvas, this.keys]);
    this.status = el("div", { className: "imd-status" });
    this.element = el("div", { className: "imd-editor" }, [this.toolbar, this.stage, this.status]);
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(this.stage);
    this.bindPointer();
    this.keys.addEventListener("keydown", (e) => this.onKey(e));
    this.setTool("arrow");
  }

  setTool(tool) {
    this.tool = tool;
    for (const [id, b] of Object.entries(this.toolButtons)) b.classList.toggle("active", id === tool);
    this.canvas.dataset.tool = tool;
    if (tool !== "move") this.selected = tool === "arrow" && this.selected?.kind === "arrow" ? this.selected : null;
    this.redraw();
  }

  /** Picture size in pixels: the loaded picture's, else the drawing's, else 512 x 512. */
  size() {
    if (this.picture) return [this.picture.width, this.picture.height];
    if (this.drawing.width && this.drawing.height) return [this.drawing.width, this.drawing.height];
    return FALLBACK_SIZE;
  }

  layout() {
    const [w, h] = this.size();
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    const sw = this.stage.clientWidth;
    const sh = this.stage.clientHeight;
    if (sw > 0 && sh > 0) {
      const k = Math.min(sw / w, sh / h);
      const cw = Math.max(1, Math.floor(w * k));
      const ch = Math.max(1, Math.floor(h * k));
      Object.assign(this.canvas.style, { width: `${cw}px`, height: `${ch}px`, left: `${Math.floor((sw - cw) / 2)}px`,
        top: `${Math.floor((sh - ch) / 2)}px` });
    }
    this.redraw();
  }

  // ------------------------------------------------------------------------------------------------ picture
  /** The /view URL of the picture feeding the "image" input, or null. */
  sourceUrl() {
    const slot = this.node.inputs?.findIndex((i) => i.name === "image") ?? -1;
    let up = slot >= 0 ? this.node.getInputNode(slot) : null;
    for (let hops = 0; up && hops < 16 && (up.type === "Reroute" || up.comfyClass === "Reroute"); hops++) {
      up = up.getInputNode(0);
    }
    if (up) {
      const imageWidget = up.widgets?.find((w) => w.name === "image" && typeof w.value === "string");
      if (imageWidget && /LoadImage/.test(up.comfyClass ?? up.type ?? "")) {
        const url = urlFromImageValue(imageWidget.value);
        if (url) return url;
      }
      const outputs = app.nodeOutputs?.[String(up.id)]?.images;
      if (outputs?.length) return viewUrl(outputs[0].filename, outputs[0].type, outputs[0].subfolder);
      if (up.imgs?.length && up.imgs[0].src) return up.imgs[0].src;
    }
    return this.executedUrl ?? null;
  }

  /** Cheap: called on every node redraw; loads the picture when its source changed. */
  syncSource() {
    if (this.element.dataset.nodeId !== String(this.node.id)) this.element.dataset.nodeId = String(this.node.id);
    const url = this.sourceUrl();
    if (url === this.pictureUrl) return;
    this.pictureUrl = url;
    if (!url) {
      this.picture = null;
      this.layout();
      return;
    }
    const img = new Image();
    img.onload = () => {
      if (this.pictureUrl !== url) return;
      let opaque = null;
      let tint = null;
      try {
        opaque = opaqueCopy(img);
        tint = transparencyTint(img);
      } catch (e) {
        console.warn("[ImageDynamics] motion editor: picture layers", e);
      }
      this.picture = { img, opaque, tint, url, width: img.naturalWidth, height: img.naturalHeight };
      this.layout();
      this.updateStatus();
    };
    img.onerror = () => {
      if (this.pictureUrl !== url) return;
      this.picture = null;
      this.layout();
      this.updateStatus(`could not load the picture (${url})`);
    };
    img.src = url;
  }

  // ------------------------------------------------------------------------------------------------ value
  /** Re-read the widget value (workflow loaded, text edited, graph undo). */
  loadFromValue() {
    const text = this.valueWidget.value;
    const { drawing, error } = M.parseDrawing(text);
    this.error = error ?? null;
    this.drawing = drawing ?? M.emptyDrawing();
    this.selected = null;
    this.drag = null;
    this.layout();
    this.updateStatus();
  }

  serialize() {
    return M.serializeDrawing(this.drawing);
  }

  write() {
    const text = this.serialize();
    if (text === this.valueWidget.value) return;
    this.writing = true;
    try {
      this.valueWidget.value = text;
    } finally {
      this.writing = false;
    }
    changed();
  }

  /**
   * After an edit: when the drawing differs from `before` (the widget text before the edit), remember that text
   * for undo and write the new one. Text the edit did not change (formatting included) is left alone.
   */
  commit(before) {
    const previous = M.parseDrawing(before).drawing;
    if (!previous || M.serializeDrawing(previous) !== this.serialize()) {
      this.undoStack.push(before);
      if (this.undoStack.length > 200) this.undoStack.shift();
      this.redoStack = [];
      this.write();
    }
    this.redraw();
    this.updateStatus();
  }

  /** Before an edit: the drawing takes the picture's size (coordinates rescaled as the Python parser does). */
  adoptSize() {
    const [w, h] = this.size();
    if (this.drawing.width !== w || this.drawing.height !== h) this.drawing = M.rescale(this.drawing, w, h);
  }

  /** Put back a widget text exactly (undo / redo), and show it. */
  restore(text) {
    this.writing = true;
    try {
      this.valueWidget.value = text;
    } finally {
      this.writing = false;
    }
    changed();
    this.loadFromValue();
  }

  undo() {
    if (!this.undoStack.length) return false;
    this.redoStack.push(this.valueWidget.value);
    this.restore(this.undoStack.pop());
    return true;
  }

  redo() {
    if (!this.redoStack.length) return false;
    this.undoStack.push(this.valueWidget.value);
    this.restore(this.redoStack.pop());
    return true;
  }

  clear() {
    const before = this.valueWidget.value;
    const [w, h] = this.size();
    this.drawing = M.emptyDrawing(w, h);
    this.error = null;
    this.selected = null;
    this.commit(before);
  }

  deleteSelected() {
    if (!this.selected) return false;
    const before = this.valueWidget.value;
    M.removeHit(this.drawing, this.selected);
    this.selected = null;
    this.commit(before);
    return true;
  }

  applySpeed() {
    const speed = Number(this.speedInput.value);
    if (!isFinite(speed) || speed < 0) return;
    if (this.selected?.kind === "arrow" && !this.error) {
      const before = this.valueWidget.value;
      this.drawing.arrows[this.selected.index].speed = speed;
      this.commit(before);
    }
  }

  // ------------------------------------------------------------------------------------------------ input
  /** Picture pixel coordinates of a pointer event: from the canvas's on-screen box, so zoom and DPI do not matter. */
  toPicture(e) {
    const rect = this.canvas.getBoundingClientRect();
    const [w, h] = this.size();
    const x = ((e.clientX - rect.left) / rect.width) * w - 0.5; // pixel centres sit on integers
    const y = ((e.clientY - rect.top) / rect.height) * h - 0.5;
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
    c.addEventListener("pointercancel", (e) => this.cancelDrag(e));
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("pointerleave", () => {
      if (this.drag) return; // captured: the drag goes on
      this.hover = null;
      this.redraw();
      this.updateStatus();
    });
    this.element.addEventListener("pointerleave", () => {
      if (document.activeElement === this.keys) this.keys.blur();
    });
    // The wheel zooms the graph, as over any other node; the middle button pans it.
    this.element.addEventListener("wheel", (e) => {
      e.preventDefault();
      e.stopPropagation();
      app.canvas?.processMouseWheel?.(e);
    }, { passive: false });
  }

  onPointerDown(e) {
    if (e.button === 1) {
      app.canvas?.processMouseDown?.(e);
      return;
    }
    if (e.button !== 0) return;
    e.preventDefault();
    e.stopPropagation();
    this.keys.focus({ preventScroll: true });
    if (this.error) {
      this.updateStatus();
      return;
    }
    this.canvas.setPointerCapture?.(e.pointerId);
    const before = this.valueWidget.value;
    this.adoptSize();
    const p = this.clamp(this.toPicture(e));
    const tol = HIT_PX * this.screenScale();
    const hit = M.hitTest(this.drawing, p, tol);
    const onHandle = hit && hit.part !== "body";
    if (this.tool === "move" || ((this.tool === "arrow" || this.tool === "track") && onHandle)) {
      this.selected = hit ? { kind: hit.kind, index: hit.index } : null;
      if (hit?.kind === "arrow") this.speedInput.value = String(this.drawing.arrows[hit.index].speed);
      this.drag = hit ? { type: "move", hit, origin: p, base: M.clone(this.drawing), before } : null;
    } else if (this.tool === "arrow") {
      this.drag = { type: "arrow", start: p, end: p, before };
    } else if (this.tool === "track") {
      this.drag = { type: "track", points: [p], before };
    } else {
      const radius = Math.max(1, Number(this.radiusInput.value) || 12);
      this.drag = { type: "stroke", stroke: { points: [p], radius: M.round(radius), erase: this.tool === "erase" }, before };
    }
    this.redraw();
    this.updateStatus();
  }

  onPointerMove(e) {
    if ((e.buttons & 4) === 4 && !this.drag) {
      app.canvas?.processMouseMove?.(e);
      return;
    }
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
        if (M.distance(p, d.stroke.points[d.stroke.points.length - 1]) >= 1) d.stroke.points.push(p);
      } else if (d.type === "move") {
        M.moveHit(this.drawing, d.base, d.hit, p[0] - d.origin[0], p[1] - d.origin[1], (q) => this.clamp(q));
      }
    }
    this.redraw();
    this.updateStatus();
  }

  onPointerUp(e) {
    if (e.button === 1) {
      app.canvas?.processMouseUp?.(e);
      return;
    }
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
        this.selected = { kind: "arrow", index: this.drawing.arrows.length - 1 };
      } else {
        const hit = M.hitTest(this.drawing, p, HIT_PX * this.screenScale());
        this.selected = hit ? { kind: hit.kind, index: hit.index } : null;
      }
    } else if (d.type === "track") {
      const pts = d.points;
      if (M.distance(pts[pts.length - 1], p) > 0) pts.push(p);
      const simplified = M.simplify(pts, 4 * this.screenScale());
      if (simplified.length >= 2) {
        this.drawing.tracks.push(simplified);
        this.selected = { kind: "track", index: this.drawing.tracks.length - 1 };
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
    this.selected = null;
    this.redraw();
    this.updateStatus();
    return true;
  }

  /** Keys reach here only after a click in the editor and while the pointer stays over it (a hidden input holds
   * focus just then, which also keeps ComfyUI's graph undo from firing with the editor's own undo). */
  onKey(e) {
    const ctrl = e.ctrlKey || e.metaKey;
    let handled = false;
    if ((e.key === "Delete" || e.key === "Backspace") && !ctrl) handled = this.deleteSelected();
    else if (ctrl && !e.altKey && e.code === "KeyZ" && !e.shiftKey) handled = this.undo();
    else if (ctrl && !e.altKey && ((e.code === "KeyZ" && e.shiftKey) || (e.code === "KeyY" && !e.shiftKey))) handled = this.redo();
    else if (e.key === "Escape") {
      handled = this.cancelDrag();
      if (!handled && this.selected) {
        this.selected = null;
        this.redraw();
        handled = true;
      }
    }
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
      return;
    }
    // Not ours. ComfyUI skips keys aimed at a focused text input (its shortcuts and its graph undo), so hand
    // those over as if nothing had focus; other combinations (Ctrl+S, Ctrl+Enter...) already reach it.
    if (!reservedByTextInput(e)) return;
    e.stopPropagation();
    this.keys.blur();
    document.body.dispatchEvent(new KeyboardEvent("keydown", {
      key: e.key, code: e.code, ctrlKey: e.ctrlKey, shiftKey: e.shiftKey, altKey: e.altKey, metaKey: e.metaKey,
      repeat: e.repeat, bubbles: true, cancelable: true,
    }));
    if (this.hover) this.keys.focus({ preventScroll: true });
  }

  // ------------------------------------------------------------------------------------------------ drawing
  redraw() {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const [w, h] = this.size();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (this.picture) {
      ctx.fillStyle = "#808080";
      ctx.fillRect(0, 0, w, h);
      ctx.drawImage(this.picture.opaque ?? this.picture.img, 0, 0, w, h);
      if (this.picture.tint && this.maskFromPicture()) ctx.drawImage(this.picture.tint, 0, 0, w, h);
    } else {
      ctx.fillStyle = "#555";
      ctx.fillRect(0, 0, w, h);
    }
    // Line widths and handles keep their on-screen size at graph zoom 1 (layout pixels, not zoomed ones).
    const k = this.canvas.clientWidth > 0 ? w / this.canvas.clientWidth : 1;
    const d = this.drawing;
    const dw = d.width && d.height && (d.width !== w || d.height !== h) ? M.rescale(d, w, h) : d; // view only
    this.drawBrush(ctx, dw, w, h);
    ctx.translate(0.5, 0.5); // pixel centres
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    dw.tracks.forEach((t, i) => this.drawTrack(ctx, t, k, this.isSelected("track", i)));
    dw.arrows.forEach((a, i) => this.drawArrow(ctx, a, k, this.isSelected("arrow", i)));
    const g = this.drag;
    if (g?.type === "arrow" && M.distance(g.start, g.end) > 0) {
      this.drawArrow(ctx, { start: g.start, end: g.end, speed: Number(this.speedInput.value) }, k, true);
    } else if (g?.type === "track") this.drawTrack(ctx, g.points, k, true);
    if (this.hover && (this.tool === "brush" || this.tool === "erase")) {
      const r = g?.type === "stroke" ? g.stroke.radius : Number(this.radiusInput.value) || 12;
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = k;
      ctx.beginPath();
      ctx.arc(this.hover[0], this.hover[1], r, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  /** True when the node's mask input comes from the Load Image node that gives the picture (its alpha). */
  maskFromPicture() {
    const slot = (name) => this.node.inputs?.findIndex((i) => i.name === name) ?? -1;
    const image = slot("image") >= 0 ? this.node.getInputNode(slot("image")) : null;
    const mask = slot("mask") >= 0 ? this.node.getInputNode(slot("mask")) : null;
    return !!image && image === mask;
  }

  isSelected(kind, index) {
    return this.selected?.kind === kind && this.selected.index === index;
  }

  drawBrush(ctx, d, w, h) {
    const strokes = this.drag?.type === "stroke" ? [...d.strokes, this.drag.stroke] : d.strokes;
    if (!strokes.length) return;
    if (!this.brushLayer) this.brushLayer = document.createElement("canvas");
    const layer = this.brushLayer;
    layer.width = w;
    layer.height = h;
    const b = layer.getContext("2d");
    b.lineCap = "round";
    b.lineJoin = "round";
    b.translate(0.5, 0.5);
    for (const s of strokes) {
      b.globalCompositeOperation = s.erase ? "destination-out" : "source-over";
      b.strokeStyle = b.fillStyle = "#000";
      b.lineWidth = 2 * s.radius + 1;
      b.beginPath();
      b.arc(s.points[0][0], s.points[0][1], s.radius + 0.5, 0, 2 * Math.PI);
      b.fill();
      if (s.points.length > 1) {
        b.beginPath();
        b.moveTo(...s.points[0]);
        for (const p of s.points.slice(1)) b.lineTo(...p);
        b.stroke();
      }
    }
    b.globalCompositeOperation = "source-in"; // colour what is painted
    b.setTransform(1, 0, 0, 1, 0, 0);
    b.fillStyle = COLORS.brush;
    b.fillRect(0, 0, w, h);
    ctx.drawImage(layer, 0, 0);
  }

  drawHead(ctx, from, to, k, color) {
    const ang = Math.atan2(to[1] - from[1], to[0] - from[0]);
    const len = 9 * k;
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.moveTo(to[0], to[1]);
    ctx.lineTo(to[0] - len * Math.cos(ang - 0.45), to[1] - len * Math.sin(ang - 0.45));
    ctx.lineTo(to[0] - len * Math.cos(ang + 0.45), to[1] - len * Math.sin(ang + 0.45));
    ctx.closePath();
    ctx.fill();
  }

  handle(ctx, p, k, color, filled = true) {
    ctx.beginPath();
    ctx.arc(p[0], p[1], HANDLE_PX * k, 0, 2 * Math.PI);
    ctx.fillStyle = filled ? color : "rgba(0,0,0,0.5)";
    ctx.fill();
    ctx.strokeStyle = "#000";
    ctx.lineWidth = k;
    ctx.stroke();
  }

  drawArrow(ctx, a, k, selected) {
    const color = selected ? COLORS.selected : COLORS.arrow;
    ctx.strokeStyle = "rgba(0,0,0,0.6)";
    ctx.lineWidth = 5 * k;
    ctx.beginPath();
    ctx.moveTo(...a.start);
    ctx.lineTo(...a.end);
    ctx.stroke();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2.5 * k;
    ctx.stroke();
    this.drawHead(ctx, a.start, a.end, k * 1.4, color);
    this.handle(ctx, a.start, k, color, false);
    this.handle(ctx, a.end, k, color);
    const v = M.distance(a.start, a.end) * a.speed;
    ctx.font = `${Math.round(11 * k)}px sans-serif`;
    ctx.fillStyle = "#000";
    const label = `${v.toFixed(1)} px/f`;
    ctx.fillText(label, a.end[0] + 7 * k + k, a.end[1] - 5 * k + k);
    ctx.fillStyle = color;
    ctx.fillText(label, a.end[0] + 7 * k, a.end[1] - 5 * k);
  }

  drawTrack(ctx, t, k, selected) {
    const color = selected ? COLORS.selected : COLORS.track;
    ctx.beginPath();
    ctx.moveTo(...t[0]);
    for (const p of t.slice(1)) ctx.lineTo(...p);
    ctx.strokeStyle = "rgba(0,0,0,0.6)";
    ctx.lineWidth = 5 * k;
    ctx.stroke();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2.5 * k;
    ctx.stroke();
    if (t.length > 1) this.drawHead(ctx, t[t.length - 2], t[t.length - 1], k * 1.4, color);
    this.handle(ctx, t[0], k, color, false);
    if (selected) for (const p of t.slice(1)) this.handle(ctx, p, k * 0.6, color);
  }

  updateStatus(message) {
    const d = this.drawing;
    const s = this.status;
    s.classList.toggle("error", !!(this.error || message));
    if (this.error) {
      s.textContent = `Not editable here: ${this.error}`;
      s.title = s.textContent;
      return;
    }
    const parts = [];
    if (this.hover) parts.push(`x ${this.hover[0].toFixed(1)}, y ${this.hover[1].toFixed(1)}`);
    const n = (c, word) => `${c} ${word}${c === 1 ? "" : "s"}`;
    parts.push(`${n(d.arrows.length, "arrow")}, ${n(d.tracks.length, "track")}, ${n(d.strokes.length, "stroke")}`);
    if (this.selected?.kind === "arrow" && d.arrows[this.selected.index]) {
      const a = d.arrows[this.selected.index];
      parts.push(`arrow ${this.selected.index + 1}: ${(M.distance(a.start, a.end) * a.speed).toFixed(1)} px/frame`);
    } else if (this.selected?.kind === "track" && d.tracks[this.selected.index]) {
      parts.push(`track ${this.selected.index + 1}: ${d.tracks[this.selected.index].length} points`);
    }
    const [w, h] = this.size();
    parts.push(this.picture ? `${w}x${h}` : `${w}x${h}, no picture yet (connect a Load Image or run once)`);
    s.textContent = message ?? parts.join(" · ");
    s.title = s.textContent;
  }

  remove() {
    this.resizeObserver?.disconnect();
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
    getMinHeight: () => 240,
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

app.registerExtension({
  name: "ImageDynamics.MotionEditor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_TYPE) return;
    const proto = nodeType.prototype;
    const onNodeCreated = proto.onNodeCreated;
    proto.onNodeCreated = function (...args) {
      const r = onNodeCreated?.apply(this, args);
      attachEditor(this);
      const min = this.computeSize();
      this.setSize([Math.max(this.size[0], 380, min[0]), Math.max(this.size[1], min[1])]);
      return r;
    };
    const onConfigure = proto.onConfigure;
    proto.onConfigure = function (...args) {
      const r = onConfigure?.apply(this, args);
      this.imdEditor?.loadFromValue(); // widget values are set by now: restore the drawing exactly
      const min = this.computeSize();
      if (this.size[0] < min[0] || this.size[1] < min[1]) {
        this.setSize([Math.max(this.size[0], min[0]), Math.max(this.size[1], min[1])]);
      }
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
      const img = output?.images?.[0]; // used when the node reports its picture (and no Load Image feeds it)
      if (img && this.imdEditor) this.imdEditor.executedUrl = viewUrl(img.filename, img.type, img.subfolder);
      return r;
    };
  },
});
