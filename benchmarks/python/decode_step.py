"""PyTorch-Python baseline for batched greedy decoding with a KV cache: the decoder of llama.py, as
transformer_step.py (same shapes, float32, eager attention), under inference mode. Each repetition prefills B
prompts of P tokens into a preallocated per-layer KV cache ([B, Hkv, P+N, dh]), takes the last position's logits,
then generates N tokens greedily (the first from the prefill logits, then N-1 single-token steps that write k/v at
column P+s and attend over columns [0, P+s]); every step also gathers the chosen token's log_softmax. Prefill and
decode are timed separately; the first repetition is a warm-up. Prints two lines:
'median_prefill_seconds <s>' and 'median_decode_seconds <s>'.
With DECODE_CHECK=1 it first checks, on a small shape, that the cached logits equal a plain causal forward (no cache)
over prompt + generated tokens, printing 'check max_abs_diff <x>' and exiting 1 if it is not below 1e-4.
With a 12th argument G > 1 the B prompts are each repeated G times (B*G rows), as Hugging Face
generate(num_return_sequences=G) expands its inputs before the prefill.
usage: decode_step.py B P N d layers heads kv_heads ffn vocab reps threads [G]"""
import os
import sys
import time

import torch

from llama import Model, attend_repeat


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
    G = int(sys.argv[12]) if len(sys.argv) > 12 else 1
    torch.set_num_threads(threads)
    with torch.inference_mode():
        if os.environ.get("DECODE_CHECK") == "1":
            check()
        torch.manual_seed(0)
        model = Model(d, L, H, Hkv, ffn, V, P + N)
        prompts = torch.randint(V, (B, P)).repeat_interleave(G, 0)
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
