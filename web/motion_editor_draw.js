// ImageDynamics motion editor: drawing arrows, tracks, brush strokes and frame positions on a 2D canvas.
//
// Coordinates are picture pixels (pixel centres on integers: callers translate by half a pixel); `k` is picture
// pixels per layout pixel, so lines and handles keep their on-screen size. The editor caches what these draw
// and redraws only what moves on top of it.
//
// This file is loaded by ComfyUI as an extension module too (every .js under web/ is); it only exports.
import * as M from "./motion_editor_model.js";

export const COLORS = {
  arrow: "#ffcc33", track: "#33d6ff", selected: "#ff5577", warning: "#ff7b54", brush: "rgb(80, 255, 160)",
  ghost: "#ffffff", outline: "rgba(0,0,0,0.6)",
};
export const BRUSH_ALPHA = 0.38;
export const HANDLE_PX = 5; // handle radius, layout pixels
export const LABEL_LIMIT = 150; // more arrows than this: no per-arrow labels (unreadable, and slow to draw)
export const DENSE_POINTS = 1500; // more points than this: the dense style

function headPath(ctx, from, to, len) {
  const ang = Math.atan2(to[1] - from[1], to[0] - from[0]);
  ctx.moveTo(to[0], to[1]);
  ctx.lineTo(to[0] - len * Math.cos(ang - 0.45), to[1] - len * Math.sin(ang - 0.45));
  ctx.lineTo(to[0] - len * Math.cos(ang + 0.45), to[1] - len * Math.sin(ang + 0.45));
  ctx.closePath();
}

// Skia rasterises one path of thousands of thick, crossing lines far slower than each line alone (seconds
// against tenths), while one path of 1-pixel hairlines is fastest of all: so normal items are stroked one by one,
// and a dense drawing is drawn as batched hairlines with small square handles (the edited item stays full style).

function polyline(ctx, pts) {
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
}

function shadowed(ctx, pts, color, k) {
  ctx.beginPath();
  polyline(ctx, pts);
  ctx.strokeStyle = COLORS.outline;
  ctx.lineWidth = 5 * k;
  ctx.stroke();
  ctx.strokeStyle = color;
  ctx.lineWidth = 2.5 * k;
  ctx.stroke();
}

function head(ctx, from, to, len, color) {
  if (!(M.distance(from, to) > 0)) return;
  ctx.beginPath();
  headPath(ctx, from, to, len);
  ctx.fillStyle = color;
  ctx.fill();
}

function handle(ctx, p, r, fill, k) {
  ctx.beginPath();
  ctx.arc(p[0], p[1], r, 0, 2 * Math.PI);
  ctx.fillStyle = fill;
  ctx.fill();
  ctx.strokeStyle = "#000";
  ctx.lineWidth = k;
  ctx.stroke();
}

function hairlines(ctx, lists, color) {
  ctx.beginPath();
  for (const pts of lists) polyline(ctx, pts);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1;
  ctx.stroke();
}

function squares(ctx, points, size, color) {
  ctx.fillStyle = color;
  for (const p of points) ctx.fillRect(p[0] - size / 2, p[1] - size / 2, size, size);
}

function label(ctx, text, at, k, color) {
  ctx.font = `${Math.round(11 * k)}px sans-serif`;
  ctx.fillStyle = "#000";
  ctx.fillText(text, at[0] + k, at[1] + k);
  ctx.fillStyle = color;
  ctx.fillText(text, at[0], at[1]);
}

/** Whether a drawing is drawn in the dense style (more points than reads well, or draws fast, at full style). */
export function isDense(d) {
  let n = 2 * d.arrows.length;
  for (const t of d.tracks) n += t.points.length;
  return n > DENSE_POINTS;
}

/**
 * Arrows in one colour. `labels`: null, or per-arrow label texts; `warn`: per-arrow booleans (label colour);
 * `dense`: the fast style.
 */
