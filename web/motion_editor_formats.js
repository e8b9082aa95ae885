// ImageDynamics motion editor: the other trajectory formats SparseTrajectoryToFlow accepts (no DOM, no ComfyUI).
//
// The node reads Motion-I2V drag lines, KJNodes spline coordinates, DragNUWA / MotionCtrl point lists, arrow rows,
// the core's TRACKS and normalised coordinates as they are (ops/trajectories). The editor draws only the pack's
// JSON in pixels, so for such text it says what it is and offers to convert it, reading it the way the node does:
// the same detection order, normalised coordinates when declared or when every coordinate lies in [0, 1], and a
// Motion-I2V line's fifth number as the arrow's speed.
//
// This file is loaded by ComfyUI as an extension module too (every .js under web/ is); it only exports.
import * as M from "./motion_editor_model.js";

const LINE_SPLIT = /[,\s;]+/;

function isNumber(v) {
  return typeof v === "number" && isFinite(v);
}

function isPointLike(p) {
  if (p && typeof p === "object" && !Array.isArray(p)) return "x" in p || "y" in p;
  return Array.isArray(p) && p.length === 2 && p.every((v) => !(v && typeof v === "object"));
}

function xy(p) {
  const q = Array.isArray(p) ? p : [p.x, p.y];
  if (!isNumber(q[0]) || !isNumber(q[1])) throw new Error(`expected [x, y] numbers, got ${JSON.stringify(p).slice(0, 40)}`);
  return [q[0], q[1]];
}

/** Items as the node collects them: {points: [[x, y], ...], speed, arrow} in the text's own coordinates. */
function linesItems(text) {
  const items = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const vals = line.split(LINE_SPLIT).filter(Boolean).map(Number);
    if (vals.some((v) => !isFinite(v))) throw new Error(`expected numbers 'x1,y1,x2,y2', got '${line.slice(0, 40)}'`);
    if (vals.length === 5) items.push({ points: [vals.slice(0, 2), vals.slice(2, 4)], speed: vals[4], arrow: true });
    else if (vals.length >= 4 && vals.length % 2 === 0) {
      const points = [];
      for (let i = 0; i < vals.length; i += 2) points.push([vals[i], vals[i + 1]]);
      items.push({ points, speed: 1, arrow: vals.length === 4 });
    } else throw new Error(`expected 4 numbers 'x1,y1,x2,y2' per line, got ${vals.length}`);
  }
  if (!items.length) throw new Error("no 'x1,y1,x2,y2' line");
  return items;
}

function arrowItem(o) {
  if (o && typeof o === "object" && !Array.isArray(o)) return { points: [xy(o.start), xy(o.end)], speed: o.speed ?? 1, arrow: true };
  if (o.length === 4 || o.length === 5) return { points: [[o[0], o[1]], [o[2], o[3]]], speed: o[4] ?? 1, arrow: true };
  return { points: [xy(o[0]), xy(o[1])], speed: o[2] ?? 1, arrow: true };
}

