"""Every node of the pack, driven through the real server with hostile and careless inputs.

The cases are generated from the server's ``/object_info``, so a new node or input is covered without touching
this file: NaN, +-inf and huge values in every FLOAT, the ends of every FLOAT's range, values outside every INT's
range, an unknown value in every COMBO, deep, empty and oversized text in every STRING, and empty and 1-pixel
pictures and masks in every IMAGE and MASK input (and a whole graph run on a 1-pixel picture). A bad value must be
refused with an error that names the node and the input (at validation, or from the node itself); a legal extreme
must either work or be refused by name. After each node's cases, a good prompt through that node must succeed.

Each node runs in the smallest graph that feeds it (a 32 x 24 picture, a few frames, one or two sampling steps,
random-weight tiny models), and each node's prompts are queued at once, so the server works through them without
waiting for the client.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np
import pytest
from comfy_host import PromptFailed
from PIL import Image

PACK_MODULE = "custom_nodes.comfyui-imagedynamics"
WIDTH, HEIGHT = 32, 24
PICTURE, ONE_PIXEL = "hostile_32x24.png", "hostile_1x1.png"
ARROWS = json.dumps({"arrows": [{"start": [8, 12], "end": [14, 12], "speed": 0.5}],
                     "tracks": [[[8, 12], [12, 13], [16, 12]]]})
LVMM = "hostile_lvmm_random.safetensors"
LONG_ANIMATION = "hostile_long_animation_tiny.safetensors"
STAGE1, FLOW_VAE, STAGE2 = ("motion_i2v_stage1_tiny.safetensors", "motion_i2v_flow_vae_tiny.safetensors",
                            "motion_i2v_stage2_tiny.safetensors")
SD15, VIDEO_MODEL = "tiny_sd15.safetensors", "tiny_cosmos_predict2_long_video.safetensors"
MODEL_FILES = {("PredictLatentMotion", "model"): LVMM, ("MotionI2VPredictFlow", "model"): STAGE1,
               ("MotionI2VPredictFlow", "flow_vae"): FLOW_VAE, ("MotionI2VAnimate", "motion_model"): STAGE2,
               ("LongAnimationMotion", "motion_model"): LONG_ANIMATION}
# Small settings for each node's good prompt (frames, steps): the hostile value replaces one input at a time.
SMALL = {
    "SparseTrajectoryToFlow": {"num_frames": 4, "trajectories": ARROWS},
    "TracksToSparseFlow": {"num_frames": 4},
    "EulerianMotion": {"num_frames": 4},
    "SpectralVolumeSampler": {"num_frequencies": 3, "period_frames": 6, "steps": 1},
    "SpectrumToMotion": {"num_frames": 4},
    "MotionFromVideo": {"max_frames": 3, "preset": "ultrafast"},
    "InteractiveDynamics": {"num_frames": 6, "hold_frames": 2, "x": 4.0, "y": 4.0},
    "PredictLatentMotion": {"steps": 1},
    "LongVideoReschedule": {"steps": 2, "num_segments": 2, "noise_prior": "none"},
    "LongVideoSchedule": {"num_segments": 2},
    "MotionI2VPredictFlow": {"steps": 1, "num_frames": 3},
    "MotionI2VAnimate": {"num_frames": 3},
    "SoftmaxSplatRender": {"chunk_size": 2},
    "LoopGuidance": {"recurrences": 1},
    "LongAnimationMotion": {"refine": False},
}
# Optional inputs a node needs to run at all (MotionI2VAnimate wants the picture as a latent or as image + vae).
NEEDED_OPTIONAL = {"MotionI2VAnimate": ("image", "vae"), "LongAnimationMotion": ("flow",)}
# Nodes whose good prompt cannot succeed in the test server, and the input their refusal must name: ComfyUI
# recognises an SVD file only at its released size (1.5 G parameters, tests/integration/tiny_svd.py), so
# LongAnimationMotion gets the tiny SD 1.5 MODEL and must refuse it by name; it runs on a tiny SVD built from
# ComfyUI's classes in tests/integration/test_integration_long_animation.py.
GOOD_PROMPT_REFUSED = {"LongAnimationMotion": "model"}
# Nodes with these inputs need a core model loaded (seconds per prompt on a CPU): their must-refuse cases get the
# cheapest values of these types (the checks come before the node uses them), and their legal extremes are left to
# their own tests; their good prompt and the 1-pixel graph use the real models.
HEAVY_TYPES = {"MODEL", "CLIP", "VAE", "CONDITIONING"}
WIDGETS = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
PACK_NODES: set[str] = set()  # filled from /object_info


# ----------------------------------------------------------------------------------------------- graphs


class Graph:
    """An API prompt under construction: nodes with their widget defaults from /object_info, inputs fed by the
    smallest graph that makes each socket type."""

    def __init__(self, object_info: dict, picture: str = PICTURE, cheap: bool = False):
        self.info, self.picture, self.cheap = object_info, picture, cheap
        self.nodes: dict[str, dict] = {}
        self._made: dict[tuple, list] = {}

    def add(self, class_type: str, **inputs) -> str:
        node_id = str(len(self.nodes) + 1)
        full = {}
        for group in ("required", "optional"):
            for name, spec in self.info[class_type]["input"].get(group, {}).items():
                if group == "required" or name in inputs:
                    default = widget_default(spec)
                    if default is not None:
                        full[name] = default
        full.update(inputs)
        self.nodes[node_id] = {"class_type": class_type, "inputs": full}
        return node_id

    def once(self, key: tuple, make) -> list:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def image(self) -> list:
        return self.once(("image",), lambda: [self.add("LoadImage", image=self.picture), 0])

    def size(self) -> tuple[int, int]:
        return (1, 1) if self.picture == ONE_PIXEL else (WIDTH, HEIGHT)

    def feed(self, kind: str, node: str, name: str) -> list:
        """A link that gives input ``name`` of ``node`` a small, valid value of socket type ``kind``."""
        w, h = self.size()
        if kind == "IMAGE" and (node, name) in (("MotionFromVideo", "frames"), ("PredictLatentMotion", "transfer_from")):
            return self.once(("clip",), lambda: [self.add("RepeatImageBatch", image=self.image(), amount=3), 0])
        if kind == "IMAGE":
            return self.image()
        if kind == "MASK":
            return self.once(("mask",), lambda: [self.add("SolidMask", value=1.0, width=w, height=h), 0])
        if kind == "DYN_FLOW":
            return self.once(("flow",), lambda: [self.add("SparseTrajectoryToFlow", image=self.image(),
                                                          **SMALL["SparseTrajectoryToFlow"]), 0])
        if kind == "TRACKS":
            return self.once(("tracks",), lambda: [self.add("SparseTrajectoryToFlow", image=self.image(),
                                                            mode="tracks", **SMALL["SparseTrajectoryToFlow"]), 2])
        if kind == "DYN_MOTION":
            return self.once(("motion",), lambda: [self.add("EulerianMotion", flow=self.feed("DYN_FLOW", "", ""),
                                                            num_frames=4), 0])
        if kind == "DYN_SPECTRUM":
            return self.once(("spectrum",), lambda: [self.add("SpectralVolumeSampler", image=self.image(),
                                                              **SMALL["SpectralVolumeSampler"]), 0])
        if kind == "DYN_CONTROL":
            return [self.add("TracksToSparseFlow", tracks=self.feed("TRACKS", "", ""), image=self.image(),
                             num_frames=4), 0]
        if kind == "DYN_GUIDANCE":
            return [self.add("LoopGuidance", recurrences=1), 0]
        if kind == "DYN_LONG_SCHEDULE":
            return [self.add("LongVideoSchedule", num_segments=2), 0]
        if kind == "DYN_MODEL":
            return [self.add("LoadMotionModel", model_name=MODEL_FILES[(node, name)]), 0]
        video = node == "LongVideoReschedule"
        if self.cheap and kind == "VAE":
            return self.once(("pixel vae",), lambda: [self.add("VAELoader", vae_name="pixel_space"), 0])
        if (self.cheap or video) and kind == "CONDITIONING":
            positive = self.once(("lotus",), lambda: [self.add("LotusConditioning"), 0])
            return positive if name == "positive" else [self.add("ConditioningZeroOut", conditioning=positive), 0]
        if (self.cheap or video) and kind == "MODEL":
            return self.once(("video",), lambda: [self.add("UNETLoader", unet_name=VIDEO_MODEL,
                                                           weight_dtype="default"), 0])
        if kind in ("MODEL", "VAE"):
            checkpoint = self.once(("sd15",), lambda: [self.add("CheckpointLoaderSimple", ckpt_name=SD15), 0])[0]
            return [checkpoint, 0 if kind == "MODEL" else 2]
        if kind == "CONDITIONING":  # one text encoding (the tiny CLIP-L is the slowest part of these graphs)
            clip = [self.feed("VAE", node, "")[0], 1]
            positive = self.once(("text",), lambda: [self.add("CLIPTextEncode", clip=clip, text="a flag"), 0])
            return positive if name == "positive" else [self.add("ConditioningZeroOut", conditioning=positive), 0]
        if kind == "LATENT" and video:
            return [self.add("EmptyHunyuanLatentVideo", width=16, height=16, length=5, batch_size=1), 0]
        if kind == "LATENT":
            return [self.add("VAEEncode", pixels=self.image(), vae=self.feed("VAE", node, "")), 0]
        raise KeyError(f"no small graph makes a {kind} for {node}.{name}: add one to Graph.feed")

    def node_under_test(self, node: str, changes: dict | None = None) -> str:
        """Add ``node`` with every required input (and the optional widgets) fed, plus a sink; return its id."""
        spec = self.info[node]["input"]
        inputs = dict(SMALL.get(node, {}))
        for group in ("required", "optional"):
            for name, entry in spec.get(group, {}).items():
                if name in inputs:
                    continue
                if is_widget(entry):
                    if widget_default(entry) is not None:
                        inputs[name] = widget_default(entry)
                elif group == "required" or name in NEEDED_OPTIONAL.get(node, ()):
                    inputs[name] = self.feed(entry[0], node, name)
        inputs.update(changes or {})
        node_id = self.add(node, **inputs)
        self.add("PreviewAny", source=[node_id, 0])
        return node_id


def is_widget(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGETS


def widget_default(spec: list):
    options = spec[1] if len(spec) > 1 else {}
    if isinstance(spec[0], list):
        return options.get("default", spec[0][0] if spec[0] else None)
    if spec[0] == "COMBO":
        choices = options.get("options") or []
        return options.get("default", choices[0] if choices else None)
    if spec[0] in WIDGETS:
        return options.get("default", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[spec[0]])
    return None


# ----------------------------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One hostile prompt: ``node``'s input ``input_name`` gets ``label``; ``refuse``: it must fail (else it may
    also succeed); a failure must name the input ``names`` says."""

    node: str
    input_name: str
    label: str
    prompt: dict
    refuse: bool = True
    names: str | None = None  # the input the error must name: None = input_name, "*" = any of the node's,
    # "**" = any input of any of the pack's nodes (the graph feeding it may refuse first)
    outcome: object = None  # the history entry, or the PromptFailed


