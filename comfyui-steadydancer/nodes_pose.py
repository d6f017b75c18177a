"""Pose nodes: DWPose extraction (rtmlib + ONNX Runtime), alignment to the reference person,
negative-pose augmentation and rendering, with the official SteadyDancer semantics.

Types: ``SD_POSE_MODEL`` (a loaded DWPoseEstimator), ``SD_POSES`` (a PoseSequence: per-frame
normalised keypoints + the frame size they refer to).

``SteadyDancerPosePrep`` does the whole official preprocessing in one node (what the workflow
uses): reference image + driving frames -> aligned positive pose images and augmented negative
pose images at the generation size. The single-step nodes expose the same steps separately.

Workflow wiring (for the ``pipeline`` workflow):
  LoadImage.IMAGE -> PosePrep.reference_image;
  LoadVideo -> GetVideoComponents.images -> PosePrep.driving_video;
  SteadyDancerPoseModelLoader.pose_model -> PosePrep.pose_model;
  PosePrep(width, height = the generation size, frame_count = the 4n+1 frame count,
  negatives = false) -> ``pose_images`` (aligned poses) -> the SteadyDancer conditioning node,
  which VAE-encodes them; its first pose image is the official ``img_c`` (pose of the first
  frame) for the CLIP features of the reference pose.
  The negative poses take their own path, which ComfyUI runs only when the guider's lazy
  ``negative_pose`` input is requested (pose_cfg != 0): PosePrep.poses -> SteadyDancerPoseAugment
  (seed) -> SteadyDancerPoseRender (the generation size) -> SteadyDancerNegativePoseConditioning.
  That chain gives exactly PosePrep's ``negative_pose_images`` (same draws, same rendering);
  PosePrep with ``negatives`` on (its default, for older workflows) still renders them itself.

Models (ComfyUI ``models/detection``, names as in docker/models.json): ``yolox_l.onnx`` and
``dw-ll_ucoco_384.onnx``; a missing file raises an error that names it and the
``steadydancer models download`` command.
"""

from __future__ import annotations

import os

import torch

import folder_paths
from comfy_api.latest import io

from .pose_align import align_sequence, augment_sequence
from .pose_extract import DETECTOR_FILE, POSE_FILE, DWPoseEstimator, require_model
from .pose_render import render

if "detection" not in folder_paths.folder_names_and_paths:
    folder_paths.add_model_folder_path("detection", os.path.join(folder_paths.models_dir, "detection"))

PoseModel = io.Custom("SD_POSE_MODEL")
Poses = io.Custom("SD_POSES")


def _choices(default: str):
    found = folder_paths.get_filename_list("detection")
    return list(found) + ([default] if default not in found else [])


def _model_path(name: str) -> str:
    path = folder_paths.get_full_path("detection", name)
    dirs = ", ".join(folder_paths.get_folder_paths("detection"))
    return require_model(path, name, folder=f"the detection model folders ({dirs})")


def _progress(total: int):
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)
    return lambda done, _n: bar.update_absolute(done, total)


class SteadyDancerPoseModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerPoseModelLoader",
            display_name="SteadyDancer Pose Model Loader (DWPose)",
            category="SteadyDancer/pose",
            description="YOLOX-L person detector + DWPose-L whole-body ONNX models from models/detection.",
            inputs=[
                io.Combo.Input("detector", options=_choices(DETECTOR_FILE), default=DETECTOR_FILE),
                io.Combo.Input("pose_model", options=_choices(POSE_FILE), default=POSE_FILE),
                io.Combo.Input("device", options=["auto", "cuda", "cpu"], default="auto", tooltip="auto: CUDA when onnxruntime has the CUDA provider, else CPU"),
            ],
            outputs=[PoseModel.Output(display_name="pose_model")],
        )

    @classmethod
    def execute(cls, detector, pose_model, device) -> io.NodeOutput:
        return io.NodeOutput(DWPoseEstimator(_model_path(detector), _model_path(pose_model), device))


class SteadyDancerPoseDetect(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerPoseDetect",
            display_name="SteadyDancer Pose Detect",
            category="SteadyDancer/pose",
            inputs=[PoseModel.Input("pose_model"), io.Image.Input("images")],
            outputs=[Poses.Output(display_name="poses")],
        )

    @classmethod
    def execute(cls, pose_model, images) -> io.NodeOutput:
        return io.NodeOutput(pose_model.detect_frames(images.cpu().numpy(), _progress(len(images))))


class SteadyDancerPoseAlign(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerPoseAlign",
            display_name="SteadyDancer Pose Align",
            category="SteadyDancer/pose",
            description="Rescale the driving poses limb by limb to the reference person's proportions and move them onto the reference person (official pose_align.py).",
            inputs=[
                Poses.Input("reference_pose", tooltip="the first frame is used"),
                Poses.Input("driving_poses"),
                io.Int.Input("align_frame", default=0, min=0, max=100000, tooltip="driving frame whose proportions are matched"),
            ],
            outputs=[Poses.Output(display_name="poses")],
        )

    @classmethod
    def execute(cls, reference_pose, driving_poses, align_frame) -> io.NodeOutput:
        if len(reference_pose) == 0:
            raise ValueError("SteadyDancerPoseAlign: the reference pose is empty")
        return io.NodeOutput(align_sequence(reference_pose.frames[0], (reference_pose.width, reference_pose.height), driving_poses, align_frame))


