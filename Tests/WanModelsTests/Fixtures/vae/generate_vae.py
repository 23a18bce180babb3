# Golden fixtures for WanVAE (spec §5, §11.3): a tiny random AutoencoderKLWan (fp32, CPU).
# Pinned: torch==2.13.0 (CPU build), diffusers==0.42.1, safetensors (any recent), numpy.
# Run: /opt/venv-torch/bin/python generate_vae.py   (writes weights.safetensors and cases.safetensors here)
import os
import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import save_file

torch.manual_seed(0)
DIM, Z, MULT, NRB = 6, 4, [1, 2, 2, 2], 1
MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921][:Z]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160][:Z]

vae = AutoencoderKLWan(base_dim=DIM, z_dim=Z, dim_mult=MULT, num_res_blocks=NRB, attn_scales=[],
                       temperal_downsample=[False, True, True], dropout=0.0).float().eval()
# Randomise every parameter (gammas around 1, the zero-initialised attention proj included).
with torch.no_grad():
    for name, p in vae.named_parameters():
        if name.endswith("gamma"):
            p.copy_(1 + 0.3 * torch.randn_like(p))
        elif name.endswith("bias"):
            p.copy_(0.1 * torch.randn_like(p))
        else:
            fan_in = p[0].numel()
            p.copy_(torch.randn_like(p) * (1.3 / fan_in ** 0.5))


def official(name):
    """diffusers AutoencoderKLWan name -> official WanVAE_ name (spec §4.3)."""
    res = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma",
           "conv2": "residual.6", "conv_shortcut": "shortcut"}
    def block(rest):
        for k, v in res.items():
            if rest == k or rest.startswith(k + "."):
                return v + rest[len(k):]
        return rest
    parts = name.split(".")
    top = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
    if parts[0] in top:
        return top[parts[0]] + "." + ".".join(parts[1:])
    side, rest = parts[0], ".".join(parts[1:])
    if rest.startswith("conv_in."):
        return f"{side}.conv1." + rest[len("conv_in."):]
    if rest.startswith("norm_out."):
        return f"{side}.head.0." + rest[len("norm_out."):]
    if rest.startswith("conv_out."):
        return f"{side}.head.2." + rest[len("conv_out."):]
    if rest.startswith("mid_block."):
        p = rest.split(".")
        idx = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[p[1] + "." + p[2]]
        sub = ".".join(p[3:])
        return f"{side}.middle.{idx}." + (block(sub) if idx != 1 else sub)
    if rest.startswith("down_blocks."):
        p = rest.split(".")
        return f"{side}.downsamples.{p[1]}." + block(".".join(p[2:]))
    if rest.startswith("up_blocks."):
        p = rest.split(".")
        level = int(p[1])
        if p[2] == "resnets":
            return f"{side}.upsamples.{level * (NRB + 2) + int(p[3])}." + block(".".join(p[4:]))
        if p[2] == "upsamplers":
            return f"{side}.upsamples.{level * (NRB + 2) + NRB + 1}." + ".".join(p[4:])
    raise ValueError(name)


here = os.path.dirname(os.path.abspath(__file__))
weights = {official(k): v.detach().clone().contiguous() for k, v in vae.state_dict().items()}
assert len(weights) == len(vae.state_dict())
save_file(weights, os.path.join(here, "weights.safetensors"),
          metadata={"dim": str(DIM), "z_dim": str(Z), "dim_mult": str(MULT), "num_res_blocks": str(NRB)})

mean = torch.tensor(MEAN, dtype=torch.float32).view(1, Z, 1, 1, 1)
inv_std = (1.0 / torch.tensor(STD, dtype=torch.float32)).view(1, Z, 1, 1, 1)
H, W = 16, 24
cases = {}
with torch.no_grad():
    for frames in (1, 5, 9):
        video = torch.rand(1, 3, frames, H, W) * 2 - 1
        mu = vae.encode(video).latent_dist.mode()
        z = (mu - mean) * inv_std  # official WanVAE.encode normalisation
        cases[f"encode{frames}.video"] = video[0].contiguous()
        cases[f"encode{frames}.latent"] = z[0].contiguous()
    for frames in (1, 2, 3, 5):
        z = torch.randn(1, Z, frames, H // 8, W // 8)
        x = vae.decode(z / inv_std + mean).sample  # official WanVAE.decode de-normalisation; clamped
        cases[f"decode{frames}.latent"] = z[0].contiguous()
        cases[f"decode{frames}.video"] = x[0].contiguous()
save_file(cases, os.path.join(here, "cases.safetensors"))
for k, v in cases.items():
    print(k, tuple(v.shape), float(v.abs().max()))