def is_heavy(object_info: dict, node: str) -> bool:
    spec = object_info[node]["input"]
    return any(entry[0] in HEAVY_TYPES for group in ("required", "optional") for entry in spec.get(group, {}).values())


def widget_cases(object_info: dict, node: str) -> list[Case]:
    """Hostile widget values for every widget input of ``node``."""
    cases, heavy = [], is_heavy(object_info, node)
    for group in ("required", "optional"):
        for name, spec in object_info[node]["input"].get(group, {}).items():
            if not is_widget(spec):
                continue
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            options = spec[1] if len(spec) > 1 else {}
            values: list[tuple[str, object, bool]] = []
            if kind == "FLOAT":
                values = [("NaN", math.nan, True), ("+inf", math.inf, True), ("-inf", -math.inf, True),
                          ("1e300", 1e300, True), ("-1e300", -1e300, True)]
                values += [(f"{k} {options[k]}", options[k], False) for k in ("min", "max") if k in options]
            elif kind == "INT":
                low, high = options.get("min"), options.get("max")
                values = [("2**70", 2**70, True), ("-2**70", -2**70, True)]
                values += [(f"{low} - 1", low - 1, True)] if low is not None else []
                values += [(f"{high} + 1", high + 1, True)] if high is not None else []
            elif kind == "COMBO":
                values = [("unknown option", "no such option \u2603", True)]
            elif kind == "STRING":
                values = [("JSON nested 1,000 deep", "[" * 1000 + "]" * 1000, False), ("empty", "", False),
                          ("33 Mi characters", "[" + "0," * (33 << 19) + "0]", False)]
            for label, value, refuse in values:
                if heavy and not refuse:
                    continue
                graph = Graph(object_info, cheap=heavy)
                graph.node_under_test(node, {name: value})
                # a legal extreme may be refused for what it does with the other inputs, by their names
                cases.append(Case(node, name, label, graph.nodes, refuse, names=None if refuse else "*"))
    return cases