class SteadyDancerPoseAugment(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerPoseAugment",
            display_name="SteadyDancer Negative Poses",
            category="SteadyDancer/pose",
            description="Negative poses for pose guidance: every frame stretched and scaled about the neck by its own random draw (official pose_aug_diff).",
            inputs=[
                Poses.Input("poses"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF),
                io.Float.Input("scale_min", default=0.7, min=0.01, max=10.0, step=0.01),
                io.Float.Input("scale_max", default=1.3, min=0.01, max=10.0, step=0.01),
                io.Float.Input("aspect_min", default=0.6, min=0.01, max=10.0, step=0.01),
                io.Float.Input("aspect_max", default=1.4, min=0.01, max=10.0, step=0.01),
            ],
            outputs=[Poses.Output(display_name="negative_poses")],
        )

    @classmethod
    def execute(cls, poses, seed, scale_min, scale_max, aspect_min, aspect_max) -> io.NodeOutput:
        return io.NodeOutput(augment_sequence(poses, seed, (scale_min, scale_max), (aspect_min, aspect_max)))


class SteadyDancerPoseRender(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerPoseRender",
            display_name="SteadyDancer Pose Render",
            category="SteadyDancer/pose",
            inputs=[
                Poses.Input("poses"),
                io.Int.Input("width", default=832, min=16, max=8192, step=16),
                io.Int.Input("height", default=480, min=16, max=8192, step=16),
                io.Int.Input(
                    "supersample",
                    default=0,
                    min=0,
                    max=4,
                    tooltip="0: draw on the official canvas (2x the 1024*576 area at the poses' aspect), k: at k x the output size; then bicubic to the output size",
                ),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def execute(cls, poses, width, height, supersample) -> io.NodeOutput:
        return io.NodeOutput(torch.from_numpy(render(poses, width, height, supersample)))


def prepare_poses(
    estimator, reference_image, driving_images, width: int, height: int, frame_count: int = 0, align: bool = True, seed: int = 0, supersample: int = 0, progress=None, negatives: bool = True
):
    """The official preprocessing: detect, align to the reference, augment, render.

    Returns (positive IMAGE [F, height, width, 3], negative IMAGE or None when ``negatives`` is
    off, aligned PoseSequence)."""
    if reference_image.ndim != 4 or len(reference_image) < 1:
        raise ValueError(f"reference_image must be an IMAGE batch [1, H, W, 3], got {tuple(reference_image.shape)}")
    n = len(driving_images)
    if frame_count:
        if n < frame_count:
            raise ValueError(f"the driving video has {n} frames, fewer than the {frame_count} asked for")
        driving_images = driving_images[:frame_count]
    ref = estimator.detect_frames(reference_image[:1].cpu().numpy())
    drv = estimator.detect_frames(driving_images.cpu().numpy(), progress)
    poses = align_sequence(ref.frames[0], (ref.width, ref.height), drv) if align else drv
    pos_img = torch.from_numpy(render(poses, width, height, supersample))
    neg_img = torch.from_numpy(render(augment_sequence(poses, seed), width, height, supersample)) if negatives else None
    return pos_img, neg_img, poses


class SteadyDancerPosePrep(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerPosePrep",
            display_name="SteadyDancer Pose Prep (detect, align, negatives)",
            category="SteadyDancer/pose",
            description="Official SteadyDancer preprocessing in one node: DWPose on the reference and every driving frame, alignment to the reference person, negative poses, rendering.",
            inputs=[
                PoseModel.Input("pose_model"),
                io.Image.Input("reference_image"),
                io.Image.Input("driving_video", tooltip="driving frames (IMAGE batch)"),
                io.Int.Input("width", default=832, min=16, max=8192, step=16),
                io.Int.Input("height", default=480, min=16, max=8192, step=16),
                io.Int.Input("frame_count", default=0, min=0, max=100000, tooltip="use the first N driving frames (0: all)"),
                io.Boolean.Input("align", default=True, tooltip="align the poses to the reference person"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, tooltip="negative-pose augmentation seed (used when negatives is on)"),
                io.Boolean.Input(
                    "negatives",
                    default=True,
                    optional=True,
                    tooltip="also render the negative poses (negative_pose_images). Off: that output is empty; the workflows render them with SteadyDancer Negative Poses + Pose Render from the poses output, which runs only when pose guidance is on",
                ),
            ],
            outputs=[io.Image.Output(display_name="pose_images"), io.Image.Output(display_name="negative_pose_images"), Poses.Output(display_name="poses")],
        )

    @classmethod
    def execute(cls, pose_model, reference_image, driving_video, width, height, frame_count, align, seed, negatives=True) -> io.NodeOutput:
        n = frame_count or len(driving_video)
        pos, neg, poses = prepare_poses(pose_model, reference_image, driving_video, width, height, frame_count, align, seed, progress=_progress(n), negatives=negatives)
        return io.NodeOutput(pos, neg, poses)


NODES = [SteadyDancerPoseModelLoader, SteadyDancerPoseDetect, SteadyDancerPoseAlign, SteadyDancerPoseAugment, SteadyDancerPoseRender, SteadyDancerPosePrep]
