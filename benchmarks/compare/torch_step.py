#!/usr/bin/env python3
"""PyTorch's side of benchmarks/compare/compare.sh: the bench-tiny training step on the CPU, written in plain
torch (so Debian's python3-torch 1.13 runs it; no transformers needed) to match CudaFinetune's `bench step`:

  Llama (vocab 8192, hidden 256, intermediate 768, 4 layers, 8 heads, 4 KV heads, RMSNorm eps 1e-5, RoPE 10000,
  untied head), batch 8 x 256 random tokens, causal attention, next-token cross-entropy; LoRA r=8 alpha 16 on
  q/k/v/o (dropout as given) or full fine-tuning; gradient clipping at 1.0; AdamW (weight decay 0.01).

Prints "result step_tokens_per_s V" and "result step_peak_memory_bytes V" (ru_maxrss), as `CudaFinetune bench` does.
"""
import argparse
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, HIDDEN, INTER, LAYERS, HEADS, KV, EPS, THETA = 8192, 256, 768, 4, 8, 4, 1e-5, 10000.0
HEAD = HIDDEN // HEADS


class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(HIDDEN))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


class LoraLinear(nn.Module):
    def __init__(self, n_in, n_out, rank, dropout):
        super().__init__()
        self.base = nn.Linear(n_in, n_out, bias=False)
        self.rank = rank
        if rank:
            self.base.weight.requires_grad_(False)
            self.a = nn.Parameter(torch.empty(rank, n_in))
            nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
            self.b = nn.Parameter(torch.zeros(n_out, rank))
            self.drop = nn.Dropout(dropout)
            self.scale = 2.0  # alpha / r

    def forward(self, x):
        y = self.base(x)
        if self.rank:
            y = y + (self.drop(x) @ self.a.t() @ self.b.t()) * self.scale
        return y


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Block(nn.Module):
    def __init__(self, rank, dropout):
        super().__init__()
        self.n1, self.n2 = RMSNorm(), RMSNorm()
        self.q = LoraLinear(HIDDEN, HEADS * HEAD, rank, dropout)
        self.k = LoraLinear(HIDDEN, KV * HEAD, rank, dropout)
        self.v = LoraLinear(HIDDEN, KV * HEAD, rank, dropout)
        self.o = LoraLinear(HEADS * HEAD, HIDDEN, rank, dropout)
        self.gate = nn.Linear(HIDDEN, INTER, bias=False)
        self.up = nn.Linear(HIDDEN, INTER, bias=False)
        self.down = nn.Linear(INTER, HIDDEN, bias=False)
        if rank:
            for m in (self.gate, self.up, self.down):
                m.weight.requires_grad_(False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.n1(x)
        q = self.q(h).view(b, t, HEADS, HEAD).transpose(1, 2)
        k = self.k(h).view(b, t, KV, HEAD).transpose(1, 2)
        v = self.v(h).view(b, t, KV, HEAD).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(HEADS // KV, dim=1)
        v = v.repeat_interleave(HEADS // KV, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(HEAD) + mask
        attn = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, HIDDEN)
        x = x + self.o(attn)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, rank, dropout):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.blocks = nn.ModuleList(Block(rank, dropout) for _ in range(LAYERS))
        self.norm = RMSNorm()
        self.head = nn.Linear(HIDDEN, VOCAB, bias=False)
        if rank:
            for p in (self.embed.weight, self.norm.weight, self.head.weight):
                p.requires_grad_(False)
            for blk in self.blocks:
                blk.n1.weight.requires_grad_(False)
                blk.n2.weight.requires_grad_(False)

    def forward(self, ids):
        t = ids.shape[1]
        inv = 1.0 / (THETA ** (torch.arange(0, HEAD, 2).float() / HEAD))
        freqs = torch.outer(torch.arange(t).float(), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.embed(ids)
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--peft", choices=["lora", "none"], default="lora")
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--context-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = Llama(8 if args.peft == "lora" else 0, args.lora_dropout)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, VOCAB, (args.batch_size, args.context_length))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return loss.item()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - start) / args.steps
    tokens = args.batch_size * args.context_length
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.peft}: {per_step * 1000:.1f} ms per step")
    print(f"result step_tokens_per_s {tokens / per_step:.1f}")
    print(f"result step_peak_memory_bytes {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}")


if __name__ == "__main__":
    main()
