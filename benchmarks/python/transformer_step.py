"""PyTorch-Python baseline for bench_transformer: the same Llama/Qwen2 decoder (llama.py: same shapes, float32,
eager attention, k/v repeated per query head) written in PyTorch, timed for forward + backward of a
cross-entropy loss. Prints one line: 'median_seconds <s>'.
usage: transformer_step.py B T d layers heads kv_heads ffn vocab reps threads"""
import sys
import time

import torch
import torch.nn.functional as F

from llama import Model, attend_repeat


def main():
    B, T, d, L, H, Hkv, ffn, V, reps, threads = map(int, sys.argv[1:11])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Model(d, L, H, Hkv, ffn, V, T)
    ids = torch.randint(V, (B, T))
    times = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        logits = model.logits(model.hidden(ids, 0, None, attend_repeat))
        loss = F.cross_entropy(logits.view(-1, V), ids.view(-1))
        loss.backward()
        for p in model.parameters():
            p.grad = None
        if r > 0:
            times.append(time.perf_counter() - t0)
    times.sort()
    print("median_seconds", times[len(times) // 2])


if __name__ == "__main__":
    main()
