#!/usr/bin/env python3
"""PyTorch's side of the GPU speed comparison, run by scripts/gpu-check.sh on the same card as
`CudaFinetune bench` (the GPU machine has PyTorch, transformers and peft; this machine need not).

  attention  torch.nn.functional.scaled_dot_product_attention on the flash backend, bf16, causal,
             the shapes of `CudaFinetune bench attention`; FLOPs counted the same way (forward
             4·B·H·T²·D halved for causal, backward 2.5× the forward). Key/value heads are
             repeated to the query heads beforehand (outside the timing), since the flash backend
             wants equal head counts; our kernel reads the shared heads directly.
  step       transformers' LlamaForCausalLM with sdpa attention, randomly initialised in bf16 with
             the shape of Llama-3.2-1B, peft LoRA (r=16, alpha 32, no dropout) on every linear
             layer, AdamW, gradient clipping at 1.0 -- the step `CudaFinetune bench step` takes;
             tokens/s and torch.cuda.max_memory_allocated.

Prints "result NAME VALUE" lines, as `CudaFinetune bench` does.
"""
import argparse
import time

import torch


def timed(fn, repeat):
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat


def attention(args):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b, t, h, kv, d = args.batch, args.seq_len, args.heads, args.kv_heads, args.head_dim
    gen = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(b, h, t, d, device="cuda", dtype=torch.bfloat16, generator=gen).requires_grad_()
    k = torch.randn(b, kv, t, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    v = torch.randn(b, kv, t, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    k = k.repeat_interleave(h // kv, dim=1).requires_grad_()
    v = v.repeat_interleave(h // kv, dim=1).requires_grad_()
    d_out = torch.randn(b, h, t, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    forward_flops = 4.0 * b * h * t * t * d / 2
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        forward = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), args.repeat)

        def both():
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            out.backward(d_out)

        total = timed(both, args.repeat)
    print(f"pytorch sdpa (flash) on {torch.cuda.get_device_name()}: batch {b}, seq {t}, heads {h}/{kv}, head dim {d}, causal, bf16")
    for name, seconds, flops in [("attention_forward", forward, forward_flops),
                                 ("attention_backward", total - forward, 2.5 * forward_flops),
                                 ("attention_forward_backward", total, 3.5 * forward_flops)]:
        print(f"{name:<28} {seconds * 1000:9.3f} ms   {flops / seconds / 1e12:8.2f} TFLOP/s")
        print(f"result {name}_tflops {flops / seconds / 1e12:.3f}")


def step(args):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
        rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(1)
    model = LlamaForCausalLM(config).to(device="cuda", dtype=torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                             "gate_proj", "up_proj", "down_proj"]))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, config.vocab_size, (args.batch_size, args.context_length), device="cuda")

    def one():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = timed(one, args.steps)
    tokens = args.batch_size * args.context_length
    peak = torch.cuda.max_memory_allocated()
    print(f"transformers + peft on {torch.cuda.get_device_name()}: llama-3.2-1b-shape, LoRA r={args.lora_r} on all linear layers, "
          f"batch {args.batch_size} × {args.context_length} tokens, bf16")
    print(f"step               {seconds * 1000:9.1f} ms   {tokens / seconds:12,.0f} tokens/s")
    print(f"result step_tokens_per_s {tokens / seconds:.1f}")
    print(f"peak memory allocated: {peak / 2**30:.2f} GiB")
    print(f"result step_peak_memory_bytes {peak}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    a = sub.add_parser("attention")
    a.add_argument("--batch", type=int, default=4)
    a.add_argument("--seq-len", type=int, default=2048)
    a.add_argument("--heads", type=int, default=32)
    a.add_argument("--kv-heads", type=int, default=8)
    a.add_argument("--head-dim", type=int, default=128)
    a.add_argument("--repeat", type=int, default=10)
    s = sub.add_parser("step")
    s.add_argument("--batch-size", type=int, default=1)
    s.add_argument("--context-length", type=int, default=2048)
    s.add_argument("--lora-r", type=int, default=16)
    s.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    attention(args) if args.what == "attention" else step(args)


if __name__ == "__main__":
    main()
