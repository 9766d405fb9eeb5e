"""An independent PyTorch-Python implementation of the Llama/Qwen2 decoder forward pass (the math of
Hugging Face's modeling_qwen2.py / modeling_llama.py, eager attention), used to cross-check r2rec's C++
model. Reads config.json + model.safetensors (parsed by hand: 8-byte header size, JSON, raw little-endian
data), runs the token ids given on the command line and writes the float32 logits as raw bytes.

usage: qwen2_reference.py MODEL_DIR OUT_FILE ids...   (one sequence, no padding)
"""
import json
import math
import struct
import sys

import numpy as np
import torch


def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    dtypes = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.astype(np.float64))
    return out


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def main():
    model_dir, out_path, ids = sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3:]]
    cfg = json.load(open(model_dir + "/config.json"))
    W = load_safetensors(model_dir + "/model.safetensors")
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", H)
    dh = cfg.get("head_dim") or d // H
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    T = len(ids)
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]  # [T, d], float64 throughout
    inv_freq = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
    freqs = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    causal = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)

        def proj(name, heads):
            y = h @ W[p + f"self_attn.{name}.weight"].T
            if p + f"self_attn.{name}.bias" in W:
                y = y + W[p + f"self_attn.{name}.bias"]
            return y.view(T, heads, dh).transpose(0, 1)  # [heads, T, dh]

        q, k, v = proj("q_proj", H), proj("k_proj", Hkv), proj("v_proj", Hkv)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // Hkv, dim=0)
        v = v.repeat_interleave(H // Hkv, dim=0)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + causal, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, H * dh) @ W[p + "self_attn.o_proj.weight"].T
        x = x + o
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        gate = h @ W[p + "mlp.gate_proj.weight"].T
        up = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    logits = (x @ head.T).to(torch.float32).numpy()
    open(out_path, "wb").write(logits.tobytes())


if __name__ == "__main__":
    main()
