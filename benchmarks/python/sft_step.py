"""PyTorch-Python baseline for bench_sft: SFT steps the way a Hugging-Face-style trainer takes them on the same
sequences (the file bench_sft writes: ML-100K traces tokenized as r2rec trains them), model and batch: global
batches of B shuffled sequences, micro-batches of M in that order, right-padded to the micro-batch's longest,
logits at every position, token cross-entropy (reduction none) times the loss weights (0 on the prompt and the
padding, like labels = -100), summed over the batch and divided by its weight, backward per micro-batch, clip 1,
AdamW. Tokens/s counts real (unpadded) tokens, as r2rec does. Prints 'step_tokens_per_s <x>' per timed step.
usage: sft_step.py FILE B M steps d layers heads kv_heads ffn vocab qkv_bias lr threads"""
import random
import struct
import sys
import time

import torch
import torch.nn.functional as F

from llama import Model, attend_grouped


def read(path):
    seqs = []
    with open(path, "rb") as f:
        (n,) = struct.unpack("<q", f.read(8))
        for _ in range(n):
            length, loss_from = struct.unpack("<qq", f.read(16))
            ids = list(struct.unpack("<%dq" % length, f.read(8 * length)))
            w = list(struct.unpack("<%df" % length, f.read(4 * length)))
            seqs.append((ids, loss_from, w))
    return seqs


def main():
    path = sys.argv[1]
    B, M, steps, d, L, H, Hkv, ffn, V, bias = map(int, sys.argv[2:12])
    lr, threads = float(sys.argv[12]), int(sys.argv[13])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    seqs = read(path)
    longest = max(len(s[0]) for s in seqs)
    model = Model(d, L, H, Hkv, ffn, V, longest, bias=bool(bias))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    order = list(range(len(seqs)))
    random.Random(0).shuffle(order)
    for step in range(steps):
        t0 = time.perf_counter()
        batch = [seqs[i] for i in order[step * B:(step + 1) * B]]
        total_w = sum(sum(w[max(1, lf):]) for ids, lf, w in batch)
        tokens = sum(len(ids) for ids, lf, w in batch)
        for m0 in range(0, B, M):
            micro = batch[m0:m0 + M]
            T = max(len(ids) for ids, lf, w in micro)
            ids = torch.zeros(len(micro), T, dtype=torch.long)
            weight = torch.zeros(len(micro), T)
            for k, (q, lf, w) in enumerate(micro):
                ids[k, :len(q)] = torch.tensor(q)
                for t in range(max(1, lf), len(q)):
                    weight[k, t] = w[t]
            logits = model.logits(model.hidden(ids, 0, None, attend_grouped))[:, :-1]
            loss = F.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1), reduction="none")
            (loss * weight[:, 1:].reshape(-1)).sum().div(total_w).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step > 0:  # the first step warms up
            print("step_tokens_per_s", tokens / (time.perf_counter() - t0), flush=True)


if __name__ == "__main__":
    main()
