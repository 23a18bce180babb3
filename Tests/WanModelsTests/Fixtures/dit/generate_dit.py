# Generates the DiT golden fixtures of Tests/WanModelsTests/DiTTests.swift (spec §11.2).
# Pinned versions (PyPI): torch==2.13.0 (CPU build), diffusers==0.42.1, safetensors==0.8.0, numpy==2.4.6.
# Run: /opt/venv-torch/bin/python Tests/WanModelsTests/Fixtures/dit/generate_dit.py
#
# Reference: diffusers' WanTransformer3DModel in fp32 (which matches the official WanModel in fp32), with
# two adjustments that make it follow the official code exactly:
#   * the timestep sinusoid is computed in float64 and cast to fp32 (official sinusoidal_embedding_1d);
#     diffusers computes it in fp32;
#   * the text context follows the official convention: each prompt's rows beyond its length are zeros
#     (official: trim, then zero-pad to text_len) and nothing is masked.
# Every parameter is randomised (norm weights included). Weights are rounded to fp16 for storage (the
# fp32 model runs on exactly those rounded values), to keep the fixtures small.
#
# Files:
#   tiny.safetensors      model A weights, diffusers names (dim 32, 2 heads: head_dim 16, RoPE pairs 4/2/2)
#   hd128.safetensors     model B weights, official names (dim 128, 1 head: head_dim 128, RoPE 22/21/21 pairs)
#   i2v.safetensors       model C weights, diffusers names (I2V: 36 input channels, img_emb, k_img / v_img)
#   flf2v.safetensors     model D weights, official names (FLF2V: img_emb.emb_pos over 2 x 5 image tokens)
#   cases.safetensors     per case <case>.x, .t (int64), .context (zero rows beyond lengths),
#                         .context_lens (int64), .clip (I2V / FLF2V: [B, tokens, image_dim]), .out (fp32)
#   config.json           the two configurations and the case list
import json
import math
import os

import numpy as np
import torch
from safetensors.torch import save_file
from diffusers import WanTransformer3DModel

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(1234)
torch.set_num_threads(2)


def sinusoid64(t, dim):
    half = dim // 2
    pos = torch.as_tensor(t, dtype=torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64).div(half))
    s = torch.outer(pos, freqs)
    return torch.cat([torch.cos(s), torch.sin(s)], dim=1).float()


class OfficialSinusoid(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        return sinusoid64(t, self.dim)


def build(dim, heads, ffn, text_dim, layers, freq_dim=256, in_dim=16, image_dim=None, image_positions=None):
    m = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=dim // heads,
                              in_channels=in_dim, out_channels=16, text_dim=text_dim, freq_dim=freq_dim, ffn_dim=ffn,
                              num_layers=layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                              image_dim=image_dim, added_kv_proj_dim=dim if image_dim else None,
                              pos_embed_seq_len=image_positions)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                v = 0.1 * torch.randn_like(p)
            elif p.ndim == 1:                          # norm weights
                v = 1.0 + 0.2 * torch.randn_like(p)
            elif "scale_shift_table" in name:
                v = torch.randn_like(p) / math.sqrt(dim)
            else:
                fan_in = p[0].numel()
                v = torch.randn_like(p) / math.sqrt(fan_in)
            p.copy_(v.half().float())                 # stored in fp16; the model runs on the same values
    m.condition_embedder.timesteps_proj = OfficialSinusoid(freq_dim)
    return m.eval().float()


