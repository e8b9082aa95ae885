// ImageDynamics motion editor: the drawing model (no DOM, no ComfyUI).
//
// A drawing is what the SparseTrajectoryToFlow "trajectories" widget holds, in the picture's pixel coordinates
// (x right, y down, pixel centres on integers), in the pack's canonical JSON that ops/trajectories.py parses:
//
//   {"coordinates": "pixels", "width": 512, "height": 512,
//    "arrows": [{"start": [x, y], "end": [x, y], "speed": 1.0}, ...],
//    "tracks": [[[x, y], [x, y], ...], ...],
//    "brush": {"strokes": [{"points": [[x, y], ...], "radius": 12, "erase": false}, ...]}}
//
// Internally: {arrows: [{start, end, speed}], tracks: [[[x, y], ...]], strokes: [{points, radius, erase}],
//              width, height (null when unknown), brushMode (passed through), extra: {unknown keys kept as is}}.
//
// This file is loaded by ComfyUI as an extension module too (every .js under web/ is); it only exports.

export const DECIMALS = 1;

export function round(v) {
  const k = 10 ** DECIMALS;
  return Math.round(Number(v) * k) / k;
}

export function emptyDrawing(width = null, height = null) {
  return { arrows: [], tracks: [], strokes: [], width, height, brushMode: undefined };
}

export function isEmpty(d) {
  return !d.arrows.length && !d.tracks.length && !d.strokes.length;
}

function fail(msg) {
  throw new Error(msg);
}

function point(p, label) {
  if (Array.isArray(p) && p.length >= 2 && p.slice(0, 2).every((v) => typeof v === "number" && isFinite(v))) {
    return [round(p[0]), round(p[1])];
  }
  if (p && typeof p === "object" && typeof p.x === "number" && typeof p.y === "number") {
    return [round(p.x), round(p.y)];
  }
  return fail(`${label}: expected a point [x, y]`);
}

function arrow(a, i) {
  const label = `arrow ${i}`;
  if (Array.isArray(a) && (a.length === 2 || a.length === 3) && typeof a[0] !== "number") {
    const speed = a.length === 3 ? Number(a[2]) : 1.0;
    return { start: point(a[0], label), end: point(a[1], label), speed };
  }
  if (Array.isArray(a) && (a.length === 4 || a.length === 5)) {
    return { start: point(a.slice(0, 2), label), end: point(a.slice(2, 4), label), speed: a.length === 5 ? a[4] : 1.0 };
  }
  if (a && typeof a === "object" && "start" in a && "end" in a) {
    const speed = a.speed === undefined ? 1.0 : Number(a.speed);
    if (!isFinite(speed)) fail(`${label}: speed must be a number`);
    return { start: point(a.start, label), end: point(a.end, label), speed };
  }
  return fail(`${label}: expected {"start": [x, y], "end": [x, y], "speed": s}`);
}

function track(t, i) {
  if (!Array.isArray(t) || !t.length) fail(`track ${i}: expected a list of points`);
  return t.map((p) => point(p, `track ${i}`));
}

function stroke(s, i) {
  if (!s || typeof s !== "object" || !Array.isArray(s.points)) fail(`brush stroke ${i}: expected {"points": [...]}`);
  const radius = s.radius === undefined ? 12 : Number(s.radius);
  return { points: s.points.map((p) => point(p, `brush stroke ${i}`)), radius: round(radius), erase: !!s.erase };
}

const KNOWN = new Set(["version", "coordinates", "width", "height", "size", "arrows", "tracks", "brush"]);

/** Parse the widget text. Returns {drawing} or {error: "why it cannot be edited"}; never throws. */
export function parseDrawing(text) {
  const src = (text ?? "").trim();
  if (!src) return { drawing: emptyDrawing() };
  let obj;
  try {
    obj = JSON.parse(src);
  } catch (e) {
    return { error: "the text is not JSON (it may be another accepted format); Clear to draw instead" };
  }
  try {
    const d = emptyDrawing();
    if (Array.isArray(obj)) {
      // A bare list of arrows ({start, end} objects) or of tracks ([[x, y], ...]).
      if (obj.length && obj[0] && typeof obj[0] === "object" && !Array.isArray(obj[0])) d.arrows = obj.map(arrow);
      else d.tracks = obj.map(track);
      return { drawing: d };
    }
    if (!obj || typeof obj !== "object") fail("expected a JSON object");
    if (obj.coordinates === "normalized" || obj.coordinates === "normalised") {
      fail("normalised coordinates: the editor draws in pixels");
    }
    if ("track_path" in obj) fail("a TRACKS object: the editor draws arrows, tracks and brushes");
    const unknown = Object.keys(obj).filter((k) => !KNOWN.has(k));
    if (unknown.length) fail(`unknown key "${unknown[0]}"`);
    const size = Array.isArray(obj.size) ? obj.size : "width" in obj ? [obj.width, obj.height] : null;
    if (size) {
      const [w, h] = size.map(Number);
      if (!(Number.isInteger(w) && Number.isInteger(h) && w >= 1 && h >= 1)) fail("width and height must be positive integers");
      d.width = w;
      d.height = h;
    }
    if (obj.arrows !== undefined) {
      if (!Array.isArray(obj.arrows)) fail("'arrows' must be a list");
      d.arrows = obj.arrows.map(arrow);
    }
    if (obj.tracks !== undefined) {
      if (!Array.isArray(obj.tracks)) fail("'tracks' must be a list");
      d.tracks = obj.tracks.map(track);
    }
    if (obj.brush !== undefined && obj.brush !== null) {
      if (typeof obj.brush !== "object" || !Array.isArray(obj.brush.strokes ?? [])) fail("'brush' must be {strokes: [...]}");
      d.strokes = (obj.brush.strokes ?? []).map(stroke);
      d.brushMode = obj.brush.mode;
    }
    return { drawing: d };
  } catch (e) {
    return { error: `${e.message}; Clear to draw instead` };
  }
}

