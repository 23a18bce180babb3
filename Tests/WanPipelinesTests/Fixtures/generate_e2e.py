#!/usr/bin/env python3
"""Writes e2e_expected.safetensors, the end-to-end text-to-video golden of WanPipelinesTests.

Pinned versions (PyPI): torch==2.13.0 (CPU build), diffusers==0.42.1, transformers==5.24.0, safetensors==0.8.0,
numpy==2.4.6. Run (from anywhere):

    /opt/venv-torch/bin/python Tests/WanPipelinesTests/Fixtures/generate_e2e.py

The output is byte-identical from run to run (fixed seeds, one CPU thread). Nothing else is written.

A whole official Wan 2.1 T2V run (spec §1.2, §8) with the EXISTING tiny fixture models, all in fp32:

 1. umT5 (transformers' UMT5EncoderModel, eager attention, the weights of
    Tests/WanModelsTests/Fixtures/umt5/umt5_tiny_transformers.safetensors, config of generate_umt5.py: vocab 257,
    d_model 32, 2 layers, 4 heads x 8, d_ff 48, 32 buckets, max distance 128) on the ids of a prompt (5 ids + EOS 1)
    and of a negative prompt (7 ids + EOS 1), padded with id 0 to 8 in one batch with an attention mask; the last
    hidden states are trimmed to each prompt's length and zero-padded to text_len 8 rows (spec §6.3, §3.5).
 2. noise [16, 2, 4, 6] float32 from numpy's default_rng (stored).
 3. N steps with shift 5, guidance 5: the DiT (diffusers' WanTransformer3DModel, the fp16-stored weights of
    Tests/WanModelsTests/Fixtures/dit/tiny.safetensors in diffusers names, run in fp32, built from case "tiny" of
    dit/config.json, with the official float64 timestep sinusoid of generate_dit.py) on the batch [x, x] with
    timesteps [t_i, t_i] (the official int64 model timesteps) and contexts [cond, uncond]. diffusers' cross-attention
    gets no mask (attention_mask None), so it attends to all 8 context rows, zero rows included, exactly like the
    official model (spec §3.5). v = v_u + 5 (v_c - v_u) in fp32; x <- solver.step(v, x), where the solver is the
    float32 emulation of the official FlowUniPCMultistepScheduler / FlowDPMSolverMultistepScheduler (and plain
    Euler on the UniPC grid) of generate_samplers.py (imported, not copied), on that file's sigma grids.
 4. VAE decode (diffusers' AutoencoderKLWan, fp32) of z = x_N / (1/std) + mean (spec §5.8, the Wan 2.1 constants),
    clamped to [-1, 1] -> video [3, 5, 32, 48].

The VAE. The VAE fixture (Tests/WanModelsTests/Fixtures/vae/weights.safetensors, official names: dim 6,
dim_mult [1, 2, 2, 2], num_res_blocks 1, temperal_downsample [False, True, True]) has z_dim 4, but the DiT emits
16 channels. The decode therefore uses a z_dim 16 VAE made of those weights for every tensor whose shape does not
depend on z_dim, plus seeded random tensors (the recipe of generate_vae.py: weights N(0, 1.3^2 / fan_in), biases
N(0, 0.1^2)) for the seven that do:
    encoder.head.2.weight [32, 12, 3, 3, 3], encoder.head.2.bias [32], conv1.weight [32, 32, 1, 1, 1],
    conv1.bias [32], conv2.weight [16, 16, 1, 1, 1], conv2.bias [16], decoder.conv1.weight [12, 16, 3, 3, 3]
(the encoder-side ones only so that the VAE is complete; decode does not use them). Those seven are stored here as
"vae16.<official name>" (float32); load weights.safetensors, replace them, and build WanVAEConfig(dim: 6, zDim: 16,
dimMult: [1, 2, 2, 2], numResBlocks: 1) with the Wan 2.1 latent mean / std.

Tensors (float32 unless said):
    ids_cond i32 [6], ids_uncond i32 [8]   the unpadded ids (EOS 1 last)
    noise [16, 2, 4, 6]                    x_0 of every case
    v0 [16, 2, 4, 6]                       the guided velocity at x_0 = noise, t = 999 (the first v of unipc and
                                           euler): checks DiT + guidance alone
    context_cond [8, 32], context_uncond [8, 32]   trimmed umT5 output, zero rows beyond the prompt's length
    vae16.<name>                           the z_dim-dependent VAE tensors (above)
    per case C in {unipc (4 steps), dpm++ (3 steps), euler (3 steps)}:
        C.timesteps i64 [N]                the model timesteps
        C.sigmas [N + 1]                   the solver's float32 sigmas (last 0)
        C.x [N, 16, 2, 4, 6]               the samples the DiT was evaluated on (x_0 = noise ... x_{N-1})
        C.latent [16, 2, 4, 6]             x_N
        C.video [3, 5, 32, 48]             the decoded, clamped video
Metadata (strings): generator, shift, guidance, text_len, cases (JSON {case: steps}), grid (JSON {case: grid}),
umt5_weights / dit_weights / dit_config / vae_weights (paths relative to the repository root), vae_config (JSON),
latent_mean / latent_std (JSON).

Also printed (stderr), nothing of it written: the loaded models against their own fixtures, how far the float64
solvers end from the float32 ones (same fp32 DiT), and how far everything lands when the DiT / the umT5 / the VAE
run in float64 instead (a hint for the Swift test's tolerance).

Checked once against the official Wan2.1 code (commit 9737cba, run out of tree with an fp32 SDPA stand-in for
flash_attention): its FlowUniPCMultistepScheduler reproduces unipc.x / unipc.latent to 1e-6 relative (the float32
emulation is not bit-exact there), its FlowDPMSolverMultistepScheduler dpm++.* bit for bit, WanModel the guided
velocities to 1.1e-6, T5Encoder the contexts to 2e-7, WanVAE_.decode the videos bit for bit.
"""
import ast
import contextlib
import importlib.util
import json
import os
import struct
import sys

