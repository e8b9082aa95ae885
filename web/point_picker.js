// ImageDynamics point picker: click on the picture to set a node's point, drag to set its pull.
//
// InteractiveDynamics takes a drag point (x, y) and a pull (dx, dy) in picture pixels. The picker shows the
// picture the node works on (followed upstream: spectrum -> Spectral Volume Sampler -> image -> Load Image) with the
// point and the pull drawn on it: a click sets x and y, a drag from there also sets dx and dy. The widgets stay the
// values the node gets (typing in them moves the marker), so saved workflows and API prompts are unchanged.
//
// Plain ES module, no build step. Like the motion editor, a click here never selects the node; the wheel and the
// middle button act on the graph.
import { app } from "../../scripts/app.js";
import { PictureLoader, upstreamPicture, widgetValue } from "./picture_source.js";
import { changed, deselect, el, fitCanvas, injectStyle, panGraph, passGraphNavigation, pictureXY, setWidget } from "./widget_util.js";

/** Nodes that take a point on the picture: where their picture comes from and which widgets hold the point. */
export const PICKERS = {
  InteractiveDynamics: { input: "spectrum", x: "x", y: "y", dx: "dx", dy: "dy" },
};
const WIDGET = "point_picker";
const FALLBACK_SIZE = [512, 512];
const DRAG_PX = 4; // a pointer that moves less than this on screen is a click (sets the point only)
const MIN_HEIGHT = 300;

const STYLE = `
.imd-picker { display: flex; flex-direction: column; width: 100%; height: 100%; box-sizing: border-box; gap: 3px;
  font: 11px sans-serif; color: var(--input-text, #ddd); user-select: none; }
.imd-picker .imd-stage { position: relative; flex: 1 1 auto; min-height: 60px; overflow: hidden; background: #1b1b1b;
  border-radius: 4px; }
.imd-picker canvas { position: absolute; touch-action: none; cursor: crosshair; }
.imd-picker .imd-status { opacity: 0.85; min-height: 28px; white-space: normal; }
`;

const round = (v, step) => Math.round(v / step) * step;

export class PointPicker {
  constructor(node, spec) {
    this.node = node;
    this.spec = spec;
    this.drag = null;
    this.loader = new PictureLoader(() => this.layout());
    this.shown = "";
    injectStyle("imagedynamics-picker-style", STYLE);
    this.canvas = el("canvas", { width: FALLBACK_SIZE[0], height: FALLBACK_SIZE[1] });
    this.stage = el("div", { className: "imd-stage" }, [this.canvas]);
    this.status = el("div", { className: "imd-status" });
    this.element = el("div", { className: "imd-picker" }, [this.stage, this.status]);
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(this.stage);
    this.canvas.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.canvas.addEventListener("pointerup", (e) => this.onPointerUp(e));
    this.canvas.addEventListener("pointercancel", () => this.cancel());
    this.canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    passGraphNavigation(this.element);
  }

  size() {
    const p = this.loader.picture;
    return p ? [p.width, p.height] : FALLBACK_SIZE;
  }

  value(name) {
    return Number(widgetValue(this.node, this.spec[name])) || 0;
  }

  point() {
    return { x: this.value("x"), y: this.value("y"), dx: this.value("dx"), dy: this.value("dy") };
  }

  /** Cheap: called on every node redraw; reloads the picture or redraws the marker when they changed. */
  sync() {
    if (this.element.dataset.nodeId !== String(this.node.id)) this.element.dataset.nodeId = String(this.node.id);
    this.source = upstreamPicture(this.node, this.spec.input);
    this.loader.update(this.source?.url ?? null);
    const shown = JSON.stringify(this.point());
    if (shown !== this.shown) this.redraw();
  }

  layout() {
    const [w, h] = this.size();
    fitCanvas(this.canvas, this.stage, w, h);
    this.redraw();
  }

  toPicture(e) {
    const [w, h] = this.size();
    const [x, y] = pictureXY(this.canvas, e, w, h);
    return [Math.min(Math.max(x, 0), w - 1), Math.min(Math.max(y, 0), h - 1)];
  }

  onPointerDown(e) {
    if (panGraph(e, "down")) return;
    if (e.button !== 0) return;
    e.preventDefault();
    e.stopPropagation();
    deselect(this.node);
    this.canvas.setPointerCapture?.(e.pointerId);
    const [x, y] = this.toPicture(e);
    this.drag = { before: this.point(), origin: [round(x, 1), round(y, 1)], screen: [e.clientX, e.clientY], pulled: false };
    this.set({ x: this.drag.origin[0], y: this.drag.origin[1] });
  }

