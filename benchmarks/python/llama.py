"""The Llama/Qwen2 decoder of r2rec's PyTorch-Python benchmark baselines (transformer_step.py, decode_step.py):
RMSNorm, rotary positions (theta 10000), grouped-query attention, SwiGLU, QKV bias, tied embeddings, float32,
eager attention, with an optional preallocated KV cache."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Norm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.w, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return self.w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def attend_grouped(q, k, v, mask, scale):
    """GQA without copying k/v: the r query heads sharing a kv head are folded into the row dim,
    q [B, H, T, dh] -> [B, Hkv, r*T, dh]. Measured faster than repeat_interleave on this machine (the
    expand copies the whole valid cache prefix every decode step), so the benchmark uses this one."""
    B, H, T, dh = q.shape
    Hkv = k.shape[1]
    r = H // Hkv
    s = q.reshape(B, Hkv, r * T, dh) @ k.transpose(-2, -1) * scale
    if mask is not None:
        s = s + (mask.repeat(r, 1) if r > 1 else mask)
    return (torch.softmax(s, -1) @ v).view(B, H, T, dh)


def attend_repeat(q, k, v, mask, scale):
    """GQA as HF's repeat_kv: expand k/v to H heads. Used only by the self-check's reference forward."""
    r = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(r, 1), v.repeat_interleave(r, 1)
    s = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        s = s + mask
    return torch.softmax(s, -1) @ v


class Layer(nn.Module):
    def __init__(self, d, H, Hkv, ffn, bias=True):
        super().__init__()
        self.H, self.Hkv, self.dh = H, Hkv, d // H
        self.n1, self.n2 = Norm(d), Norm(d)
        self.q, self.k, self.v = nn.Linear(d, d, bias=bias), nn.Linear(d, Hkv * self.dh, bias=bias), nn.Linear(d, Hkv * self.dh, bias=bias)
        self.o = nn.Linear(d, d, bias=False)
        self.gate, self.up, self.down = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False), nn.Linear(ffn, d, bias=False)

    def forward(self, x, cos, sin, mask, cache=None, pos=0, attend=attend_grouped):
        """x [B, T, d] at positions pos..pos+T-1; cos/sin [T, dh]; mask [T, pos+T] or None. With cache=(K, V)
        the new k/v are written at columns pos..pos+T-1 and attention runs over columns [0, pos+T)."""
        B, T, d = x.shape
        h = self.n1(x)
        q = self.q(h).view(B, T, self.H, self.dh).transpose(1, 2)
        k = self.k(h).view(B, T, self.Hkv, self.dh).transpose(1, 2)
        v = self.v(h).view(B, T, self.Hkv, self.dh).transpose(1, 2)
        rot = lambda t: torch.cat((-t[..., self.dh // 2:], t[..., :self.dh // 2]), -1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        if cache is not None:
            K, V = cache
            K[:, :, pos:pos + T] = k
            V[:, :, pos:pos + T] = v
            k, v = K[:, :, :pos + T], V[:, :, :pos + T]
        a = attend(q, k, v, mask, 1.0 / math.sqrt(self.dh))
        x = x + self.o(a.transpose(1, 2).reshape(B, T, d))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, d, L, H, Hkv, ffn, V, max_len, bias=True):
        super().__init__()
        self.emb, self.layers, self.norm = nn.Embedding(V, d), nn.ModuleList([Layer(d, H, Hkv, ffn, bias) for _ in range(L)]), Norm(d)
        self.Hkv, self.dh = Hkv, d // H
        inv = 1.0 / (10000.0 ** (torch.arange(0, self.dh, 2).float() / self.dh))
        f = torch.arange(max_len).float()[:, None] * inv[None]
        e = torch.cat((f, f), -1)
        self.cos, self.sin = e.cos(), e.sin()

    def new_cache(self, B, S):
        return [(torch.zeros(B, self.Hkv, S, self.dh), torch.zeros(B, self.Hkv, S, self.dh)) for _ in self.layers]

    def hidden(self, ids, pos, caches=None, attend=attend_grouped):
        """Final hidden states (before the final norm) of ids [B, T] at positions pos..pos+T-1."""
        T = ids.shape[1]
        cos, sin = self.cos[pos:pos + T], self.sin[pos:pos + T]
        # one query row per sequence needs no mask; otherwise causal over [0, pos+T)
        mask = None if T == 1 else torch.full((T, pos + T), torch.finfo(torch.float32).min).triu(pos + 1)
        x = self.emb(ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, mask, None if caches is None else caches[i], pos, attend)
        return x

    def logits(self, x):
        return self.norm(x) @ self.emb.weight.t()