# official name for each diffusers name (spec §4.2; note the norm2 / norm3 swap)
def official_name(n):
    top = {
        "condition_embedder.text_embedder.linear_1": "text_embedding.0",
        "condition_embedder.text_embedder.linear_2": "text_embedding.2",
        "condition_embedder.time_embedder.linear_1": "time_embedding.0",
        "condition_embedder.time_embedder.linear_2": "time_embedding.2",
        "condition_embedder.time_proj": "time_projection.1",
        "proj_out": "head.head",
        "condition_embedder.image_embedder.norm1": "img_emb.proj.0",
        "condition_embedder.image_embedder.ff.net.0.proj": "img_emb.proj.1",
        "condition_embedder.image_embedder.ff.net.2": "img_emb.proj.3",
        "condition_embedder.image_embedder.norm2": "img_emb.proj.4",
    }
    if n == "scale_shift_table":
        return "head.modulation"
    if n == "condition_embedder.image_embedder.pos_embed":
        return "img_emb.emb_pos"
    for k, v in top.items():
        if n.startswith(k + "."):
            return v + n[len(k):]
    if n.startswith("blocks."):
        parts = n.split(".")
        b = ".".join(parts[:2]) + "."
        rest = ".".join(parts[2:])
        block = {
            "scale_shift_table": "modulation",
            "attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
            "attn1.to_out.0": "self_attn.o", "attn1.norm_q": "self_attn.norm_q", "attn1.norm_k": "self_attn.norm_k",
            "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k", "attn2.to_v": "cross_attn.v",
            "attn2.to_out.0": "cross_attn.o", "attn2.norm_q": "cross_attn.norm_q", "attn2.norm_k": "cross_attn.norm_k",
            "norm2": "norm3", "ffn.net.0.proj": "ffn.0", "ffn.net.2": "ffn.2",
            "attn2.add_k_proj": "cross_attn.k_img", "attn2.add_v_proj": "cross_attn.v_img",
            "attn2.norm_added_k": "cross_attn.norm_k_img",
        }
        if rest in block:
            return b + block[rest]
        for k, v in block.items():
            if rest.startswith(k + "."):
                return b + v + rest[len(k):]
    if n.startswith("patch_embedding."):
        return n
    raise KeyError(n)


def case(model, name, batch, frames, height, width, ts, lens, text_len, text_dim, out, in_dim=16, clip=None):
    x = torch.randn(batch, in_dim, frames, height, width)
    ctx = torch.zeros(batch, text_len, text_dim)
    for b, n in enumerate(lens):
        ctx[b, :n] = torch.randn(n, text_dim)
    t = torch.tensor(ts, dtype=torch.int64)
    img = None
    if clip is not None:                               # (tokens, image_dim, flf2v)
        tokens, image_dim, flf = clip
        img = torch.randn(batch, tokens, image_dim)
        out[name + ".clip"] = img.contiguous()
        if flf:                                        # diffusers takes the two images as [2B, tokens/2, image_dim]
            img = img.view(2 * batch, tokens // 2, image_dim)
    with torch.no_grad():
        y = model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, encoder_hidden_states_image=img,
                  return_dict=False)[0]
    out[name + ".x"] = x.contiguous()
    out[name + ".t"] = t
    out[name + ".context"] = ctx.contiguous()
    out[name + ".context_lens"] = torch.tensor(lens, dtype=torch.int64)
    out[name + ".out"] = y.float().contiguous()
    return {"name": name, "batch": batch, "frames": frames, "height": height, "width": width,
            "t": ts, "context_lens": lens}


tensors = {}
cases = []
# Model A: the uneven 4/2/2 RoPE split, two blocks, diffusers names.
A = dict(dim=32, heads=2, ffn=64, text_dim=32, layers=2)
a_text_len = 8
model_a = build(**A)
save_file({k: v.detach().half().contiguous() for k, v in model_a.state_dict().items()
           if not k.startswith("rope.")}, os.path.join(HERE, "tiny.safetensors"))
cases.append(("tiny", case(model_a, "a1", 1, 1, 4, 6, [999], [5], a_text_len, A["text_dim"], tensors)))
cases.append(("tiny", case(model_a, "a2", 1, 2, 6, 10, [500], [8], a_text_len, A["text_dim"], tensors)))
cases.append(("tiny", case(model_a, "a5", 2, 5, 4, 4, [999, 250], [3, 8], a_text_len, A["text_dim"], tensors)))
cases.append(("tiny", case(model_a, "a0", 1, 1, 2, 2, [0], [1], a_text_len, A["text_dim"], tensors)))
cases.append(("tiny", case(model_a, "a21", 1, 21, 2, 4, [875], [6], a_text_len, A["text_dim"], tensors)))

