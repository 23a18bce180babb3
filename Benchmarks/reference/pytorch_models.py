#!/usr/bin/env python3
"""PyTorch eager timings of the `wan-bench models` rows, for a side-by-side comparison on the same machine.

    python3 Benchmarks/reference/pytorch_models.py [--threads 2] [--repeats 3] [--rows dit,t5,vae]

Needs PyPI torch, diffusers and transformers (a CPU run; nothing here is used by the build or the tests).
Same shapes as Benchmarks/wan-bench/ModelsBench.swift on a CPU, fp32, random weights:
  - DiT T2V-1.3B (diffusers WanTransformer3DModel, 30 layers, dim 1536) on a latent [1, 16, 2, 30, 52]
    (780 tokens) with a context [1, 512, 4096], timestep 500;
  - umT5-XXL with 4 of its 24 layers at full width (transformers UMT5EncoderModel, d_model 4096, d_ff 10240,
    64 heads, vocabulary trimmed to 32000 rows), 512 tokens;
  - the Wan 2.1 VAE (diffusers AutoencoderKLWan, default config) decoding a latent [1, 16, 2, 30, 52] to
    5 frames of 240x416.
Prints one line per row: median milliseconds over the repeats after one warm-up, and the peak resident set.
"""
import argparse
import resource
import statistics
import time

import torch


def timed(fn, repeats):
    with torch.no_grad():
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", default="dit,t5,vae")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = args.rows.split(",")
    print(f"# PyTorch {torch.__version__} eager, fp32, {args.threads} threads, median of {args.repeats}")
    if "dit" in rows:
        from diffusers import WanTransformer3DModel
        model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                                      out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30,
                                      cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6).eval()
        x = torch.randn(1, 16, 2, 30, 52)
        ctx = torch.randn(1, 512, 4096)
        t = torch.tensor([500.0])
        ms = timed(lambda: model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False), args.repeats)
        print(f"DiT T2V-1.3B forward, latent 2x30x52 (780 tokens), ctx 512: {ms:.1f} ms")
        del model
    if "t5" in rows:
        from transformers import UMT5Config, UMT5EncoderModel
        cfg = UMT5Config(vocab_size=32000, d_model=4096, d_kv=64, d_ff=10240, num_layers=4, num_heads=64,
                         relative_attention_num_buckets=32, relative_attention_max_distance=128,
                         feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True)
        model = UMT5EncoderModel(cfg).eval()
        ids = (torch.arange(512) * 7 % 32000).unsqueeze(0)
        ms = timed(lambda: model(input_ids=ids), args.repeats)
        print(f"umT5-XXL encoder, 4 of 24 layers, L 512: {ms:.1f} ms")
        del model
    if "vae" in rows:
        from diffusers import AutoencoderKLWan
        vae = AutoencoderKLWan().eval()
        z = torch.randn(1, 16, 2, 30, 52)
        ms = timed(lambda: vae.decode(z, return_dict=False), args.repeats)
        print(f"VAE decode (Wan 2.1), 2 latent frames -> 5 x 240x416: {ms:.1f} ms")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