  onPointerMove(e) {
    if (panGraph(e, "move", !!this.drag)) return;
    const d = this.drag;
    if (!d) return;
    e.stopPropagation();
    d.pulled ||= Math.hypot(e.clientX - d.screen[0], e.clientY - d.screen[1]) >= DRAG_PX;
    if (!d.pulled) return;
    const [x, y] = this.toPicture(e);
    this.set({ dx: round(x - d.origin[0], 0.5), dy: round(y - d.origin[1], 0.5) });
  }

  onPointerUp(e) {
    if (panGraph(e, "up")) return;
    if (!this.drag) return;
    e.stopPropagation();
    this.canvas.releasePointerCapture?.(e.pointerId);
    this.drag = null;
    changed();
  }

  cancel() {
    if (!this.drag) return;
    this.set(this.drag.before);
    this.drag = null;
  }

  set(values) {
    for (const [key, v] of Object.entries(values)) setWidget(this.node, this.spec[key], v);
    this.redraw();
  }

  redraw() {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const [w, h] = this.size();
    const picture = this.loader.picture;
    const k = this.canvas.clientWidth > 0 ? w / this.canvas.clientWidth : 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = picture ? "#808080" : "#555";
    ctx.fillRect(0, 0, w, h);
    if (picture) ctx.drawImage(picture.opaque ?? picture.img, 0, 0, w, h);
    const p = this.point();
    this.shown = JSON.stringify(p);
    ctx.translate(0.5, 0.5);
    const to = [p.x + p.dx, p.y + p.dy];
    ctx.lineCap = "round";
    const pulled = Math.hypot(p.dx, p.dy) > 0;
    const ang = Math.atan2(p.dy, p.dx);
    for (const [color, width] of [["rgba(0,0,0,0.6)", 5], ["#ff5577", 2.5]]) {
      ctx.strokeStyle = color;
      ctx.lineWidth = width * k;
      ctx.beginPath();
      ctx.moveTo(p.x, p.y);
      ctx.lineTo(to[0], to[1]);
      if (pulled) { // the head of the pull
        for (const side of [-0.45, 0.45]) {
          ctx.moveTo(to[0], to[1]);
          ctx.lineTo(to[0] - 10 * k * Math.cos(ang + side), to[1] - 10 * k * Math.sin(ang + side));
        }
      }
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(p.x, p.y, 6 * k, 0, 2 * Math.PI);
      ctx.moveTo(p.x - 10 * k, p.y);
      ctx.lineTo(p.x + 10 * k, p.y);
      ctx.moveTo(p.x, p.y - 10 * k);
      ctx.lineTo(p.x, p.y + 10 * k);
      ctx.stroke();
    }
    const inside = p.x >= 0 && p.y >= 0 && p.x <= w - 1 && p.y <= h - 1;
    const where = picture ? `${w}x${h}` : `${w}x${h}, no picture yet (connect the spectrum's Load Image)`;
    this.status.textContent = `point (${p.x}, ${p.y}) · pull (${p.dx}, ${p.dy}) px` +
      `${inside ? "" : " · the point is outside the picture"} · ${where} · click to set the point, drag to pull`;
    this.status.title = this.status.textContent;
  }

  remove() {
    this.resizeObserver?.disconnect();
  }
}

function attachPicker(node, spec) {
  if (node.imdPicker) return;
  const picker = new PointPicker(node, spec);
  node.imdPicker = picker;
  const widget = node.addDOMWidget(WIDGET, "imagedynamics.point_picker", picker.element, {
    serialize: false, // the point lives in the x, y, dx, dy widgets
    hideOnZoom: false,
    selectOn: [],
    getMinHeight: () => MIN_HEIGHT,
    getValue: () => undefined,
    setValue: () => {},
  });
  widget.serialize = false;
  widget.serializeValue = () => undefined;
  widget.onRemove = () => picker.remove();
}

app.registerExtension({
  name: "ImageDynamics.PointPicker",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const spec = PICKERS[nodeData?.name];
    if (!spec) return;
    const proto = nodeType.prototype;
    const onNodeCreated = proto.onNodeCreated;
    proto.onNodeCreated = function (...args) {
      const r = onNodeCreated?.apply(this, args);
      attachPicker(this, spec);
      const min = this.computeSize();
      this.setSize([Math.max(this.size[0], 340, min[0]), Math.max(this.size[1], min[1])]);
      return r;
    };
    const onConfigure = proto.onConfigure;
    proto.onConfigure = function (...args) {
      const r = onConfigure?.apply(this, args);
      const min = this.computeSize();
      if (this.size[0] < min[0] || this.size[1] < min[1]) this.setSize([Math.max(this.size[0], min[0]), Math.max(this.size[1], min[1])]);
      return r;
    };
    const onDrawForeground = proto.onDrawForeground;
    proto.onDrawForeground = function (...args) {
      const r = onDrawForeground?.apply(this, args);
      this.imdPicker?.sync();
      return r;
    };
  },
});