import numpy as np
import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from diffusers.utils import logging as diffusers_logging
from safetensors import safe_open
from safetensors.torch import load_file, save
from transformers import UMT5Config, UMT5EncoderModel

torch.set_num_threads(1)
diffusers_logging.set_verbosity_error()
torch.manual_seed(0)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
MODELS = os.path.join(REPO, "Tests", "WanModelsTests", "Fixtures")
OUT = os.path.join(HERE, "e2e_expected.safetensors")

UMT5_WEIGHTS = "Tests/WanModelsTests/Fixtures/umt5/umt5_tiny_transformers.safetensors"
DIT_WEIGHTS = "Tests/WanModelsTests/Fixtures/dit/tiny.safetensors"
DIT_CONFIG = "Tests/WanModelsTests/Fixtures/dit/config.json"
VAE_WEIGHTS = "Tests/WanModelsTests/Fixtures/vae/weights.safetensors"

TEXT_LEN = 8
SHIFT = 5.0
GUIDANCE = 5.0
CASES = [("unipc", 4), ("dpm++", 3), ("euler", 3)]
# Wan 2.1 latent normalisation (spec §5.8).
LATENT_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
LATENT_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


def log(*args):
    print(*args, file=sys.stderr)


def rel(a, b):
    """max |a - b| / max |b| in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def repo_path(p):
    return os.path.join(REPO, p)


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def defs_from(path, names, namespace):
    """Executes only the top-level functions / classes `names` of a generator script (those scripts write their
    fixtures when imported, so they cannot be imported whole)."""
    with open(path) as fh:
        tree = ast.parse(fh.read(), path)
    nodes = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]
    assert sorted(n.name for n in nodes) == sorted(names), (path, names)
    exec(compile(ast.Module(body=nodes, type_ignores=[]), path, "exec"), namespace)
    return namespace


S = load_module(os.path.join(HERE, "generate_samplers.py"), "generate_samplers")
DIT_DEFS = defs_from(os.path.join(MODELS, "dit", "generate_dit.py"), ["sinusoid64", "OfficialSinusoid"],
                     {"torch": torch})
VAE_NRB = 1


@contextlib.contextmanager
def float64_everywhere():
    """Inside: `.float()` and `.to(torch.float32)` leave float64 tensors in float64, so the models' explicit fp32
    regions (FP32LayerNorm, RMSNorm variance, the sinusoid's cast, ...) run in float64 too."""
    orig_float, orig_to = torch.Tensor.float, torch.Tensor.to

    def flt(self, *a, **k):
        return self if self.dtype == torch.float64 else orig_float(self, *a, **k)

    def to(self, *a, **k):
        if self.dtype == torch.float64:
            a = tuple(torch.float64 if x is torch.float32 else x for x in a)
            if k.get("dtype") is torch.float32:
                k["dtype"] = torch.float64
        return orig_to(self, *a, **k)

    torch.Tensor.float, torch.Tensor.to = flt, to
    try:
        yield
    finally:
        torch.Tensor.float, torch.Tensor.to = orig_float, orig_to


def save_deterministic(tensors, path, metadata):
    """safetensors' writer keeps the metadata in a hash map (random order per run): rewrite the header with the
    metadata keys sorted and the tensors in data order, so the file's bytes are the same on every run."""
    blob = save(tensors, metadata=metadata)
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__")
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"])
    text = json.dumps({"__metadata__": dict(sorted(meta.items())), **dict(entries)}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + blob[8 + n:])


# ------------------------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------------------------

def load_umt5():
    cfg = UMT5Config(vocab_size=257, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                     relative_attention_num_buckets=32, relative_attention_max_distance=128,
                     dropout_rate=0.0, layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu",
                     is_encoder_decoder=False, use_cache=False)
    cfg._attn_implementation = "eager"
    model = UMT5EncoderModel(cfg).eval().float()
    model.load_state_dict(load_file(repo_path(UMT5_WEIGHTS)), strict=True)
    return model


def load_dit():
    with open(repo_path(DIT_CONFIG)) as fh:
        c = json.load(fh)["tiny"]
    assert c["model_type"] == "t2v" and c["convention"] == "diffusers" and c["text_len"] == TEXT_LEN
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=c["num_heads"],
                                  attention_head_dim=c["dim"] // c["num_heads"], in_channels=c["in_dim"],
                                  out_channels=c["out_dim"], text_dim=c["text_dim"], freq_dim=c["freq_dim"],
                                  ffn_dim=c["ffn_dim"], num_layers=c["num_layers"], cross_attn_norm=True,
                                  qk_norm="rms_norm_across_heads", eps=c["eps"])
    model.load_state_dict({k: v.float() for k, v in load_file(repo_path(DIT_WEIGHTS)).items()}, strict=True)
    model.condition_embedder.timesteps_proj = DIT_DEFS["OfficialSinusoid"](c["freq_dim"])
    return model.eval().float(), c


