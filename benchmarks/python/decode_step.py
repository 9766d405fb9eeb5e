"""PyTorch-Python baseline for batched greedy decoding with a KV cache: the same Llama/Qwen2 decoder as
transformer_step.py (same shapes, float32, eager attention), under inference mode. Each repetition prefills B
prompts of P tokens into a preallocated per-layer KV cache ([B, Hkv, P+N, dh]), takes the last position's logits,
then generates N tokens greedily (the first from the prefill logits, then N-1 single-token steps that write k/v at
column P+s and attend over columns [0, P+s]); every step also gathers the chosen token's log_softmax. Prefill and
decode are timed separately; the first repetition is a warm-up. Prints two lines:
'median_prefill_seconds <s>' and 'median_decode_seconds <s>'.
With DECODE_CHECK=1 it first checks, on a small shape, that the cached logits equal a plain causal forward (no cache)
over prompt + generated tokens, printing 'check max_abs_diff <x>' and exiting 1 if it is not below 1e-4.
usage: decode_step.py B P N d layers heads kv_heads ffn vocab reps threads"""
import math
import os
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
    def __init__(self, d, H, Hkv, ffn):
        super().__init__()
        self.H, self.Hkv, self.dh = H, Hkv, d // H
        self.n1, self.n2 = Norm(d), Norm(d)
        self.q, self.k, self.v = nn.Linear(d, d, bias=True), nn.Linear(d, Hkv * self.dh, bias=True), nn.Linear(d, Hkv * self.dh, bias=True)
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
    def __init__(self, d, L, H, Hkv, ffn, V, max_len):
        super().__init__()
        self.emb, self.layers, self.norm = nn.Embedding(V, d), nn.ModuleList([Layer(d, H, Hkv, ffn) for _ in range(L)]), Norm(d)
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


def pick(logits):
    """Greedy token [B, 1] and its log-prob [B, 1] from last-position logits [B, V]."""
    tok = logits.argmax(-1, keepdim=True)
    return tok, torch.log_softmax(logits, -1).gather(-1, tok)


def generate(model, prompts, N, keep_logits=False):
    """Returns (tokens [B, N], logprobs [B, N], prefill_s, decode_s, list of per-token logits if keep_logits)."""
    B, P = prompts.shape
    caches = model.new_cache(B, P + N)
    kept = []
    t0 = time.perf_counter()
    logits = model.logits(model.hidden(prompts, 0, caches)[:, -1])
    tok, lp = pick(logits)
    t1 = time.perf_counter()
    toks, lps = [tok], [lp]
    if keep_logits:
        kept.append(logits)
    for s in range(1, N):
        logits = model.logits(model.hidden(tok, P + s - 1, caches)[:, -1])
        tok, lp = pick(logits)
        toks.append(tok)
        lps.append(lp)
        if keep_logits:
            kept.append(logits)
    t2 = time.perf_counter()
    return torch.cat(toks, 1), torch.cat(lps, 1), t1 - t0, t2 - t1, kept


def check():
    """Cached greedy decode vs one plain causal forward (no cache, repeat_interleave GQA) over prompt+generated."""
    torch.manual_seed(1)
    B, P, N, d, L, H, Hkv, ffn, V = 3, 7, 6, 64, 2, 4, 2, 96, 101
    model = Model(d, L, H, Hkv, ffn, V, P + N)
    prompts = torch.randint(V, (B, P))
    toks, _, _, _, kept = generate(model, prompts, N, keep_logits=True)
    full = torch.cat((prompts, toks[:, :-1]), 1)
    ref = model.logits(model.hidden(full, 0, None, attend_repeat))[:, P - 1:]
    diff = (torch.stack(kept, 1) - ref).abs().max().item()
    same = torch.equal(ref.argmax(-1), toks)
    print("check max_abs_diff", diff)
    if not (diff < 1e-4 and same):
        print("check FAILED", "(greedy tokens differ)" if not same else "")
        sys.exit(1)


def main():
    B, P, N, d, L, H, Hkv, ffn, V, reps, threads = map(int, sys.argv[1:12])
    torch.set_num_threads(threads)
    with torch.inference_mode():
        if os.environ.get("DECODE_CHECK") == "1":
            check()
        torch.manual_seed(0)
        model = Model(d, L, H, Hkv, ffn, V, P + N)
        prompts = torch.randint(V, (B, P))
        pre, dec = [], []
        for r in range(reps + 1):
            _, _, tp, td, _ = generate(model, prompts, N)
            if r > 0:
                pre.append(tp)
                dec.append(td)
    pre.sort()
    dec.sort()
    print("median_prefill_seconds", pre[len(pre) // 2])
    print("median_decode_seconds", dec[len(dec) // 2])


if __name__ == "__main__":
    main()
