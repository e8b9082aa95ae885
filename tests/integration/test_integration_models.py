"""LoadMotionModel in the real server: hostile checkpoints are refused fast and without memory, and the models it
loads are freed with ComfyUI's own caches (POST /free)."""
from __future__ import annotations

import time

import pytest
from comfy_host import PromptFailed

WORKFLOW = "learned_renderer"  # LoadImage ... LoadMotionModel ("3") -> SoftmaxSplatRender ("4") -> Save ("5")


def _status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (kB) of a process, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in status) if k in ("VmRSS", "VmHWM")}


def _reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS; False where the kernel does not allow it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _execution_seconds(entry: dict) -> float:
    """From the prompt's start to its end (success or error), by the server's own message timestamps."""
    stamps = {kind: data["timestamp"] for kind, data in entry["status"]["messages"] if "timestamp" in data}
    end = stamps.get("execution_error", stamps.get("execution_success"))
    return (end - stamps["execution_start"]) / 1000


@pytest.fixture
def renderer_prompt(load_workflow, prepare_workflow):
    def make(model_name: str) -> dict:
        prompt = prepare_workflow(WORKFLOW, load_workflow(WORKFLOW))
        prompt["3"]["inputs"]["model_name"] = model_name
        return prompt
    return make


def _hostile(path, family: str, config: dict) -> None:
    import torch

    from imagedynamics.models.checkpoint import save_checkpoint

    save_checkpoint(path, {"x": torch.zeros(1)}, family, config)
    assert path.stat().st_size < 1024


@pytest.mark.parametrize("family, config, expected", [
    # the files: 32,768 channels (432 bytes drove the server past 9 GB), 200,000 renderer blocks
    ("gid", {"model": {"unet": {"block_out_channels": [32768] * 4}}}, "must be an integer in [1, 4096]"),
    ("renderer", {"channels": [8, 8, 16], "blocks": 200_000}, "blocks must be an integer in [0, 32]"),
    # within the limits but far from the file: 4,096 channels at every level, refused by the meta-device check
    ("renderer", {"channels": [4096] * 6, "blocks": 32}, "the file does not match its config"),
])
def test_a_tiny_checkpoint_asking_for_a_huge_model_is_refused_fast(comfy, renderer_prompt, motion_model_file,
                                                                  family, config, expected):
    motion_model_file("renderer_tiny.safetensors")
    name = f"hostile_{family}_{len(str(config))}.safetensors"
    _hostile(comfy.base_dir / "models" / "motion_models" / name, family, config)
    pid = comfy.process.pid
    before = _status(pid)["VmRSS"]
    exact_peak = _reset_peak(pid)
    with pytest.raises(PromptFailed) as caught:
        comfy.run(renderer_prompt(name))
    after = _status(pid)
    message = str(caught.value)
    assert "LoadMotionModel" in message and "model_name" in message and expected in message, message
    assert _execution_seconds(caught.value.details) < 1.0
    growth_mb = ((after["VmHWM"] if exact_peak else after["VmRSS"]) - before) / 1024
    assert growth_mb < 100, growth_mb
    comfy.run(renderer_prompt("renderer_tiny.safetensors"))  # the server keeps serving: the next prompt runs


def _small_render_prompt(load_workflow, model_name: str) -> dict:
    """The learned-renderer graph on a 64 x 64 picture for 2 frames: the model's size, not its compute, matters."""
    prompt = load_workflow(WORKFLOW)
    prompt["6"] = {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "area", "width": 64,
                                                          "height": 64, "crop": "disabled"}}
    drawing = prompt["2"]["inputs"]
    drawing.pop("mask", None)
    drawing.update(image=["6", 0], num_frames=2, trajectories='{"tracks": [[[10, 30], [14, 34], [18, 40]]]}')
    prompt["4"]["inputs"]["image"] = ["6", 0]
    prompt["3"]["inputs"]["model_name"] = model_name
    return prompt


def test_free_drops_the_loaded_models(comfy, load_workflow):
    """A ~230 MB renderer is in the server's memory while it renders; after POST /free (unload models and free
    memory) the memory is given back: LoadMotionModel keeps no model that ComfyUI's caches have let go of."""
    import torch

    from imagedynamics.models import renderer
    from imagedynamics.models.renderer import ImageRenderer, ImageRendererConfig

    name = "renderer_wide.safetensors"
    path = comfy.base_dir / "models" / "motion_models" / name
    if not path.exists():
        # the weights sit in the coarsest of six levels (2 x 2 pixels at 64 x 64): a big model that renders fast
        with torch.device("meta"):
            wide = ImageRenderer(ImageRendererConfig(channels=(8, 8, 8, 8, 8, 1024), blocks=2))
        wide = wide.to_empty(device="cpu")
        for tensor in wide.state_dict().values():
            tensor.zero_()  # zero weights: the decoder adds nothing, the frames are the pixel renderer's
        renderer.save(path, wide)
    size_mb = path.stat().st_size / 2**20
    assert size_mb > 150
    pid = comfy.process.pid
    comfy.post("/free", {"unload_models": True, "free_memory": True})
    time.sleep(1.0)
    baseline = _status(pid)["VmRSS"] / 1024
    exact_peak = _reset_peak(pid)
    comfy.run(_small_render_prompt(load_workflow, name))
    if exact_peak:
        # the model was really in memory. Not 0.8: heap pages freed earlier but kept by the allocator are already
        # in the baseline and get reused (CI measured 0.67 of the file's size on a server that had run other tests)
        assert _status(pid)["VmHWM"] / 1024 - baseline > 0.5 * size_mb
    comfy.post("/free", {"unload_models": True, "free_memory": True})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rss = _status(pid)["VmRSS"] / 1024
        if rss - baseline < 0.3 * size_mb:
            break
        time.sleep(0.5)
    assert rss - baseline < 0.3 * size_mb, (baseline, rss, size_mb)
