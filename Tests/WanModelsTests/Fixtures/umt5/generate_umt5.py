# Generates the tiny umT5 encoder fixtures of Tests/WanModelsTests/UMT5Tests.swift (spec §11.4).
# Pinned versions (PyPI): torch==2.13.0 (CPU build), transformers==5.24.0, safetensors==0.8.0, numpy==2.4.6.
# Run from this folder:  python generate_umt5.py
#
# A seeded UMT5EncoderModel (vocab 257, d_model 32, 2 layers, 4 heads × d_kv 8, d_ff 48, 32 buckets,
# max distance 128, gated GELU-tanh, fp32, eval) with every weight randomised (norm weights too), run
# on a batch of two prompts of L = 150 positions: prompt 0 fully real (relative distances up to 149,
# beyond max_distance 128), prompt 1 with 97 real tokens and 53 padding positions (attention mask).
#
# Files:
#   umt5_tiny_transformers.safetensors  weights in transformers names (shared.weight and the tied
#                                       encoder.embed_tokens.weight, as a saved UMT5EncoderModel holds them)
#   umt5_tiny_official.safetensors      the same weights in the official T5Encoder names (spec §4.4)
#   umt5_tiny_io.safetensors            ids i32 [2, 150], lengths i32 [2], mask f32 [2, 150] (1 real / 0 pad),
#                                       hidden f32 [2, 150, 32] = last_hidden_state with the attention mask,
#                                       hidden_bf16 / hidden_f16 the same model cast to bf16 / fp16 (as f32)
import copy

import torch
from safetensors.torch import save_file
from transformers import UMT5Config, UMT5EncoderModel

torch.manual_seed(20251127)
cfg = UMT5Config(vocab_size=257, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                 relative_attention_num_buckets=32, relative_attention_max_distance=128,
                 dropout_rate=0.0, layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu",
                 is_encoder_decoder=False, use_cache=False)
cfg._attn_implementation = "eager"
model = UMT5EncoderModel(cfg).eval().float()

with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("layer_norm.weight"):
            p.copy_(1 + 0.3 * torch.randn_like(p))
        elif "relative_attention_bias" in name:
            p.copy_(torch.randn_like(p))
        elif name == "shared.weight":
            p.copy_(torch.randn_like(p))
        else:  # Linear [out, in]
            p.copy_(torch.randn_like(p) * (0.6 / p.shape[1] ** 0.5))

L = 150
lengths = [150, 97]
ids = torch.randint(1, 257, (2, L), dtype=torch.int64)
mask = torch.zeros(2, L, dtype=torch.int64)
for b, n in enumerate(lengths):
    mask[b, :n] = 1
    ids[b, n:] = 0  # pad id
with torch.no_grad():
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()

reduced = {}
for name, dt in [("hidden_bf16", torch.bfloat16), ("hidden_f16", torch.float16)]:
    with torch.no_grad():
        reduced[name] = copy.deepcopy(model).to(dt)(input_ids=ids, attention_mask=mask).last_hidden_state.float().contiguous()

state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
save_file(state, "umt5_tiny_transformers.safetensors")

official = {"token_embedding.weight": state["shared.weight"], "norm.weight": state["encoder.final_layer_norm.weight"]}
for n in range(cfg.num_layers):
    b = f"encoder.block.{n}.layer."
    o = f"blocks.{n}."
    official[o + "norm1.weight"] = state[b + "0.layer_norm.weight"]
    for x in "qkvo":
        official[o + f"attn.{x}.weight"] = state[b + f"0.SelfAttention.{x}.weight"]
    official[o + "pos_embedding.embedding.weight"] = state[b + "0.SelfAttention.relative_attention_bias.weight"]
    official[o + "norm2.weight"] = state[b + "1.layer_norm.weight"]
    official[o + "ffn.gate.0.weight"] = state[b + "1.DenseReluDense.wi_0.weight"]
    official[o + "ffn.fc1.weight"] = state[b + "1.DenseReluDense.wi_1.weight"]
    official[o + "ffn.fc2.weight"] = state[b + "1.DenseReluDense.wo.weight"]
save_file({k: v.clone() for k, v in official.items()}, "umt5_tiny_official.safetensors")

save_file({"ids": ids.to(torch.int32).contiguous(), "lengths": torch.tensor(lengths, dtype=torch.int32),
           "mask": mask.float().contiguous(), "hidden": hidden.contiguous(), **reduced}, "umt5_tiny_io.safetensors")
print("hidden", tuple(hidden.shape), "max |h|", hidden.abs().max().item(), "tensors", len(state), len(official))
