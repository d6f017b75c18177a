"""SteadyDancer on ComfyUI core's WanModel (Wan2.1-I2V backbone + SteadyDancer pose path).

What the official ``model_dancer.WanModel.forward`` does, and how we do it here:

1. x = [noise(16) ‖ y(20)] (ComfyUI passes this already concatenated: noise + ``c_concat``).
2. pose path on the pose latent c [B,16,T,h,w]:
   fused = c + temporal(c) + spatial(c)   (temporal: 3 × FactorConv3d+SiLU; spatial: dynamic conv
   per frame), aligned = align(fused, noise)   (frame-wise attention of noise to pose).
3. tokens = patch_embedding_fuse([x ‖ fused ‖ aligned]) ‖_time patch_embedding([ref ‖ 1₄ ‖ ref])
   ‖_time patch_embedding_ref_c(pose_ref): the reference image and reference pose become two extra
   latent frames appended along time (RoPE sees T+2 frames).
4. context = [img_emb(clip_ref) + img_emb(clip_pose) ‖ text_embedding(text padded to text_len)].
5. Wan blocks + head; the two appended frames are cut off after unpatchify.

Additions of ours (defaults reproduce the official model exactly): per-branch pose strengths
(spatial, temporal multipliers) and a timestep window outside which the pose branch is dropped
(fused and aligned channels zero).
"""

import torch
import torch.nn.functional as F

import comfy.ldm.common_dit
import comfy.ops
from comfy.ldm.wan.model import WanModel, sinusoidal_embedding_1d

from . import fast
from .modules import DynamicConv, FactorConv3d, PoseNoiseAlign