export function drawArrows(ctx, arrows, k, color, labels = null, warn = null, dense = false) {
  if (dense) {
    hairlines(ctx, arrows.map((a) => [a.start, a.end]), color);
    for (const a of arrows) head(ctx, a.start, a.end, 6 * k, color);
    squares(ctx, arrows.map((a) => a.start), 2.5 * k, color);
    return;
  }
  arrows.forEach((a, i) => {
    shadowed(ctx, [a.start, a.end], color, k);
    head(ctx, a.start, a.end, 12.6 * k, color);
    handle(ctx, a.start, HANDLE_PX * k, "rgba(0,0,0,0.5)", k);
    handle(ctx, a.end, HANDLE_PX * k, color, k);
    if (labels) label(ctx, labels[i], [a.end[0] + 7 * k, a.end[1] - 5 * k], k, warn?.[i] ? COLORS.warning : color);
  });
}

/** Tracks in one colour; `withPoints` adds a handle on every point (the selected track); `labels` per track. */
export function drawTracks(ctx, tracks, k, color, withPoints = false, labels = null, dense = false) {
  if (dense) {
    hairlines(ctx, tracks.map((t) => t.points), color);
    for (const t of tracks) if (t.points.length > 1) head(ctx, t.points[t.points.length - 2], t.points[t.points.length - 1], 6 * k, color);
    squares(ctx, tracks.map((t) => t.points[0]), 2.5 * k, color);
    return;
  }
  tracks.forEach((t, i) => {
    const pts = t.points;
    shadowed(ctx, pts, color, k);
    if (pts.length > 1) head(ctx, pts[pts.length - 2], pts[pts.length - 1], 12.6 * k, color);
    handle(ctx, pts[0], HANDLE_PX * k, "rgba(0,0,0,0.5)", k);
    if (withPoints) for (const p of pts.slice(1)) handle(ctx, p, HANDLE_PX * 0.6 * k, color, k);
    if (labels?.[i]) label(ctx, labels[i], [pts[0][0] + 7 * k, pts[0][1] + 14 * k], k, color);
  });
}

/**
 * Where items are at one frame: a ring at the position, joined to the item's start by a thin dashed line.
 * `positions`: [[from, at], ...] picture pixels.
 */
export function drawPositions(ctx, positions, k, dense = false) {
  if (!positions.length) return;
  if (dense) {
    squares(ctx, positions.map(([, at]) => at), 3 * k, COLORS.ghost);
    return;
  }
  for (const [from, at] of positions) {
    ctx.beginPath();
    ctx.moveTo(from[0], from[1]);
    ctx.lineTo(at[0], at[1]);
    ctx.setLineDash([3 * k, 3 * k]);
    ctx.strokeStyle = COLORS.ghost;
    ctx.lineWidth = k;
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.arc(at[0], at[1], 4 * k, 0, 2 * Math.PI);
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 3 * k;
    ctx.stroke();
    ctx.strokeStyle = COLORS.ghost;
    ctx.lineWidth = 1.5 * k;
    ctx.stroke();
  }
}

function strokeStyle(ctx, s) {
  ctx.globalCompositeOperation = s.erase ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = COLORS.brush;
  ctx.lineWidth = 2 * s.radius + 1;
}

/**
 * Paint brush strokes (opaque; the editor shows the layer at BRUSH_ALPHA): a disc at every point, and a thick
 * segment only between points farther apart than the radius (a drawn stroke's points are a pixel apart, and
 * discs are much faster than one long thick polyline).
 */
export function paintStrokes(ctx, strokes) {
  ctx.lineCap = "round";
  for (const s of strokes) {
    strokeStyle(ctx, s);
    const r = s.radius + 0.5;
    const pts = s.points;
    for (let i = 0; i < pts.length; i++) {
      ctx.beginPath();
      ctx.arc(pts[i][0], pts[i][1], r, 0, 2 * Math.PI);
      ctx.fill();
      if (i > 0 && M.distance(pts[i - 1], pts[i]) > s.radius / 2) {
        ctx.beginPath();
        ctx.moveTo(pts[i - 1][0], pts[i - 1][1]);
        ctx.lineTo(pts[i][0], pts[i][1]);
        ctx.stroke();
      }
    }
  }
  ctx.globalCompositeOperation = "source-over";
}

/** Paint the newest piece of a stroke being drawn (its last two points, or its first dot). */
export function paintStrokeTip(ctx, s) {
  const n = s.points.length;
  paintStrokes(ctx, [{ ...s, points: n > 1 ? s.points.slice(n - 2) : s.points }]);
}

export function drawRing(ctx, p, r, k) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = k;
  ctx.beginPath();
  ctx.arc(p[0], p[1], r, 0, 2 * Math.PI);
  ctx.stroke();
}
