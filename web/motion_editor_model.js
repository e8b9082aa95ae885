// ImageDynamics motion editor: the drawing model (no DOM, no ComfyUI).
//
// A drawing is what the SparseTrajectoryToFlow "trajectories" widget holds, in the picture's pixel coordinates
// (x right, y down, pixel centres on integers), in the pack's canonical JSON that ops/trajectories parses:
//
//   {"coordinates": "pixels", "width": 512, "height": 512,
//    "arrows": [{"start": [x, y], "end": [x, y], "speed": 1.0}, ...],
//    "tracks": [[[x, y], [x, y], ...],                                              (a bare point list), or
//               {"points": [[x, y], ...], "start": 4, "end": 20, "easing": "ease-in-out"}, ...],   (timed)
//    "brush": {"strokes": [{"points": [[x, y], ...], "radius": 12, "erase": false}, ...]}}
//
// A timed track sits at its first point until frame `start` (default 0), travels its path until frame `end`
// (default num_frames - 1) with the easing applied to the path parameter, then stays at its last point.
//
// Internally: {arrows: [{start, end, speed}], tracks: [{points, start, end, easing}] (start/end null when not set),
//              strokes: [{points, radius, erase}], width, height (null when unknown), brushMode (passed through)}.
//
// This file is loaded by ComfyUI as an extension module too (every .js under web/ is); it only exports.

export const DECIMALS = 1;
export const EASINGS = ["linear", "ease-in", "ease-out", "ease-in-out"];

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

export function newTrack(points, timing = {}) {
  return { points, start: timing.start ?? null, end: timing.end ?? null, easing: timing.easing ?? "linear" };
}

export function hasTiming(t) {
  return t.start !== null || t.end !== null || t.easing !== "linear";
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

function frameIndex(v, label, key) {
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !isFinite(v) || v < 0) fail(`${label}: '${key}' must be a frame index >= 0`);
  return v;
}

function track(t, i) {
  const label = `track ${i}`;
  if (t && typeof t === "object" && !Array.isArray(t)) {
    const unknown = Object.keys(t).filter((k) => !["points", "start", "end", "easing"].includes(k));
    if (unknown.length) fail(`${label}: unknown key "${unknown[0]}"`);
    if (!Array.isArray(t.points) || !t.points.length) fail(`${label}: expected {"points": [[x, y], ...]}`);
    const easing = t.easing ?? "linear";
    if (!EASINGS.includes(easing)) fail(`${label}: easing must be one of ${EASINGS.join(", ")}`);
    const timed = newTrack(t.points.map((p) => point(p, label)), {
      start: frameIndex(t.start, label, "start"), end: frameIndex(t.end, label, "end"), easing });
    if (timed.start !== null && timed.end !== null && !(timed.end > timed.start)) fail(`${label}: 'end' must come after 'start'`);
    return timed;
  }
  if (!Array.isArray(t) || !t.length) fail(`${label}: expected a list of points`);
  return newTrack(t.map((p) => point(p, label)));
}

function stroke(s, i) {
  if (!s || typeof s !== "object" || !Array.isArray(s.points)) fail(`brush stroke ${i}: expected {"points": [...]}`);
  const radius = s.radius === undefined ? 12 : Number(s.radius);
  return { points: s.points.map((p) => point(p, `brush stroke ${i}`)), radius: round(radius), erase: !!s.erase };
}

const KNOWN = new Set(["version", "coordinates", "width", "height", "size", "arrows", "tracks", "brush"]);

/**
 * Parse the widget text as the pack's JSON in pixels. Returns {drawing}, or {error} (never throws) when the text is
 * something else: another accepted format (see motion_editor_formats.js) or a mistake.
 */