const num = (v) => JSON.stringify(round(v));
const pt = (p) => `[${num(p[0])}, ${num(p[1])}]`;

/** Canonical JSON text, one item a line (easy to read and to edit by hand in the text box). */
export function serializeDrawing(d) {
  const lines = ['{"coordinates": "pixels"'];
  if (d.width && d.height) lines[0] += `, "width": ${d.width | 0}, "height": ${d.height | 0}`;
  const list = (key, items) => {
    if (!items.length) return `"${key}": []`;
    return `"${key}": [\n  ${items.join(",\n  ")}]`;
  };
  lines.push(list("arrows", d.arrows.map((a) => `{"start": ${pt(a.start)}, "end": ${pt(a.end)}, "speed": ${JSON.stringify(Number(a.speed))}}`)));
  lines.push(list("tracks", d.tracks.map((t) => `[${t.map(pt).join(", ")}]`)));
  if (d.strokes.length) {
    const strokes = d.strokes.map((s) => `{"points": [${s.points.map(pt).join(", ")}], "radius": ${num(s.radius)}, "erase": ${!!s.erase}}`);
    const mode = d.brushMode === undefined ? "" : `"mode": ${JSON.stringify(d.brushMode)}, `;
    lines.push(`"brush": {${mode}"strokes": [\n  ${strokes.join(",\n  ")}]}`);
  }
  return lines.join(",\n") + "}";
}

export function clone(d) {
  return {
    arrows: d.arrows.map((a) => ({ start: [...a.start], end: [...a.end], speed: a.speed })),
    tracks: d.tracks.map((t) => t.map((p) => [...p])),
    strokes: d.strokes.map((s) => ({ points: s.points.map((p) => [...p]), radius: s.radius, erase: s.erase })),
    width: d.width,
    height: d.height,
    brushMode: d.brushMode,
  };
}

/** Map every coordinate from the drawing's size to width x height, as the Python parser does ((W-1)/(w0-1)). */
export function rescale(d, width, height) {
  const out = clone(d);
  if (d.width && d.height && (d.width !== width || d.height !== height)) {
    const sx = (width - 1) / Math.max(d.width - 1, 1);
    const sy = (height - 1) / Math.max(d.height - 1, 1);
    const f = (p) => [round(p[0] * sx), round(p[1] * sy)];
    out.arrows.forEach((a) => { a.start = f(a.start); a.end = f(a.end); });
    out.tracks = out.tracks.map((t) => t.map(f));
    out.strokes.forEach((s) => { s.points = s.points.map(f); s.radius = round(s.radius * Math.max(sx, sy)); });
  }
  out.width = width;
  out.height = height;
  return out;
}

export function distance(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}

export function distanceToSegment(p, a, b) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  const t = len2 ? Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2)) : 0;
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

/**
 * What is under point p (picture pixels) within tol pixels: handles first, then bodies; newest items first.
 * Returns {kind: "arrow"|"track", index, part: "start"|"end"|"body"|<point index>} or null.
 */
export function hitTest(d, p, tol) {
  for (let i = d.arrows.length - 1; i >= 0; i--) {
    const a = d.arrows[i];
    if (distance(p, a.end) <= tol) return { kind: "arrow", index: i, part: "end" };
    if (distance(p, a.start) <= tol) return { kind: "arrow", index: i, part: "start" };
  }
  for (let i = d.tracks.length - 1; i >= 0; i--) {
    const t = d.tracks[i];
    for (let j = t.length - 1; j >= 0; j--) if (distance(p, t[j]) <= tol) return { kind: "track", index: i, part: j };
  }
  for (let i = d.arrows.length - 1; i >= 0; i--) {
    if (distanceToSegment(p, d.arrows[i].start, d.arrows[i].end) <= tol) return { kind: "arrow", index: i, part: "body" };
  }
  for (let i = d.tracks.length - 1; i >= 0; i--) {
    const t = d.tracks[i];
    for (let j = 1; j < t.length; j++) if (distanceToSegment(p, t[j - 1], t[j]) <= tol) return { kind: "track", index: i, part: "body" };
  }
  return null;
}

/** Move the part of the item `hit` names by (dx, dy) pixels, starting from `base` (a clone taken at pointer-down). */
export function moveHit(d, base, hit, dx, dy, clamp) {
  const mv = (p) => clamp([p[0] + dx, p[1] + dy]);
  if (hit.kind === "arrow") {
    const a = d.arrows[hit.index];
    const b = base.arrows[hit.index];
    if (hit.part === "start" || hit.part === "body") a.start = mv(b.start);
    if (hit.part === "end" || hit.part === "body") a.end = mv(b.end);
  } else if (hit.kind === "track") {
    const b = base.tracks[hit.index];
    if (hit.part === "body") d.tracks[hit.index] = b.map(mv);
    else d.tracks[hit.index][hit.part] = mv(b[hit.part]);
  }
}

export function removeHit(d, hit) {
  if (hit.kind === "arrow") d.arrows.splice(hit.index, 1);
  else if (hit.kind === "track") d.tracks.splice(hit.index, 1);
}

/** Drop points closer than minStep pixels to the previous kept point (the last point is always kept). */
export function simplify(points, minStep) {
  if (points.length <= 2) return points.slice();
  const out = [points[0]];
  for (let i = 1; i < points.length - 1; i++) if (distance(points[i], out[out.length - 1]) >= minStep) out.push(points[i]);
  const last = points[points.length - 1];
  if (distance(last, out[out.length - 1]) > 0) out.push(last);
  return out;
}
