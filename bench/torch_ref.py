#!/usr/bin/env python3
"""PyTorch reference numbers for bench/RESULTS.md, measured on the same GPU in the same command as
our Vulkan benchmarks (bench/gpu_run.sh): HBM copy bandwidth, f16/bf16 matmul TFLOP/s, SDPA prefill
TFLOP/s and decode-attention bandwidth, and a Hugging Face transformers LLaMA-3.1-8B-shaped model
(random weights, bf16, SDPA) prefilling 4K tokens. Prints one JSON object per line.

Off the engine's runtime path: a benchmark reference only."""
import json
import sys
import time

import torch


def timed(fn, reps=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def emit(**kw):
    print(json.dumps(kw), flush=True)


def main():
    dev = "cuda"
    name = torch.cuda.get_device_name(0)
    emit(test="device", name=name, torch=torch.__version__, cuda=torch.version.cuda)

    n = 1 << 30  # 1 GiB copy
    a = torch.empty(n, dtype=torch.uint8, device=dev)
    b = torch.empty_like(a)
    s = timed(lambda: b.copy_(a))
    emit(test="copy", bytes=n, GBps=2 * n / s / 1e9)
    del a, b

    for dt in (torch.float16, torch.bfloat16):
        for m, n_, k in ((4096, 4096, 4096), (512, 14336, 4096), (512, 4096, 14336)):
            x = torch.randn(m, k, dtype=dt, device=dev)
            w = torch.randn(n_, k, dtype=dt, device=dev)
            s = timed(lambda: x @ w.T)
            emit(test="matmul", dtype=str(dt), m=m, n=n_, k=k, TFLOPs=2 * m * n_ * k / s / 1e12)

    F = torch.nn.functional
    for L in (4096, 16384):  # LLaMA-3.1-8B: 32 q heads, 8 kv heads, head_dim 128; causal prefill
        q = torch.randn(1, 32, L, 128, dtype=torch.float16, device=dev)
        k = torch.randn(1, 8, L, 128, dtype=torch.float16, device=dev)
        v = torch.randn_like(k)
        s = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), reps=5)
        flops = 4 * 32 * 128 * L * L / 2
        emit(test="sdpa_prefill", ctx=L, TFLOPs=flops / s / 1e12, ms=s * 1e3)
    L = 131072  # decode: one query over a 128K cache
    q = torch.randn(1, 32, 1, 128, dtype=torch.float16, device=dev)
    k = torch.randn(1, 8, L, 128, dtype=torch.float16, device=dev)
    v = torch.randn_like(k)
    s = timed(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), reps=50)
    emit(test="sdpa_decode", ctx=L, GBps=2 * k.numel() * 2 / s / 1e9, ms=s * 1e3)
    del q, k, v
    torch.cuda.empty_cache()

    if "--no-hf" in sys.argv:
        return
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
                      rope_theta=500000.0, attn_implementation="sdpa", torch_dtype=torch.bfloat16)
    with torch.device(dev):
        torch.set_default_dtype(torch.bfloat16)
        model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 128000, (1, 4096), device=dev)
    with torch.no_grad():
        s = timed(lambda: model(ids, logits_to_keep=1), reps=3, warmup=1)
    emit(test="hf_prefill", model="llama3.1-8b-shaped random bf16 sdpa", tokens=4096, tok_per_s=4096 / s)


if __name__ == "__main__":
    main()