def picture_cases(object_info: dict, node: str) -> list[Case]:
    """An empty mask in every MASK input, a 1-pixel picture or mask in every IMAGE and MASK input, and the whole
    graph on a 1-pixel picture. (No core node makes an empty IMAGE; the shared check refuses one the same way as
    an empty MASK, tests/nodes/test_nodes_common.py.)"""
    cases, heavy = [], is_heavy(object_info, node)
    for group in ("required", "optional"):
        for name, spec in object_info[node]["input"].get(group, {}).items():
            if spec[0] not in ("IMAGE", "MASK"):
                continue
            if spec[0] == "MASK":  # CropMask past the mask's edge gives a [1, 24, 0] mask
                graph = Graph(object_info, cheap=heavy)
                solid = graph.add("SolidMask", value=1.0, width=WIDTH, height=HEIGHT)
                empty = graph.add("CropMask", mask=[solid, 0], x=WIDTH + 8, y=0, width=8, height=8)
                graph.node_under_test(node, {name: [empty, 0]})
                cases.append(Case(node, name, "an empty mask", graph.nodes))
            if heavy:
                continue
            graph = Graph(object_info)
            tiny = (graph.add("LoadImage", image=ONE_PIXEL) if spec[0] == "IMAGE"
                    else graph.add("SolidMask", value=1.0, width=1, height=1))
            graph.node_under_test(node, {name: [tiny, 0]})
            # a 1-pixel picture may work; if not, the error names one of the node's inputs (perhaps another one,
            # whose size no longer matches)
            cases.append(Case(node, name, "1x1 pixels", graph.nodes, refuse=False, names="*"))
    graph = Graph(object_info, picture=ONE_PIXEL)
    graph.node_under_test(node)
    cases.append(Case(node, "(all)", "the whole graph on a 1x1 picture", graph.nodes, refuse=False, names="**"))
    return cases


