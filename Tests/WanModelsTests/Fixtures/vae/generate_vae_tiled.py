# Golden fixture for WanVAE's spatially tiled decode (spec §5): diffusers' own AutoencoderKLWan.tiled_decode of
# the tiny fixture VAE of generate_vae.py (weights.safetensors: base_dim 6, z_dim 4, dim_mult [1, 2, 2, 2],
# num_res_blocks 1, official names), fp32 on the CPU.
# Pinned: torch==2.13.0 (CPU build), diffusers==0.42.1, safetensors==0.8.0 (header written by hand here), numpy.
# Run: /opt/venv-torch/bin/python generate_vae_tiled.py   (reads weights.safetensors, writes tiled.safetensors;
#      the same bytes on every run on one machine)
#
# Tensors of tiled.safetensors (all F32, batch dimension dropped):
#   latent   [4, 2, 10, 14]      NORMALISED latent z (torch.Generator seed 20250, randn), as WanVAE.decode takes it
#   tiled    [3, 2, 80, 112]     frames 0 and 3 (of 5) of vae.enable_tiling(64, 64, 48, 48)'s decode of
#                                z / (1/std) + mean -> latent tile 8, stride 6, blend 16 px
#   tiled_b  [3, 2, 80, 112]     the same with vae.enable_tiling(48, 48, 32, 32) -> latent tile 6, stride 4, blend 16 px
# (Only two frames are kept, one from each decoded chunk, to keep the file small; the untiled decode is checked
# against diffusers by cases.safetensors.)
# Metadata (strings): latent_mean / latent_std (the first 4 Wan 2.1 values, as VAETests.swift uses), and for each
# tiled case its tile_sample_min / tile_sample_stride (pixels) and tile_latent_min / tile_latent_stride (latent).
# De-normalisation is the official WanVAE.decode one, exactly as generate_vae.py and Swift's WanVAE.decode:
#   x = z / inv_std + mean, with inv_std = float32(1 / float32(std)).
#
# ---------------------------------------------------------------------------------------------------------------
# What diffusers 0.42.1 does (autoencoder_kl_wan.py, read from the installed source), in pseudocode.
# Notation: z is the DE-normalised latent [1, C, T, h, w]; s = spatial_compression_ratio = 8; patch_size is None
# for Wan 2.1 (the patch_size branches below never run); every tile size is in latent pixels unless marked px.
#
# decode(z) -> _decode(z):
#     tile_latent_min_h = tile_sample_min_height // 8      (64 -> 8, 48 -> 6)
#     tile_latent_min_w = tile_sample_min_width  // 8
#     if use_tiling and (w > tile_latent_min_w or h > tile_latent_min_h):   # EITHER side too big -> tile BOTH ways
#         return tiled_decode(z)
#     else: untiled decode (post_quant_conv on all frames, then the decoder one latent frame at a time with the
#           causal caches, first_chunk=True for frame 0), then clamp(-1, 1).
#   So an image that fits in one tile on both sides is decoded untiled (no blending at all); as soon as one side
#   exceeds the tile, the stride grid below is used on both axes, even the one that fits.
#
# tiled_decode(z):
#     tile_latent_min_h,w    = tile_sample_min_{height,width}    // 8      # 8   (case tiled), 6 (case tiled_b)
#     tile_latent_stride_h,w = tile_sample_stride_{height,width} // 8      # 6   (tiled),      4 (tiled_b)
#     tile_sample_stride_h,w = tile_sample_stride_{height,width}           # 48 px (tiled),    32 px (tiled_b)
#     blend_h = tile_sample_min_height - tile_sample_stride_height          # 16 px for both cases  (named
#     blend_w = tile_sample_min_width  - tile_sample_stride_width           #  blend_height / blend_width)
#     # 1. decode every tile, UNCLAMPED, each with FRESH causal caches (clear_cache() before each tile)
#     rows = []
#     for i in range(0, h, tile_latent_stride_h):                 # tile origins 0, stride, 2*stride, ... < h
#         row = []
#         for j in range(0, w, tile_latent_stride_w):
#             clear_cache()
#             frames = []
#             for k in range(T):
#                 t = z[:, :, k:k+1, i : i + tile_latent_min_h, j : j + tile_latent_min_w]   # python slicing:
#                 #   edge tiles are SMALLER (min(tile, h - i) x min(tile, w - j)), never padded
#                 t = post_quant_conv(t)
#                 frames.append(decoder(t, caches, first_chunk=(k == 0)))   # 1 frame for k == 0, then 4 each
#             row.append(cat(frames, dim=time))            # tile video [1, 3, 1 + 4(T-1), 8*th, 8*tw], unclamped
#         rows.append(row)
#     clear_cache()
#     # 2. blend and crop, row-major; blend_v / blend_h WRITE INTO THE TILE TENSOR ITSELF (rows[i][j]), so a
#     #    later neighbour (the tile below, the tile to the right) is blended against the already blended tile
#     result_rows = []
#     for i, row in enumerate(rows):
#         result_row = []
#         for j, tile in enumerate(row):
#             if i > 0: tile = blend_v(rows[i-1][j], tile, blend_h)   # first: with the tile above (which was
#                                                                      #   itself v- and h-blended earlier)
#             if j > 0: tile = blend_h(row[j-1], tile, blend_w)       # then: with the tile to the left (already
#                                                                      #   v- and h-blended in this pass)
#             result_row.append(tile[:, :, :, :tile_sample_stride_h, :tile_sample_stride_w])   # keep the first
#             #   stride px rows/columns (python slicing: all of a smaller edge tile when it is shorter)
#         result_rows.append(cat(result_row, dim=width))
#     dec = cat(result_rows, dim=height)[:, :, :, :8*h, :8*w]      # final crop to the sample size
#     dec = clamp(dec, -1, 1)                                       # clamp ONLY here, after all blending
#
# blend_v(a, b, extent):                                           # a above b; rows (dim -2)
#     extent = min(a.height_px, b.height_px, extent)
#     for y in range(extent):                                      # in place on b, row by row
#         b[..., y, :] = a[..., a.height_px - extent + y, :] * (1 - y / extent) + b[..., y, :] * (y / extent)
# blend_h(a, b, extent):                                           # a left of b; columns (dim -1)
#     extent = min(a.width_px, b.width_px, extent)
#     for x in range(extent):
#         b[..., :, x] = a[..., :, a.width_px - extent + x] * (1 - x / extent) + b[..., :, x] * (x / extent)
#   The weights y / extent are python doubles; torch multiplies the fp32 tensor by them as fp32 scalars
#   (mul, mul, add: three separately rounded fp32 ops). For extent 16 they are exact (multiples of 1/16).
#   blend_v needs a.width == b.width and blend_h a.height == b.height: true here, since tiles of one column
#   share their width and tiles of one row their height.
#   With strides that are multiples of 8 px, "a's last `extent` rows" are exactly the pixels that overlap b's
#   first rows (a full tile a: rows stride_px ..< tile_px; a truncated edge tile a: b is then shorter than the
#   blend, extent = b.height_px, and a's last extent rows are again the overlap).
#
# The tile grids of this fixture (latent 10 x 14 -> video 80 x 112 px, T = 2 -> 5 frames):
#   tiled   (tile 8, stride 6): row origins 0, 6     -> heights 8, 4    (px 64, 32);
#                               col origins 0, 6, 12 -> widths  8, 8, 2 (px 64, 64, 16);
#                               kept px rows 48 + 32 = 80, columns 48 + 48 + 16 = 112
#   tiled_b (tile 6, stride 4): row origins 0, 4, 8     -> heights 6, 6, 2    (px 48, 48, 16);
#                               col origins 0, 4, 8, 12 -> widths 6, 6, 6, 2  (px 48, 48, 48, 16);
#                               kept px rows 32 * 2 + 16 = 80, columns 32 * 3 + 16 = 112
#   Edge tiles (2 latent = 16 px) get extent min(64 or 48, 16, 16) = 16 = their whole height or width.
#
# Besides diffusers' tiled decode, this script re-implements the description above independently (each tile decoded
# untiled and unclamped, as a Swift WanVAE.decode(..., clamp: false) of the cropped latent would; blends and crops
# written out by hand) and asserts it matches diffusers' output (it does bit for bit), so the text above is checked.
# Printed for information: max and mean |tiled - full| (tiling changes the result near the seams, by design).
# ---------------------------------------------------------------------------------------------------------------
import ast
import json
import os
import struct

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import load_file