export function parseDrawing(text) {
  const src = (text ?? "").trim();
  if (!src) return { drawing: emptyDrawing() };
  let obj;
  try {
    obj = JSON.parse(src);
  } catch (e) {
    return { error: "the text is not JSON" };
  }
  try {
    const d = emptyDrawing();
    if (Array.isArray(obj)) {
      // A bare list of arrows ({start, end} objects) or of tracks ([[x, y], ...]).
      if (obj.length && obj[0] && typeof obj[0] === "object" && !Array.isArray(obj[0]) && "start" in obj[0]) {
        d.arrows = obj.map(arrow);
      } else d.tracks = obj.map(track);
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
    return { error: e.message };
  }
}

const num = (v) => JSON.stringify(round(v));
const pt = (p) => `[${num(p[0])}, ${num(p[1])}]`;

function trackText(t) {
  const points = `[${t.points.map(pt).join(", ")}]`;
  if (!hasTiming(t)) return points;
  let text = `{"points": ${points}`;
  if (t.start !== null) text += `, "start": ${JSON.stringify(t.start)}`;
  if (t.end !== null) text += `, "end": ${JSON.stringify(t.end)}`;
  if (t.easing !== "linear") text += `, "easing": ${JSON.stringify(t.easing)}`;
  return `${text}}`;
}

/** Canonical JSON text, one item a line (easy to read and to edit by hand in the text box). */
export function serializeDrawing(d) {
  const lines = ['{"coordinates": "pixels"'];
  if (d.width && d.height) lines[0] += `, "width": ${d.width | 0}, "height": ${d.height | 0}`;
  const list = (key, items) => {
    if (!items.length) return `"${key}": []`;
    return `"${key}": [\n  ${items.join(",\n  ")}]`;
  };
  lines.push(list("arrows", d.arrows.map((a) => `{"start": ${pt(a.start)}, "end": ${pt(a.end)}, "speed": ${JSON.stringify(Number(a.speed))}}`)));
  lines.push(list("tracks", d.tracks.map(trackText)));
  if (d.strokes.length) {
    const strokes = d.strokes.map((s) => `{"points": [${s.points.map(pt).join(", ")}], "radius": ${num(s.radius)}, "erase": ${!!s.erase}}`);
    const mode = d.brushMode === undefined ? "" : `"mode": ${JSON.stringify(d.brushMode)}, `;
    lines.push(`"brush": {${mode}"strokes": [\n  ${strokes.join(",\n  ")}]}`);
  }
  return lines.join(",\n") + "}";
}

export function cloneTrack(t) {
  return { points: t.points.map((p) => [...p]), start: t.start, end: t.end, easing: t.easing };
}

export function clone(d) {
  return {
    arrows: d.arrows.map((a) => ({ start: [...a.start], end: [...a.end], speed: a.speed })),
    tracks: d.tracks.map(cloneTrack),
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
    out.tracks.forEach((t) => { t.points = t.points.map(f); });
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

/** Whether the segment a-b comes within tol of p: a cheap box test first (most segments are far away). */
function nearSegment(p, a, b, tol) {
  if (Math.min(a[0], b[0]) - tol > p[0] || Math.max(a[0], b[0]) + tol < p[0]) return false;
  if (Math.min(a[1], b[1]) - tol > p[1] || Math.max(a[1], b[1]) + tol < p[1]) return false;
  return distanceToSegment(p, a, b) <= tol;
}

/**
 * What is under point p (picture pixels) within tol pixels: handles first, then bodies; newest items first.
 * Returns {kind: "arrow"|"track", index, part: "start"|"end"|"body"|<point index>} or null. One pass over the
 * points with a box test each (a drawing of 10,000 points takes well under a millisecond).
 */
export function hitTest(d, p, tol) {
  const near = (q) => Math.abs(q[0] - p[0]) <= tol && Math.abs(q[1] - p[1]) <= tol && distance(p, q) <= tol;
  for (let i = d.arrows.length - 1; i >= 0; i--) {
    const a = d.arrows[i];
    if (near(a.end)) return { kind: "arrow", index: i, part: "end" };
    if (near(a.start)) return { kind: "arrow", index: i, part: "start" };
  }
  for (let i = d.tracks.length - 1; i >= 0; i--) {
    const t = d.tracks[i].points;
    for (let j = t.length - 1; j >= 0; j--) if (near(t[j])) return { kind: "track", index: i, part: j };
  }
  for (let i = d.arrows.length - 1; i >= 0; i--) {
    if (nearSegment(p, d.arrows[i].start, d.arrows[i].end, tol)) return { kind: "arrow", index: i, part: "body" };
  }
  for (let i = d.tracks.length - 1; i >= 0; i--) {
    const t = d.tracks[i].points;
    for (let j = 1; j < t.length; j++) if (nearSegment(p, t[j - 1], t[j], tol)) return { kind: "track", index: i, part: "body" };
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
    const b = base.tracks[hit.index].points;
    if (hit.part === "body") d.tracks[hit.index].points = b.map(mv);
    else d.tracks[hit.index].points[hit.part] = mv(b[hit.part]);
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

// ------------------------------------------------------------------------------------------------ motion over time

/** The cubic easings of ops/trajectories (CSS-like): u in [0, 1] -> path parameter s in [0, 1]. */
export function ease(name, u) {
  const v = Math.min(Math.max(u, 0), 1);
  if (name === "ease-in") return v ** 3;
  if (name === "ease-out") return 1 - (1 - v) ** 3;
  if (name === "ease-in-out") return v < 0.5 ? 4 * v ** 3 : 1 - (2 - 2 * v) ** 3 / 2;
  return v;
}

/** [start, end] frames of a track in a clip of numFrames frames (the defaults: 0 and numFrames - 1). */
export function trackFrames(t, numFrames) {
  return [t.start ?? 0, t.end ?? numFrames - 1];
}

/** Path parameter s in [0, 1] of a track at `frame`: 0 until start, eased between start and end, 1 after. */
export function trackParameter(t, frame, numFrames) {
  const [start, end] = trackFrames(t, numFrames);
  if (!(end > start)) return frame >= end ? 1 : 0;
  return ease(t.easing, (frame - start) / (end - start));
}

/**
 * Where a track's region is at `frame`: its polyline at parameter s, point k of L sitting at s = k / (L - 1) (the
 * backend interpolates these knots with a monotone cubic; a straight line between them is the preview).
 */
export function trackPositionAt(t, frame, numFrames) {
  const pts = t.points;
  if (pts.length === 1) return [...pts[0]];
  const u = trackParameter(t, frame, numFrames) * (pts.length - 1);
  const k = Math.min(Math.floor(u), pts.length - 2);
  const f = u - k;
  return [pts[k][0] + f * (pts[k + 1][0] - pts[k][0]), pts[k][1] + f * (pts[k + 1][1] - pts[k][1])];
}

/** Length of a polyline, pixels. */
export function pathLength(points) {
  let n = 0;
  for (let i = 1; i < points.length; i++) n += distance(points[i - 1], points[i]);
  return n;
}

/** An arrow's velocity in pixels per frame: its vector times its speed times `gain` (strength x loop speed). */
export function arrowVelocity(a, gain = 1) {
  const k = a.speed * gain;
  return [(a.end[0] - a.start[0]) * k, (a.end[1] - a.start[1]) * k];
}

/** Where the pixel under an arrow's start is after `frame` frames of straight-line motion at its velocity. */
export function arrowPositionAt(a, frame, gain = 1) {
  const v = arrowVelocity(a, gain);
  return [a.start[0] + v[0] * frame, a.start[1] + v[1] * frame];
}

/**
 * What each item does over a clip, in pixels, for the status line and the warnings.
 *
 * Args: drawing; clip {numFrames, gain (strength x loop speed), trackFrames (the node's own num_frames, for
 * tracks), width, height (the picture)}.
 * Returns {arrows: [{perFrame, total, tooLarge}], tracks: [{length, total, frames: [s, e], tooLarge}], largest}
 * where `total` is the displacement over the clip (px) and `tooLarge` marks a motion longer than the picture's
 * short side, which carries the region out of the picture or smears it over most of it.
 */
export function motionSummary(d, clip) {
  const limit = Math.min(clip.width, clip.height);
  const arrows = d.arrows.map((a) => {
    const v = arrowVelocity(a, clip.gain);
    const perFrame = Math.hypot(v[0], v[1]);
    const total = perFrame * clip.numFrames;
    return { perFrame, total, tooLarge: total > limit };
  });
  const tracks = d.tracks.map((t) => {
    const length = pathLength(t.points);
    const total = length * clip.strength;
    return { length, total, frames: trackFrames(t, clip.trackFrames), tooLarge: total > limit };
  });
  let largest = null;
  arrows.forEach((m, i) => { if (!largest || m.total > largest.total) largest = { kind: "arrow", index: i, total: m.total }; });
  tracks.forEach((m, i) => { if (!largest || m.total > largest.total) largest = { kind: "track", index: i, total: m.total }; });
  return { arrows, tracks, largest, limit };
}