def vae_config():
    with safe_open(repo_path(VAE_WEIGHTS), framework="pt") as f:
        meta = f.metadata()
    return {"dim": int(meta["dim"]), "z_dim4": int(meta["z_dim"]), "dim_mult": json.loads(meta["dim_mult"]),
            "num_res_blocks": int(meta["num_res_blocks"])}


def build_vae(z_dim, weights_official):
    vc = vae_config()
    assert vc["num_res_blocks"] == VAE_NRB
    vae = AutoencoderKLWan(base_dim=vc["dim"], z_dim=z_dim, dim_mult=vc["dim_mult"],
                           num_res_blocks=vc["num_res_blocks"], attn_scales=[],
                           temperal_downsample=[False, True, True], dropout=0.0).float().eval()
    official = defs_from(os.path.join(MODELS, "vae", "generate_vae.py"), ["official"], {"NRB": VAE_NRB})["official"]
    vae.load_state_dict({k: weights_official[official(k)] for k in vae.state_dict()}, strict=True)
    return vae, official


def load_vae16():
    """The z_dim 16 VAE: the fixture's z_dim 4 weights where shapes agree, seeded tensors where they do not."""
    w4 = load_file(repo_path(VAE_WEIGHTS))
    vc = vae_config()
    probe = AutoencoderKLWan(base_dim=vc["dim"], z_dim=16, dim_mult=vc["dim_mult"],
                             num_res_blocks=vc["num_res_blocks"], attn_scales=[],
                             temperal_downsample=[False, True, True], dropout=0.0)
    official = defs_from(os.path.join(MODELS, "vae", "generate_vae.py"), ["official"], {"NRB": VAE_NRB})["official"]
    gen = torch.Generator().manual_seed(16)
    w16, new = {}, {}
    for name, p in probe.state_dict().items():          # a fixed order: the module's registration order
        o = official(name)
        if tuple(w4[o].shape) == tuple(p.shape):
            w16[o] = w4[o]
        else:
            if name.endswith("bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=gen) * (1.3 / fan_in ** 0.5)
            w16[o] = new[o] = v.float().contiguous()
    vae, _ = build_vae(16, w16)
    return vae, new


# ------------------------------------------------------------------------------------------------------------------
# Pipeline stages
# ------------------------------------------------------------------------------------------------------------------

def encode(t5, prompts, dtype):
    """Official T5EncoderModel.__call__ + the DiT's zero padding: [len(prompts), TEXT_LEN, d_model]."""
    ids = torch.zeros(len(prompts), TEXT_LEN, dtype=torch.int64)
    mask = torch.zeros(len(prompts), TEXT_LEN, dtype=torch.int64)
    for b, p in enumerate(prompts):
        ids[b, :len(p)] = torch.tensor(p)
        mask[b, :len(p)] = 1
    with torch.no_grad():
        hidden = t5.to(dtype)(input_ids=ids, attention_mask=mask).last_hidden_state
    ctx = torch.zeros(len(prompts), TEXT_LEN, hidden.shape[-1], dtype=dtype)
    for b, p in enumerate(prompts):
        ctx[b, :len(p)] = hidden[b, :len(p)]
    return ctx


def guided_velocity(dit, x, t, contexts):
    """DiT on [x, x] with timesteps [t, t] and contexts [cond, uncond]; v_u + g (v_c - v_u)."""
    batch = torch.stack([x, x])
    ts = torch.tensor([t, t], dtype=torch.int64)
    with torch.no_grad():
        out = dit(hidden_states=batch, timestep=ts, encoder_hidden_states=contexts, return_dict=False)[0]
    v_c, v_u = out[0], out[1]
    return v_u + GUIDANCE * (v_c - v_u)


def sample(dit, contexts, noise, solver_name, steps, solver_dtype, dit_dtype):
    cls, grid = S.SOLVERS[solver_name]
    sigmas, timesteps = S.schedule(grid, steps, SHIFT)
    solver = cls(sigmas, solver_dtype)
    x = noise.astype(solver_dtype)
    xs, vs = [], []
    for i in range(steps):
        xs.append(x.copy())
        v = guided_velocity(dit, torch.from_numpy(x.astype(dit_dtype)), int(timesteps[i]), contexts)
        assert v.numpy().dtype == dit_dtype
        v = v.numpy().astype(solver_dtype)
        vs.append(v)
        x = solver.step(v, x)
    return {"sigmas": sigmas, "timesteps": timesteps, "x": np.stack(xs), "v": np.stack(vs), "latent": x}


def decode(vae, latent, dtype):
    mean = torch.tensor(LATENT_MEAN, dtype=torch.float32).view(1, 16, 1, 1, 1).to(dtype)
    inv_std = (1.0 / torch.tensor(LATENT_STD, dtype=torch.float32)).view(1, 16, 1, 1, 1).to(dtype)
    z = torch.from_numpy(np.ascontiguousarray(latent)).to(dtype)[None]
    with torch.no_grad():
        video = vae.to(dtype).decode(z / inv_std + mean).sample
    return video.clamp(-1, 1)[0]


# ------------------------------------------------------------------------------------------------------------------

def self_checks(t5, dit):
    """The loaded models reproduce their own fixtures (so the loading is right)."""
    io = load_file(os.path.join(MODELS, "umt5", "umt5_tiny_io.safetensors"))
    with torch.no_grad():
        h = t5(input_ids=io["ids"].long(), attention_mask=io["mask"].long()).last_hidden_state
    lens = io["lengths"].tolist()
    e = max(rel(h[b, :n].numpy(), io["hidden"][b, :n].numpy()) for b, n in enumerate(lens))
    log(f"check umt5 vs umt5_tiny_io hidden: rel {e:.1e}")
    assert e < 1e-5

    cases = load_file(os.path.join(MODELS, "dit", "cases.safetensors"))
    for name in ["a1", "a2", "a5"]:
        with torch.no_grad():
            y = dit(hidden_states=cases[name + ".x"], timestep=cases[name + ".t"],
                    encoder_hidden_states=cases[name + ".context"], return_dict=False)[0]
        e = rel(y.numpy(), cases[name + ".out"].numpy())
        log(f"check dit vs dit/cases {name}: rel {e:.1e}")
        assert e < 1e-5

    vcases = load_file(os.path.join(MODELS, "vae", "cases.safetensors"))
    vae4, _ = build_vae(4, load_file(repo_path(VAE_WEIGHTS)))
    mean = torch.tensor(LATENT_MEAN[:4]).view(1, 4, 1, 1, 1)
    inv_std = (1.0 / torch.tensor(LATENT_STD[:4])).view(1, 4, 1, 1, 1)
    with torch.no_grad():
        x = vae4.decode(vcases["decode5.latent"][None] / inv_std + mean).sample[0]
    e = rel(x.numpy(), vcases["decode5.video"].numpy())
    log(f"check z_dim 4 VAE vs vae/cases decode5: rel {e:.1e}")
    assert e < 1e-5


def main():
    rng = np.random.default_rng(20251204)
    ids_cond = [int(i) for i in rng.integers(2, 257, 5)] + [1]
    ids_uncond = [int(i) for i in rng.integers(2, 257, 7)] + [1]
    noise = rng.standard_normal((16, 2, 4, 6)).astype(np.float32)

    t5 = load_umt5()
    dit, dit_cfg = load_dit()
    vae, vae_new = load_vae16()
    self_checks(t5, dit)

    ctx = encode(t5, [ids_cond, ids_uncond], torch.float32)
    with float64_everywhere():
        ctx64 = encode(load_umt5(), [ids_cond, ids_uncond], torch.float64)
    assert ctx64.dtype == torch.float64
    log(f"context fp32 vs umT5 in float64: rel {rel(ctx.numpy(), ctx64.numpy()):.1e}")
    assert torch.all(ctx[0, len(ids_cond):] == 0) and ctx.shape == (2, TEXT_LEN, 32)

    tensors = {
        "ids_cond": torch.tensor(ids_cond, dtype=torch.int32),
        "ids_uncond": torch.tensor(ids_uncond, dtype=torch.int32),
        "noise": torch.from_numpy(noise),
        "context_cond": ctx[0].contiguous(),
        "context_uncond": ctx[1].contiguous(),
    }
    for name, v in vae_new.items():
        tensors["vae16." + name] = v

    # Batched [cond, uncond] (as here) against two separate batch-1 calls (as the official code): same values.
    with torch.no_grad():
        x0, t0 = torch.from_numpy(noise)[None], torch.tensor([999])
        sep = [dit(hidden_states=x0, timestep=t0, encoder_hidden_states=ctx[b:b + 1], return_dict=False)[0][0]
               for b in range(2)]
    sep = (sep[1] + GUIDANCE * (sep[0] - sep[1])).numpy()
    log(f"batched vs separate cond/uncond DiT calls (t 999): rel {rel(guided_velocity(dit, torch.from_numpy(noise), 999, ctx).numpy(), sep):.1e}")

    dit64 = load_dit()[0].double()
    for case, steps in CASES:
        ref = sample(dit, ctx, noise, case, steps, np.float32, np.float32)
        video = decode(vae, ref["latent"], torch.float32)
        tensors[f"{case}.timesteps"] = torch.from_numpy(ref["timesteps"].astype(np.int64))
        tensors[f"{case}.sigmas"] = torch.from_numpy(ref["sigmas"].astype(np.float32))
        tensors[f"{case}.x"] = torch.from_numpy(np.ascontiguousarray(ref["x"], dtype=np.float32))
        if case == "unipc":
            tensors["v0"] = torch.from_numpy(np.ascontiguousarray(ref["v"][0], dtype=np.float32))
        tensors[f"{case}.latent"] = torch.from_numpy(np.ascontiguousarray(ref["latent"], dtype=np.float32))
        tensors[f"{case}.video"] = video.contiguous()

        # Precision study (printed only).
        s64 = sample(dit, ctx, noise, case, steps, np.float64, np.float32)
        with float64_everywhere():
            d64 = sample(dit64, ctx.double(), noise, case, steps, np.float32, np.float64)
            a64 = sample(dit64, ctx64, noise, case, steps, np.float64, np.float64)
            v64 = decode(vae, a64["latent"], torch.float64)
        vae.float()
        assert v64.dtype == torch.float64 and video.dtype == torch.float32
        saturated = float((video.abs() == 1).float().mean())
        log(f"{case:6s} N={steps} t={ref['timesteps'].tolist()} |x_N|max {np.abs(ref['latent']).max():.3f} "
            f"|video|max {video.abs().max():.3f} (clamped {100 * saturated:.1f}%)")
        log(f"   latent: fp64 solver (fp32 DiT) {rel(ref['latent'], s64['latent']):.1e}; "
            f"fp64 DiT (fp32 solver) {rel(ref['latent'], d64['latent']):.1e}; "
            f"all fp64 {rel(ref['latent'], a64['latent']):.1e}")
        log(f"   x_i worst: fp64 solver {max(rel(a, b) for a, b in zip(ref['x'], s64['x'])):.1e}; "
            f"all fp64 {max(rel(a, b) for a, b in zip(ref['x'], a64['x'])):.1e}; "
            f"v_i worst all fp64 {max(rel(a, b) for a, b in zip(ref['v'], a64['v'])):.1e}")
        log(f"   video: all fp64 (umT5, DiT, solver, VAE) {rel(video.numpy(), v64.numpy()):.1e}")

    metadata = {
        "generator": "generate_e2e.py",
        "shift": str(SHIFT),
        "guidance": str(GUIDANCE),
        "text_len": str(TEXT_LEN),
        "cases": json.dumps({c: n for c, n in CASES}),
        "grid": json.dumps({c: S.SOLVERS[c][1] for c, _ in CASES}),
        "umt5_weights": UMT5_WEIGHTS,
        "dit_weights": DIT_WEIGHTS,
        "dit_config": DIT_CONFIG + "#tiny",
        "vae_weights": VAE_WEIGHTS,
        "vae_config": json.dumps({"dim": vae_config()["dim"], "z_dim": 16, "dim_mult": vae_config()["dim_mult"],
                                  "num_res_blocks": VAE_NRB, "temperal_downsample": [False, True, True],
                                  "replaced": "vae16.*"}),
        "latent_mean": json.dumps(LATENT_MEAN),
        "latent_std": json.dumps(LATENT_STD),
    }
    save_deterministic(tensors, OUT, metadata)
    check = load_file(OUT)
    assert check.keys() == tensors.keys() and all(torch.equal(check[k], v) for k, v in tensors.items())
    with safe_open(OUT, framework="pt") as f:
        assert f.metadata() == metadata
    for k, v in tensors.items():
        log(f"  {k:28s} {str(v.dtype):14s} {tuple(v.shape)}")
    log(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
