"""PyTorch-Python baseline for bench_transformer: the same Llama/Qwen2 decoder (same shapes, float32, eager
attention) written in PyTorch, timed for forward + backward of a cross-entropy loss. Prints one line:
'median_seconds <s>'. usage: transformer_step.py B T d layers heads kv_heads ffn vocab reps threads"""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Norm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.w, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return self.w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class Layer(nn.Module):
    def __init__(self, d, H, Hkv, ffn):
        super().__init__()
        self.H, self.Hkv, self.dh = H, Hkv, d // H
        self.n1, self.n2 = Norm(d), Norm(d)
        self.q, self.k, self.v = nn.Linear(d, d, bias=True), nn.Linear(d, Hkv * self.dh, bias=True), nn.Linear(d, Hkv * self.dh, bias=True)
        self.o = nn.Linear(d, d, bias=False)
        self.gate, self.up, self.down = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False), nn.Linear(ffn, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, d = x.shape
        h = self.n1(x)
        q = self.q(h).view(B, T, self.H, self.dh).transpose(1, 2)
        k = self.k(h).view(B, T, self.Hkv, self.dh).transpose(1, 2)
        v = self.v(h).view(B, T, self.Hkv, self.dh).transpose(1, 2)
        rot = lambda t: torch.cat((-t[..., self.dh // 2:], t[..., :self.dh // 2]), -1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(self.H // self.Hkv, 1), v.repeat_interleave(self.H // self.Hkv, 1)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.dh) + mask, -1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(B, T, d))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def main():
    B, T, d, L, H, Hkv, ffn, V, reps, threads = map(int, sys.argv[1:11])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    emb, layers, norm = nn.Embedding(V, d), nn.ModuleList([Layer(d, H, Hkv, ffn) for _ in range(L)]), Norm(d)
    dh = d // H
    inv = 1.0 / (10000.0 ** (torch.arange(0, dh, 2).float() / dh))
    f = torch.arange(T).float()[:, None] * inv[None]
    e = torch.cat((f, f), -1)
    cos, sin = e.cos(), e.sin()
    mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)
    ids = torch.randint(V, (B, T))
    times = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        x = emb(ids)
        for layer in layers:
            x = layer(x, cos, sin, mask)
        logits = norm(x) @ emb.weight.t()
        loss = F.cross_entropy(logits.view(-1, V), ids.view(-1))
        loss.backward()
        for p in list(emb.parameters()) + list(layers.parameters()) + list(norm.parameters()):
            p.grad = None
        if r > 0:
            times.append(time.perf_counter() - t0)
    times.sort()
    print("median_seconds", times[len(times) // 2])


if __name__ == "__main__":
    main()
