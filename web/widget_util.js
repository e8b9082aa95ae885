// ImageDynamics editors: small DOM and ComfyUI helpers shared by the motion editor and the point picker.
import { app } from "../../scripts/app.js";

export function el(tag, props = {}, children = []) {
  const e = Object.assign(document.createElement(tag), props);
  for (const c of children) e.append(c);
  return e;
}

export function injectStyle(id, css) {
  if (document.getElementById(id)) return;
  const style = document.createElement("style");
  style.id = id;
  style.textContent = css;
  document.head.append(style);
}

/** A widget value changed from a DOM widget: redraw the graph and let ComfyUI's change tracker (graph undo) see it. */
export function changed() {
  app.graph?.setDirtyCanvas?.(true, true);
  try {
    app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.();
  } catch (e) {
    // the change tracker is optional
  }
}

/** Set a node widget's value as the user would (its callback runs, so other extensions see the change). */
export function setWidget(node, name, value) {
  const w = node.widgets?.find((x) => x.name === name);
  if (!w || w.value === value) return false;
  w.value = value;
  w.callback?.(value, app.canvas, node);
  return true;
}

/** The node is not left selected by a click in a widget (so the graph's Delete cannot remove it by surprise). */
export function deselect(node) {
  const canvas = app.canvas;
  if (canvas?.selected_nodes?.[node.id]) {
    canvas.deselect?.(node);
    canvas.setDirty?.(true, true);
  }
}

/** Picture pixel of a pointer event over `canvas` showing a w x h picture (zoom and DPI free), unrounded. */
export function pictureXY(canvas, e, w, h) {
  const rect = canvas.getBoundingClientRect();
  return [((e.clientX - rect.left) / rect.width) * w - 0.5, ((e.clientY - rect.top) / rect.height) * h - 0.5];
}

/** Fit a w x h canvas inside its stage (CSS size and position), keeping the aspect ratio. */
export function fitCanvas(canvas, stage, w, h) {
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const sw = stage.clientWidth;
  const sh = stage.clientHeight;
  if (sw > 0 && sh > 0) {
    const k = Math.min(sw / w, sh / h);
    const cw = Math.max(1, Math.floor(w * k));
    const ch = Math.max(1, Math.floor(h * k));
    Object.assign(canvas.style, { width: `${cw}px`, height: `${ch}px`, left: `${Math.floor((sw - cw) / 2)}px`,
      top: `${Math.floor((sh - ch) / 2)}px` });
  }
}

/**
 * A middle-button press, drag (unless the widget is dragging itself) or release over a widget pans the graph, as
 * over any other node. `phase`: "down" | "move" | "up". Returns true when the event was handed to the graph.
 */
export function panGraph(e, phase, dragging = false) {
  const canvas = app.canvas;
  if (phase === "down" && e.button === 1) canvas?.processMouseDown?.(e);
  else if (phase === "move" && (e.buttons & 4) === 4 && !dragging) canvas?.processMouseMove?.(e);
  else if (phase === "up" && e.button === 1) canvas?.processMouseUp?.(e);
  else return false;
  return true;
}

/** Wheel and middle-button drags over a DOM widget act on the graph, as over any other node. */
export function passGraphNavigation(element) {
  element.addEventListener("wheel", (e) => {
    e.preventDefault();
    e.stopPropagation();
    app.canvas?.processMouseWheel?.(e);
  }, { passive: false });
}