# ----------------------------------------------------------------------------------------------- running


def run_all(comfy, cases: list[Case], timeout: float = 120.0) -> None:
    """Queue every case at once (validation errors come back at once), then collect each outcome in turn."""
    queued = []
    for case in cases:
        try:
            queued.append((case, comfy.submit(case.prompt)))
        except PromptFailed as error:
            case.outcome = error
    for case, prompt_id in queued:
        try:
            case.outcome = comfy.wait(prompt_id, timeout)
        except PromptFailed as error:
            case.outcome = error


def names_the_input(error: PromptFailed, node: str, input_name: str) -> bool:
    """Whether a failed prompt's error names ``node`` and its input ``input_name`` ("*": any of its inputs, "**":
    any input of any of the pack's nodes)."""
    details = error.details
    for errors in (details.get("node_errors") or {}).values():  # refused at validation
        if errors.get("class_type") != node and input_name != "**":
            continue
        for item in errors.get("errors", []):
            named = item.get("extra_info", {}).get("input_name")
            if named and (input_name in ("*", "**") or named == input_name):
                return True
    for kind, data in details.get("status", {}).get("messages", []):  # refused by a node while running
        if kind == "execution_error":
            message, failed = data.get("exception_message", ""), data.get("node_type", "")
            if input_name == "**":
                return failed in PACK_NODES and f"{failed}: input '" in message
            named = f"{node}: input '{input_name}'" if input_name != "*" else f"{node}: input '"
            return failed == node and named in message
    return False