torch.set_num_threads(1)  # one reduction order on every run
here = os.path.dirname(os.path.abspath(__file__))

# Reuse generate_vae.py's configuration constants and its diffusers -> official name map without running it
# (running it would re-randomise and rewrite the fixture): execute only those top-level statements.
_src_path = os.path.join(here, "generate_vae.py")
with open(_src_path) as f:
    _tree = ast.parse(f.read(), _src_path)
_wanted = {"DIM", "Z", "MULT", "NRB", "MEAN", "STD", "official"}
_nodes = []
for node in _tree.body:
    if isinstance(node, ast.FunctionDef) and node.name in _wanted:
        _nodes.append(node)
    elif isinstance(node, ast.Assign):
        names = {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        if names and names <= _wanted:
            _nodes.append(node)
_ns = {}
exec(compile(ast.Module(body=_nodes, type_ignores=[]), _src_path, "exec"), _ns)
DIM, Z, MULT, NRB, MEAN, STD, official = (_ns[k] for k in ("DIM", "Z", "MULT", "NRB", "MEAN", "STD", "official"))
assert (DIM, Z, MULT, NRB) == (6, 4, [1, 2, 2, 2], 1)

vae = AutoencoderKLWan(base_dim=DIM, z_dim=Z, dim_mult=MULT, num_res_blocks=NRB, attn_scales=[],
                       temperal_downsample=[False, True, True], dropout=0.0).float().eval()
stored = load_file(os.path.join(here, "weights.safetensors"))
state = {k: stored[official(k)] for k in vae.state_dict()}
assert len(state) == len(stored)
vae.load_state_dict(state, strict=True)

mean = torch.tensor(MEAN, dtype=torch.float32).view(1, Z, 1, 1, 1)
inv_std = (1.0 / torch.tensor(STD, dtype=torch.float32)).view(1, Z, 1, 1, 1)

# The loaded model reproduces generate_vae.py's decode goldens.
cases = load_file(os.path.join(here, "cases.safetensors"))
with torch.no_grad():
    for frames in (1, 2, 3, 5):
        x = vae.decode(cases[f"decode{frames}.latent"][None] / inv_std + mean).sample[0]
        assert torch.allclose(x, cases[f"decode{frames}.video"], rtol=0, atol=1e-5), frames  # ~4e-6: thread count

T, H, W = 2, 10, 14
KEPT_FRAMES = [0, 3]  # of the 5 decoded frames: one of the first chunk, one of the second (keeps the file small)
z = torch.randn(1, Z, T, H, W, generator=torch.Generator().manual_seed(20250), dtype=torch.float32)
z_denorm = z / inv_std + mean  # official WanVAE.decode de-normalisation


def decode_unclamped(v, x):
    """diffusers' untiled _decode without its final clamp (one latent frame per decoder call, fresh caches)."""
    v.clear_cache()
    x = v.post_quant_conv(x)
    outs = []
    for k in range(x.shape[2]):
        v._conv_idx = [0]
        outs.append(v.decoder(x[:, :, k:k + 1], feat_cache=v._feat_map, feat_idx=v._conv_idx, first_chunk=(k == 0)))
    v.clear_cache()
    return torch.cat(outs, 2)


def tiled_by_description(v, x, tile, stride):
    """The algorithm documented above, written independently of diffusers' tiled_decode (tile, stride: latent)."""
    h, w = x.shape[3], x.shape[4]
    blend, keep = 8 * (tile - stride), 8 * stride
    rows = [[decode_unclamped(v, x[:, :, :, i:i + tile, j:j + tile]).clone() for j in range(0, w, stride)]
            for i in range(0, h, stride)]
    out = torch.zeros(1, 3, rows[0][0].shape[2], 8 * h, 8 * w)
    for i, row in enumerate(rows):
        for j, b in enumerate(row):
            if i > 0:
                a = rows[i - 1][j]
                e = min(a.shape[3], b.shape[3], blend)
                for y in range(e):
                    b[:, :, :, y] = a[:, :, :, a.shape[3] - e + y] * (1 - y / e) + b[:, :, :, y] * (y / e)
            if j > 0:
                a = row[j - 1]
                e = min(a.shape[4], b.shape[4], blend)
                for c in range(e):
                    b[..., c] = a[..., a.shape[4] - e + c] * (1 - c / e) + b[..., c] * (c / e)
            y0, x0 = i * keep, j * keep
            hh, ww = min(keep, b.shape[3], 8 * h - y0), min(keep, b.shape[4], 8 * w - x0)
            if hh > 0 and ww > 0:
                out[:, :, :, y0:y0 + hh, x0:x0 + ww] = b[:, :, :, :hh, :ww]
    return out.clamp(-1, 1)


tensors = {"latent": z[0].contiguous()}
metadata = {"latent_mean": json.dumps(MEAN), "latent_std": json.dumps(STD),
            "latent_shape": json.dumps(list(z.shape[1:])), "video_shape": "[3, 5, 80, 112]",
            "kept_frames": json.dumps(KEPT_FRAMES)}
with torch.no_grad():
    vae.disable_tiling()
    full = vae.decode(z_denorm).sample
    for name, tile_px, stride_px in (("tiled", 64, 48), ("tiled_b", 48, 32)):
        vae.enable_tiling(tile_sample_min_height=tile_px, tile_sample_min_width=tile_px,
                          tile_sample_stride_height=stride_px, tile_sample_stride_width=stride_px)
        out = vae.decode(z_denorm).sample
        vae.disable_tiling()
        mine = tiled_by_description(vae, z_denorm, tile_px // 8, stride_px // 8)
        agree = float((mine - out).abs().max())
        assert agree <= 1e-5, (name, agree)  # float noise of different conv shapes (~2e-6)
        tensors[name] = out[0][:, KEPT_FRAMES].contiguous()
        metadata[f"{name}.tile_sample_min"] = str(tile_px)
        metadata[f"{name}.tile_sample_stride"] = str(stride_px)
        metadata[f"{name}.tile_latent_min"] = str(tile_px // 8)
        metadata[f"{name}.tile_latent_stride"] = str(stride_px // 8)
        metadata[f"{name}.blend_px"] = str(tile_px - stride_px)
        d = (out - full).abs()
        print(f"{name}: tile {tile_px} px / stride {stride_px} px: max |tiled - full| = {float(d.max()):.6g}, "
              f"mean = {float(d.mean()):.6g}; max |description - diffusers| = {agree:.3g}")
for k, v in list(tensors.items())[1:]:
    sat = float((v.abs() >= 1).float().mean())
    print(k, tuple(v.shape), f"max|x| {float(v.abs().max()):.4f}", f"saturated {sat:.4f}")


def write_safetensors(path, tensors, metadata):
    """safetensors with a deterministic header: metadata first, keys sorted, tensors in name order."""
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].numpy().astype("<f4"))
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad the header to 8 bytes with spaces, as the format allows
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


write_safetensors(os.path.join(here, "tiled.safetensors"), tensors, metadata)