class SteadyDancerWanModel(WanModel):
    def __init__(self, in_dim_c=16, noise_dim=16, align_hidden=128, align_heads=8, dy_dim=4, dy_squeeze=4, dy_mul=1, device=None, dtype=None, operations=None, extras_high_precision=False, **kwargs):
        kwargs["model_type"] = "i2v"
        super().__init__(device=device, dtype=dtype, operations=operations, **kwargs)
        # a scaled-fp8 file keeps the pose modules in high precision: give them plain cast ops
        ops = comfy.ops.manual_cast if extras_high_precision else operations
        kw = dict(device=device, dtype=dtype)
        dim, ps = self.dim, self.patch_size
        self.in_dim_c = in_dim_c
        self.patch_embedding_fuse = ops.Conv3d(self.in_dim + 2 * in_dim_c, dim, ps, stride=ps, **kw)
        self.patch_embedding_ref_c = ops.Conv3d(in_dim_c, dim, ps, stride=ps, **kw)
        self.condition_embedding_spatial = DynamicConv(in_dim_c, in_dim_c, dy_dim, dy_squeeze, dy_mul, operations=ops, **kw)
        self.condition_embedding_temporal = torch.nn.Sequential(*[m for _ in range(3) for m in (FactorConv3d(in_dim_c, in_dim_c, operations=ops, **kw), torch.nn.SiLU())])
        self.condition_embedding_align = PoseNoiseAlign(in_dim_c, noise_dim, align_hidden, align_heads, operations=ops, **kw)
        self._keep_scaled_fp8_biases(dtype)

    def _keep_scaled_fp8_biases(self, dtype):
        """ComfyUI's scaled-fp8 Linear allocates its bias in fp8 too, rounding the file's
        high-precision bias (up to 1/16 relative error). Biases are tiny: keep them in the
        compute dtype; ``cast_bias_weight`` casts them per call as before."""
        fp8 = (torch.float8_e4m3fn, torch.float8_e5m2)
        keep = dtype if dtype is not None and dtype not in fp8 else torch.bfloat16
        for mod in self.modules():
            b = getattr(mod, "bias", None)
            if hasattr(mod, "scale_weight") and isinstance(b, torch.nn.Parameter) and b.dtype in fp8:
                mod.bias = torch.nn.Parameter(torch.empty(b.shape, dtype=keep, device=b.device), requires_grad=False)

    # --- pose path ---------------------------------------------------------------------------
    def pose_features(self, pose, noise, strength=(1.0, 1.0)):
        b, c, t, h, w = pose.shape
        temporal = self.condition_embedding_temporal(pose)
        spatial = self.condition_embedding_spatial(pose.movedim(2, 1).reshape(b * t, c, h, w))
        spatial = spatial.reshape(b, t, c, h, w).movedim(1, 2)
        fused = pose + strength[1] * temporal + strength[0] * spatial
        aligned = self.condition_embedding_align(fused, noise)
        return fused, aligned

    def _forward(self, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={}, **kwargs):
        bs, c, t, h, w = x.shape
        missing = [k for k in ("sd_pose", "sd_ref", "sd_pose_ref") if kwargs.get(k) is None]
        if missing:
            raise ValueError("SteadyDancer model needs the pose conditioning (missing: " + ", ".join(missing) + "); build the conditioning with the SteadyDancerConditioning node")
        if clip_fea is None:
            raise ValueError("SteadyDancer model needs CLIP-vision features of the reference image (clip_vision_output)")
        pose = kwargs["sd_pose"]
        if pose.shape[0] != bs or pose.shape[2:] != x.shape[2:]:
            raise ValueError(f"SteadyDancer: pose latent {tuple(pose.shape)} does not match the latent {tuple(x.shape)} (same frames/size expected)")
        pad = lambda v: comfy.ldm.common_dit.pad_to_patch_size(v.to(x.dtype), self.patch_size)  # noqa: E731
        x, pose = pad(x), pad(pose)
        ref, pose_ref = pad(kwargs["sd_ref"]), pad(kwargs["sd_pose_ref"])
        freqs = self.rope_encode(t + 2, h, w, device=x.device, dtype=x.dtype)
        out = self.forward_steadydancer(
            x,
            timestep,
            context,
            clip_fea,
            kwargs.get("sd_clip_pose"),
            pose,
            ref,
            pose_ref,
            freqs,
            strength=kwargs.get("sd_pose_strength") or (1.0, 1.0),
            t_range=kwargs.get("sd_pose_t_range"),
            transformer_options=transformer_options,
        )
        return out[:, :, :t, :h, :w]

    def forward_steadydancer(self, x, t, context, clip_fea, clip_pose, pose, ref, pose_ref, freqs, strength=(1.0, 1.0), t_range=None, transformer_options={}):
        noise = x[:, : self.condition_embedding_align.proj_r.in_channels]
        fused, aligned = self.pose_features(pose, noise, strength)
        if t_range is not None:  # pose only inside [start, end] of sampling (timesteps decrease)
            hi, lo = t_range
            active = ((t <= hi) & (t >= lo)).to(fused.dtype).view(-1, 1, 1, 1, 1)
            fused, aligned = fused * active, aligned * active
        h = self.patch_embedding_fuse(torch.cat([x, fused, aligned], dim=1))
        ones = torch.ones_like(ref[:, :4])
        ref_x = torch.cat([ref, ones, ref], dim=1)
        r = self.patch_embedding(ref_x.float()).to(h.dtype)
        rc = self.patch_embedding_ref_c(pose_ref[:, : self.in_dim_c])
        h = torch.cat([h, r, rc], dim=2)
        grid_sizes = h.shape[2:]
        h = h.flatten(2).transpose(1, 2)

        e = self.time_embedding(sinusoidal_embedding_1d(self.freq_dim, t.flatten()).to(dtype=h.dtype))
        e = e.reshape(t.shape[0], -1, e.shape[-1])
        e0 = self.time_projection(e).unflatten(2, (6, self.dim))

        if context.shape[1] < self.text_len:  # the official pads the text to text_len with zeros
            context = F.pad(context, (0, 0, 0, self.text_len - context.shape[1]))
        context = self.text_embedding(context)
        context_clip = self.img_emb(clip_fea)
        if clip_pose is not None:
            context_clip = context_clip + self.img_emb(clip_pose)
        context = torch.cat([context_clip, context], dim=1)
        context_img_len = clip_fea.shape[-2]

        blocks_replace = transformer_options.get("patches_replace", {}).get("dit", {})
        speed = transformer_options.get(fast.TRANSFORMER_OPTIONS_KEY)
        # the fast block (fast.py) when a speed choice other than ComfyUI's plain path is set
        run_fast = fast.block_runner(speed) if speed and fast.Speed(**speed) != fast.Speed() else None
        for i, block in enumerate(self.blocks):
            if ("double_block", i) in blocks_replace:

                def block_wrap(args, block=block):
                    return {"img": block(args["img"], context=args["txt"], e=args["vec"], freqs=args["pe"], context_img_len=context_img_len, transformer_options=args["transformer_options"])}

                h = blocks_replace[("double_block", i)]({"img": h, "txt": context, "vec": e0, "pe": freqs, "transformer_options": transformer_options}, {"original_block": block_wrap})["img"]
            elif run_fast is not None:
                h = run_fast(block, h, e0, freqs, context, context_img_len)
            else:
                h = block(h, e=e0, freqs=freqs, context=context, context_img_len=context_img_len, transformer_options=transformer_options)
        h = self.head(h, e)
        return self.unpatchify(h, grid_sizes)