def judge(case: Case) -> str | None:
    """What is wrong with a case's outcome, or None."""
    if isinstance(case.outcome, PromptFailed):
        wanted = case.input_name if case.names is None else case.names
        if names_the_input(case.outcome, case.node, wanted):
            return None
        return f"the error does not name {case.node}.{wanted}: {str(case.outcome)[:400]}"
    return "was accepted" if case.refuse else None


def write_pictures(base) -> None:
    rng = np.random.default_rng(0)
    picture = (rng.random((HEIGHT, WIDTH, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(base / "input" / PICTURE)
    Image.fromarray(picture[:1, :1]).save(base / "input" / ONE_PIXEL)


def write_long_animation(path) -> None:
    """Fresh tiny long-animation additions (for the tiny SVD of the in-process tests)."""
    import torch

    from imagedynamics.models.long_animation import checkpoint
    from imagedynamics.models.long_animation.config import tiny_config
    from imagedynamics.models.long_animation.model import LongAnimationModel

    torch.manual_seed(0)
    checkpoint.save(path, LongAnimationModel(tiny_config()))


def write_random_lvmm(path) -> None:
    """An untrained tiny LVMM (random weights): the cases test the node, not the model's quality."""
    import torch

    from imagedynamics.models.lvmm import LVMM, LVMMConfig, save

    torch.manual_seed(0)
    save(path, LVMM(LVMMConfig.preset("tiny")))


@pytest.fixture
def hostile_host(comfy, motion_model_file, prepare_workflow):
    """The session's server with the small pictures and models the graphs name (the Motion-I2V makers also write
    the tiny SD 1.5 checkpoint), and its /object_info now that they are there."""
    write_pictures(comfy.base_dir)
    lvmm = comfy.base_dir / "models" / "motion_models" / LVMM
    if not lvmm.exists():
        write_random_lvmm(lvmm)
    long_animation = comfy.base_dir / "models" / "motion_models" / LONG_ANIMATION
    if not long_animation.exists():
        write_long_animation(long_animation)
    for name in (STAGE1, FLOW_VAE, STAGE2):
        motion_model_file(name)
    prepare_workflow("video model", {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": VIDEO_MODEL}}})
    return comfy, comfy.object_info()


def pack_nodes(object_info: dict) -> list[str]:
    names = sorted(name for name, info in object_info.items()
                   if info.get("python_module", "").startswith(PACK_MODULE))
    PACK_NODES.update(names)
    return names


def test_every_node_refuses_hostile_inputs_by_name_and_keeps_serving(hostile_host):
    comfy, object_info = hostile_host
    problems, timings, count = [], [], 0
    for node in pack_nodes(object_info):
        good = Graph(object_info)
        good.node_under_test(node)
        cases = widget_cases(object_info, node) + picture_cases(object_info, node)
        count += len(cases)
        start = time.monotonic()
        run_all(comfy, cases)
        timings.append((time.monotonic() - start, node, len(cases)))
        for case in cases:
            problem = judge(case)
            if problem:
                problems.append(f"{case.node}.{case.input_name} = {case.label}: {problem}")
        assert comfy.alive()
        try:  # the next good prompt works
            comfy.run(good.nodes, timeout=120)
            if node in GOOD_PROMPT_REFUSED:
                problems.append(f"{node}: the good prompt was accepted with a MODEL it must refuse")
        except PromptFailed as error:
            if node not in GOOD_PROMPT_REFUSED or not names_the_input(error, node, GOOD_PROMPT_REFUSED[node]):
                problems.append(f"{node}: the good prompt after the hostile ones failed: {error}")
    print(f"\n{count} hostile prompts; per node (s, cases):",
          ", ".join(f"{n} {s:.1f} s/{c}" for s, n, c in sorted(timings, reverse=True)))
    assert not problems, "\n".join(problems)


def _huge(object_info: dict, picture: tuple[int, int], node: str, changes: dict) -> dict:
    """``node`` in the small graph, but on an empty picture of ``picture`` = (width, height) pixels."""
    graph = Graph(object_info)
    width, height = picture
    graph._made[("image",)] = [graph.add("EmptyImage", width=width, height=height, batch_size=1, color=0), 0]
    graph.node_under_test(node, changes)
    return graph.nodes


HUGE = [  # (node, its changes, the picture, the input the refusal must name), and what that would need
    ("SparseTrajectoryToFlow", {"num_frames": 1024}, (4096, 4096), "num_frames"),  # 256 GiB of motion
    ("EulerianMotion", {"num_frames": 4096}, (2048, 2048), "num_frames"),  # 384 GiB
    ("SpectralVolumeSampler", {"num_frequencies": 128, "period_frames": 256}, (4096, 4096),
     "num_frequencies"),  # 96 GiB
    ("SpectrumToMotion", {"num_frames": 8192}, (2048, 2048), "num_frames"),  # 256 GiB
    ("InteractiveDynamics", {"num_frames": 8192}, (2048, 2048), "num_frames"),  # 384 GiB
    ("PredictLatentMotion", {"num_frames": 4096, "slow_motion": 16.0}, (1024, 1024), "num_frames"),  # 768 GiB
    ("TracksToSparseFlow", {"num_frames": 1024}, (2048, 2048), "num_frames"),  # 96 GiB
]


def test_huge_requests_are_refused_by_name_before_anything_is_allocated(hostile_host):
    """A motion of hundreds of GiB is refused at once, with the memory it needs and what to lower; the server's
    peak memory grows by about the empty picture only (64 MiB at 4096 x 4096 in 8 bits, 192 MiB as floats)."""
    from test_integration_models import _reset_peak, _status

    comfy, object_info = hostile_host
    pid = comfy.process.pid
    for node, changes, picture, input_name in HUGE:
        prompt = _huge(object_info, picture, node, changes)
        before = _status(pid)["VmRSS"]
        exact = _reset_peak(pid)
        start = time.monotonic()
        with pytest.raises(PromptFailed) as caught:
            comfy.run(prompt, timeout=60)
        seconds = time.monotonic() - start
        after = _status(pid)
        growth_mb = ((after["VmHWM"] if exact else after["VmRSS"]) - before) / 1024
        message = str(caught.value)
        assert names_the_input(caught.value, node, input_name), message
        assert "fit in memory" in message and "GiB" in message, message
        assert growth_mb < 1500 and seconds < 20, (node, growth_mb, seconds)
    small = Graph(object_info)
    small.node_under_test("EulerianMotion")
    comfy.run(small.nodes)


def test_predict_latent_motion_takes_its_length_from_a_long_schedule_or_refuses_the_conflict(hostile_host):
    from imagedynamics.models.lvmm import LVMMConfig

    comfy, object_info = hostile_host
    k = LVMMConfig.preset("tiny").num_frames  # the random model's segments: K latent frames

    def frames(num_frames: int, **schedule) -> int:
        graph = Graph(object_info)
        plan = graph.add("LongVideoSchedule", **schedule)
        motion = graph.node_under_test("PredictLatentMotion", {"num_frames": num_frames, "long_schedule": [plan, 0]})
        render = graph.add("SoftmaxSplatRender", image=graph.image(), motion=[motion, 0])
        size = graph.add("GetImageSize", image=[render, 0])
        count = graph.add("PreviewAny", source=[size, 2])  # the batch: one frame per motion frame
        return int(comfy.run(graph.nodes)[count]["text"][0])

    assert frames(0, num_segments=2, overlap=1) == 2 * k - 1 + 1  # the picture and 2 segments sharing a frame
    assert frames(0, total_frames=k + 2) == k + 3
    assert frames(k + 3, total_frames=k + 2) == k + 3
    with pytest.raises(PromptFailed) as caught:
        frames(5, num_segments=2, overlap=1)
    assert names_the_input(caught.value, "PredictLatentMotion", "num_frames"), caught.value
    assert f"expected 0 or {2 * k}: the long_schedule's length" in str(caught.value)
