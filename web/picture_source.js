// ImageDynamics editors: which picture a node works on, found in the graph, and loaded for drawing on.
//
// The picture is known when the node's input comes, through reroutes and other nodes (an IMAGE input is
// followed upstream: resizes, crops, colour nodes, the spectral sampler...), from a Load Image node (its file,
// live); the motion editor also shows, after a run, the picture its node reported (see motion_editor.js). The
// editors draw in picture pixels, so the size matters: a file seen through a node that may resize it is marked
// approximate (the node rescales a drawing made at another size, see ops/trajectories).
import { api } from "../../scripts/api.js";

const MAX_HOPS = 32;
const TINT = "rgba(90, 170, 255, 0.22)";

export function viewUrl(filename, type = "input", subfolder = "") {
  const params = new URLSearchParams({ filename, type, subfolder });
  return api.apiURL(`/view?${params}`);
}

/** "sub/name.png [output]" (a LoadImage value) -> /view URL. */
export function urlFromImageValue(value) {
  if (typeof value !== "string" || !value) return null;
  let type = "input";
  let name = value.trim();
  const m = name.match(/^(.*) \[(input|output|temp)\]$/);
  if (m) [, name, type] = m;
  const slash = name.lastIndexOf("/");
  const subfolder = slash >= 0 ? name.slice(0, slash) : "";
  return viewUrl(slash >= 0 ? name.slice(slash + 1) : name, type, subfolder);
}

function isReroute(node) {
  return node?.type === "Reroute" || node?.comfyClass === "Reroute";
}

/** The node feeding input `name` of `node` (native and node reroutes skipped), or null. */
export function inputNode(node, name) {
  const slot = node?.inputs?.findIndex((i) => i.name === name) ?? -1;
  let up = slot >= 0 ? node.getInputNode(slot) : null;
  for (let hops = 0; up && hops < MAX_HOPS && isReroute(up); hops++) up = up.getInputNode(0);
  return up ?? null;
}

/** Nodes fed by the output of `node` named or typed `name` (through node reroutes). */
export function outputNodes(node, name) {
  const out = [];
  const visit = (n, slot, depth) => {
    for (const id of n.outputs?.[slot]?.links ?? []) {
      const link = n.graph?.getLink?.(id);
      const target = link && n.graph.getNodeById(link.target_id);
      if (!target) continue;
      if (isReroute(target) && depth < MAX_HOPS) visit(target, 0, depth + 1);
      else out.push(target);
    }
  };
  let slot = node?.outputs?.findIndex((o) => o.name === name) ?? -1;
  if (slot < 0) slot = node?.outputs?.findIndex((o) => o.type === name) ?? -1;
  if (slot >= 0) visit(node, slot, 0);
  return out;
}

export function widgetValue(node, name) {
  return node?.widgets?.find((w) => w.name === name)?.value;
}

function loadImageFile(node) {
  if (!/LoadImage/.test(node.comfyClass ?? node.type ?? "")) return null;
  return urlFromImageValue(widgetValue(node, "image"));
}

/**
 * The picture upstream of input `name`: {url, exact, via: [titles of the nodes passed], from: "file"} or null.
 * `exact` is false when the file was reached through a node other than a reroute (it may change the size). What
 * other nodes showed after a run is not used: ComfyUI keeps it by node id, even across graphs.
 */
export function upstreamPicture(node, name) {
  const via = [];
  let up = inputNode(node, name);
  for (let hops = 0; up && hops < MAX_HOPS; hops++) {
    const file = loadImageFile(up);
    if (file) return { url: file, exact: !via.length, via, from: "file" };
    const image = up.inputs?.find((i) => i.type === "IMAGE" && i.link != null);
    if (!image) return null;
    via.push(up.title ?? up.type);
    up = inputNode(up, image.name);
  }
  return null;
}

/** [a canvas of the picture's size, width, height]. */
function canvasFor(img) {
  const c = document.createElement("canvas");
  c.width = img.naturalWidth;
  c.height = img.naturalHeight;
  return [c, c.width, c.height];
}

/**
 * The picture's colours without its alpha, as ComfyUI's IMAGE sees them (Load Image drops alpha into a MASK).
 * A 2D canvas would lose the colour of fully transparent pixels (premultiplied alpha); WebGL can upload the
 * image unpremultiplied. Returns a canvas, or null when WebGL is unavailable.
 */
function opaqueCopy(img) {
  const [out, w, h] = canvasFor(img);
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
  const [layer, w, h] = canvasFor(img);
  const ctx = layer.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(img, 0, 0);
  const alpha = ctx.getImageData(0, 0, w, h).data;
  let transparent = false;
  for (let i = 3; i < alpha.length; i += 4) if (alpha[i] < 255) { transparent = true; break; }
  if (!transparent) return null;
  ctx.globalCompositeOperation = "source-out"; // colour only where the picture is not opaque
  ctx.fillStyle = TINT;
  ctx.fillRect(0, 0, w, h);
  return layer;
}

/**
 * Keeps the picture of one URL loaded: `update(url)` is cheap when the URL did not change; `onChange()` runs when
 * a new picture is ready (or failed: `error` says why). `picture` is {img, opaque, tint, url, width, height}.
 */
export class PictureLoader {
  constructor(onChange) {
    this.onChange = onChange;
    this.url = null;
    this.picture = null;
    this.error = null;
  }

  update(url) {
    if (url === this.url) return;
    this.url = url;
    this.error = null;
    if (!url) {
      this.picture = null;
      this.onChange();
      return;
    }
    const img = new Image();
    img.onload = () => {
      if (this.url !== url) return;
      let opaque = null;
      let tint = null;
      try {
        opaque = opaqueCopy(img);
        tint = transparencyTint(img);
      } catch (e) {
        console.warn("[ImageDynamics] picture layers", e);
      }
      this.picture = { img, opaque, tint, url, width: img.naturalWidth, height: img.naturalHeight };
      this.onChange();
    };
    img.onerror = () => {
      if (this.url !== url) return;
      this.picture = null;
      this.error = `could not load the picture (${url})`;
      this.onChange();
    };
    img.src = url;
  }
}