function loads(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    if (text.includes("'")) return JSON.parse(text.replace(/'/g, '"')); // KJNodes strings with single quotes
    throw e;
  }
}

/** A JSON list, as ops/trajectories' _collect_list reads it. Returns {items, name}. */
function listItems(obj, depth) {
  if (!obj.length) throw new Error("an empty list");
  const first = obj[0];
  if (obj.every((o) => typeof o === "string")) {
    const items = obj.flatMap((s) => collect(s, depth + 1).items);
    return { items, name: `KJNodes coordinate strings (${obj.length})` };
  }
  if (first && typeof first === "object" && !Array.isArray(first) && ("start" in first || "end" in first)) {
    return { items: obj.map(arrowItem), name: "a list of arrows" };
  }
  if (obj.length === 3 && isNumber(obj[2]) && obj.slice(0, 2).every(isPointLike)) {
    return { items: [arrowItem(obj)], name: "one arrow with a speed" };
  }
  if (isPointLike(first)) {
    const kj = first && !Array.isArray(first);
    return { items: [{ points: obj.map(xy), speed: 1, arrow: false }],
      name: kj ? `a KJNodes spline (${obj.length} points)` : `a DragNUWA / MotionCtrl point list (${obj.length} points)` };
  }
  if (Array.isArray(first) && (first.length === 4 || first.length === 5) && first.every(isNumber)) {
    return { items: obj.map(arrowItem), name: "arrow rows [x0, y0, x1, y1]" };
  }
  if (obj.every(isNumber) && (obj.length === 4 || obj.length === 5)) return { items: [arrowItem(obj)], name: "one arrow row" };
  const hasSpeed = (o) => Array.isArray(o) && o.length === 3 && isNumber(o[2]) && o.slice(0, 2).every(isPointLike);
  if (obj.some(hasSpeed)) return { items: obj.map(arrowItem), name: "arrow pairs with speeds" };
  const kj = obj.every((t) => Array.isArray(t) && t.length && t[0] && !Array.isArray(t[0]) && typeof t[0] === "object");
  return { items: obj.map((t) => ({ points: t.map(xy), speed: 1, arrow: false })),
    name: kj ? `KJNodes splines (${obj.length})` : `DragNUWA / MotionCtrl point lists (${obj.length} tracks)` };
}

/** {items, name, normalized (true/false/undefined = detect), size, brush, dropped} of any accepted text. */
function collect(text, depth = 0) {
  const src = text.trim();
  if (depth > 3) throw new Error("too deeply nested strings");
  if (!"[{\"'".includes(src[0])) return { items: linesItems(src), name: "Motion-I2V drag lines (x1,y1,x2,y2)" };
  const obj = loads(src);
  if (typeof obj === "string") return collect(obj, depth + 1);
  if (Array.isArray(obj)) return listItems(obj, depth);
  if (!obj || typeof obj !== "object") throw new Error("expected a list or an object");
  if ("track_path" in obj) {
    const path = obj.track_path; // [T, N, 2]
    if (!Array.isArray(path) || !path.length || !Array.isArray(path[0])) throw new Error("'track_path' must be [T, N, 2]");
    const items = path[0].map((_, n) => ({ points: path.map((frame) => xy(frame[n])), speed: 1, arrow: false }));
    return { items, name: `ComfyUI TRACKS (${items.length} tracks x ${path.length} frames)`, normalized: false,
      dropped: "track_visibility" in obj ? "the visibility flags" : "" };
  }
  const track = (t) => (Array.isArray(t) ? { points: t.map(xy) } : { ...t, points: t.points.map(xy) });
  const items = [...(obj.arrows ?? []).map(arrowItem), ...(obj.tracks ?? []).map((t) => ({ ...track(t), speed: 1, arrow: false }))];
  const declared = obj.coordinates;
  return {
    items,
    name: declared === "normalized" || declared === "normalised" ? "the pack's JSON in normalised coordinates (0..1)"
      : "the pack's JSON with visibility flags",
    normalized: declared === undefined ? undefined : declared !== "pixels",
    size: "width" in obj ? [obj.width, obj.height] : null,
    brush: obj.brush,
    dropped: obj.visibility ? "the visibility flags" : "",
    canonical: true,
  };
}

function allUnit(items) {
  return items.length > 0 && items.every((it) => it.points.every((p) => p[0] >= 0 && p[0] <= 1 && p[1] >= 0 && p[1] <= 1));
}

/**
 * What a text the editor cannot draw is: {name, dropped} for another accepted format (or the pack's JSON read as
 * normalised), {error} for text the node will refuse too, or null for the pack's JSON in pixels (the editor's own).
 * `own` is M.parseDrawing(text), when the caller has it.
 */
export function describe(text, own = M.parseDrawing(text)) {
  if (own.drawing) {
    const items = [...own.drawing.arrows.map((a) => ({ points: [a.start, a.end] })), ...own.drawing.tracks];
    const declared = /"coordinates"\s*:/.test(text);
    if (!declared && allUnit(items)) return { name: "coordinates between 0 and 1 (read as normalised)", dropped: "" };
    return null;
  }
  try {
    const found = collect(text);
    return { name: found.name, dropped: found.dropped ?? "" };
  } catch (e) {
    return { error: own.error === "the text is not JSON" ? e.message : own.error };
  }
}

/**
 * The text as a drawing in pixels of a width x height picture, read the way the node reads it: lines of 4 or 5
 * numbers become arrows (with their speed) when every line is one, else tracks (the node makes 2-point tracks of
 * arrows in mode "tracks", and arrows of tracks, first point to last, in mode "arrows", so both modes agree).
 */
export function convert(text, width, height) {
  const found = collect(text);
  const normalized = found.normalized ?? (!found.size && allUnit(found.items));
  let sx = 1;
  let sy = 1;
  if (normalized) [sx, sy] = [width - 1, height - 1];
  else if (found.size && (found.size[0] !== width || found.size[1] !== height)) {
    sx = (width - 1) / Math.max(found.size[0] - 1, 1);
    sy = (height - 1) / Math.max(found.size[1] - 1, 1);
  }
  const f = (p) => [M.round(Math.min(Math.max(p[0] * sx, 0), width - 1)), M.round(Math.min(Math.max(p[1] * sy, 0), height - 1))];
  const d = M.emptyDrawing(width, height);
  const arrows = found.canonical ? found.items.filter((it) => it.arrow) : found.items.every((it) => it.arrow) ? found.items : [];
  const tracks = found.canonical ? found.items.filter((it) => !it.arrow) : arrows.length ? [] : found.items;
  d.arrows = arrows.map((it) => ({ start: f(it.points[0]), end: f(it.points[it.points.length - 1]), speed: Number(it.speed) }));
  d.tracks = tracks.map((it) => {
    let pts = it.points;
    if (it.arrow && it.speed !== 1) { // a line with a speed, among polylines: its end moves with the speed
      const [a, b] = [pts[0], pts[pts.length - 1]];
      pts = [a, [a[0] + it.speed * (b[0] - a[0]), a[1] + it.speed * (b[1] - a[1])]];
    }
    return M.newTrack(pts.map(f), it);
  });
  if (found.brush?.strokes) {
    const r = normalized ? Math.max(width, height) - 1 : (sx + sy) / 2;
    d.strokes = found.brush.strokes.map((s) => ({ points: s.points.map((p) => f(xy(p))), radius: M.round((s.radius ?? 8) * r),
      erase: !!s.erase }));
    d.brushMode = found.brush.mode;
  }
  return d;
}