# Model B: head_dim 128, the real 22/21/21 pair split, official names.
B = dict(dim=128, heads=1, ffn=64, text_dim=32, layers=1)
b_text_len = 8
model_b = build(**B)
save_file({official_name(k): v.detach().half().contiguous() for k, v in model_b.state_dict().items()
           if not k.startswith("rope.")}, os.path.join(HERE, "hd128.safetensors"))
cases.append(("hd128", case(model_b, "b1", 1, 3, 8, 12, [742], [6], b_text_len, B["text_dim"], tensors)))

# Model C: I2V (36 input channels, image cross-attention), diffusers names. diffusers splits the context
# at a hard-coded 512 text rows (as the official code), so text_len is 512; image_dim is small (32).
C = dict(dim=32, heads=2, ffn=64, text_dim=16, layers=2, in_dim=36, image_dim=32)
model_c = build(**C)
save_file({k: v.detach().half().contiguous() for k, v in model_c.state_dict().items()
           if not k.startswith("rope.")}, os.path.join(HERE, "i2v.safetensors"))
cases.append(("i2v", case(model_c, "c1", 2, 2, 4, 6, [999, 999], [7, 0], 512, C["text_dim"], tensors, in_dim=36,
                          clip=(5, 32, False))))

# Model D: FLF2V (img_emb.emb_pos over 2 x 5 image tokens), official names.
D = dict(dim=32, heads=2, ffn=64, text_dim=16, layers=1, in_dim=36, image_dim=32, image_positions=10)
model_d = build(**D)
save_file({official_name(k): v.detach().half().contiguous() for k, v in model_d.state_dict().items()
           if not k.startswith("rope.")}, os.path.join(HERE, "flf2v.safetensors"))
cases.append(("flf2v", case(model_d, "d1", 1, 2, 4, 4, [300], [4], 512, D["text_dim"], tensors, in_dim=36,
                            clip=(10, 32, True))))

save_file(tensors, os.path.join(HERE, "cases.safetensors"))
config = {
    "tiny": {"model_type": "t2v", "dim": A["dim"], "num_heads": A["heads"], "ffn_dim": A["ffn"], "text_dim": A["text_dim"],
             "num_layers": A["layers"], "freq_dim": 256, "text_len": a_text_len, "in_dim": 16, "out_dim": 16, "eps": 1e-6,
             "convention": "diffusers"},
    "hd128": {"model_type": "t2v", "dim": B["dim"], "num_heads": B["heads"], "ffn_dim": B["ffn"], "text_dim": B["text_dim"],
              "num_layers": B["layers"], "freq_dim": 256, "text_len": b_text_len, "in_dim": 16, "out_dim": 16, "eps": 1e-6,
              "convention": "official"},
    "i2v": {"model_type": "i2v", "dim": C["dim"], "num_heads": C["heads"], "ffn_dim": C["ffn"], "text_dim": C["text_dim"],
            "num_layers": C["layers"], "freq_dim": 256, "text_len": 512, "in_dim": 36, "out_dim": 16, "eps": 1e-6,
            "image_dim": C["image_dim"], "convention": "diffusers"},
    "flf2v": {"model_type": "flf2v", "dim": D["dim"], "num_heads": D["heads"], "ffn_dim": D["ffn"], "text_dim": D["text_dim"],
              "num_layers": D["layers"], "freq_dim": 256, "text_len": 512, "in_dim": 36, "out_dim": 16, "eps": 1e-6,
              "image_dim": D["image_dim"], "image_positions": D["image_positions"], "convention": "official"},
    "cases": [dict(model=m, **c) for m, c in cases],
}
with open(os.path.join(HERE, "config.json"), "w") as f:
    json.dump(config, f, indent=1)
print("ok", {k: tuple(v.shape) for k, v in tensors.items() if k.endswith(".out")})
