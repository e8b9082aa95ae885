"""A trainer run as the README says (``--out ComfyUI/models/motion_models/...``) adds exactly one model to ComfyUI."""
from __future__ import annotations

from media import clip_path

from imagedynamics.train.common import default_work_dir


def test_training_into_the_models_folder_lists_only_the_trained_file_in_load_motion_model(comfy, one_thread):
    from imagedynamics.train.renderer import main

    folder = comfy.base_dir / "models" / "motion_models" / "trained_here"
    out = folder / "renderer.safetensors"
    # default options, except a tiny model trained for a few steps on one clip (no --work-dir)
    code = main(["--videos", str(clip_path("carphone_pristine")), "--out", str(out), "--preset", "tiny",
                 "--size", "64", "--long-side", "64", "--max-frames-per-video", "8", "--steps", "3", "--batch", "2"])
    assert code == 0 and out.exists()
    work = default_work_dir(out)
    assert list(work.rglob("*.safetensors")), "the run's caches are in its work folder"  # else the test proves nothing
    spec = comfy.get("/object_info/LoadMotionModel")["LoadMotionModel"]["input"]["required"]["model_name"]
    listed = spec[0] if isinstance(spec[0], list) else spec[1]["options"]
    assert [name for name in listed if name.startswith("trained_here")] == ["trained_here/renderer.safetensors"]
    assert not [p for p in folder.rglob("*") if p != out], sorted(folder.rglob("*"))
