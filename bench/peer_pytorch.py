#!/usr/bin/env python3
"""The PyTorch peer of bench/train_bench and bench/infer_bench (docs/PERFORMANCE.md).

Runs issue 7's workload -- a GPT-2-small-shaped causal LM with random weights,
batch 8 x 128, LoRA r 8 / alpha 16 on c_attn, AdamW on the LoRA parameters,
dropout 0 -- in PyTorch, and prints the same JSON lines as the C++ programs.

  --impl hf     transformers' GPT2LMHeadModel + peft's LoRA (when both import)
  --impl plain  the same model written out here in plain PyTorch, module for
                module as transformers 4.40 computes it (eager attention,
                Conv1D, NewGELU) with LoRA as peft 0.10 computes it; for
                machines with torch but no transformers/peft (Debian's
                python3-torch)
  --impl auto   hf when it imports, else plain (the default)

  OPENBLAS_CORETYPE= python3 bench/peer_pytorch.py train --method lora --threads 2
  python3 bench/peer_pytorch.py train --method full
  python3 bench/peer_pytorch.py forward --method lora
  python3 bench/peer_pytorch.py generate --method none --batch 8
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- plain PyTorch GPT-2 (transformers 4.40 GPT2LMHeadModel, eager) ----------

class Conv1D(nn.Module):
    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class LoraConv1D(nn.Module):
    """peft 0.10 LoRA Linear over a Conv1D (fan_in_fan_out), dropout 0."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base_layer = base
        nx, nf = base.weight.shape
        self.lora_A = nn.Linear(nx, r, bias=False)
        self.lora_B = nn.Linear(r, nf, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.lora_dropout = nn.Identity()
        self.scaling = alpha / r

    def forward(self, x):
        result = self.base_layer(x)
        return result + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling


def new_gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Attention(nn.Module):
    def __init__(self, d, heads, n_pos):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.c_attn = Conv1D(3 * d, d)
        self.c_proj = Conv1D(d, d)
        self.register_buffer("bias", torch.tril(torch.ones(n_pos, n_pos, dtype=torch.bool)).view(1, 1, n_pos, n_pos),
                             persistent=False)

    def split(self, t):
        return t.view(t.size()[:-1] + (self.heads, self.head_dim)).permute(0, 2, 1, 3)

    def forward(self, x, past=None):
        q, k, v = self.c_attn(x).split(self.heads * self.head_dim, dim=2)
        q, k, v = self.split(q), self.split(k), self.split(v)
        if past is not None:
            k = torch.cat((past[0], k), dim=-2)
            v = torch.cat((past[1], v), dim=-2)
        present = (k, v)
        w = torch.matmul(q, k.transpose(-1, -2))
        w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype, device=w.device)
        qlen, klen = q.size(-2), k.size(-2)
        causal = self.bias[:, :, klen - qlen:klen, :klen]
        w = torch.where(causal, w.to(w.dtype), torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype))
        w = F.softmax(w, dim=-1).type(v.dtype)
        out = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous()
        out = out.view(out.size()[:-2] + (self.heads * self.head_dim,))
        return self.c_proj(out), present


class Block(nn.Module):
    def __init__(self, d, heads, n_pos):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, heads, n_pos)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.c_fc = Conv1D(4 * d, d)
        self.c_proj = Conv1D(d, 4 * d)

    def forward(self, x, past=None):
        a, present = self.attn(self.ln_1(x), past)
        x = x + a
        return x + self.c_proj(new_gelu(self.c_fc(self.ln_2(x)))), present


class PlainGPT2(nn.Module):
    def __init__(self, layers, d, heads, vocab, n_pos=1024):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(n_pos, d)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.h = nn.ModuleList([Block(d, heads, n_pos) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, ids, past=None):
        start = 0 if past is None else past[0][0].size(-2)
        pos = torch.arange(start, start + ids.size(1), dtype=torch.long).unsqueeze(0)
        x = self.wte(ids) + self.wpe(pos)
        presents = []
        for i, block in enumerate(self.h):
            x, p = block(x, None if past is None else past[i])
            presents.append(p)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied lm_head
        return logits, presents


def plain_model(args, method):
    model = PlainGPT2(args.layers, args.hidden, args.heads, args.vocab)
    for p in model.parameters():
        p.requires_grad_(method == "full")
    if method == "lora":
        for block in model.h:
            block.attn.c_attn = LoraConv1D(block.attn.c_attn, 8, 16)
    elif method not in ("full", "none"):
        sys.exit(f"peer_pytorch.py: --impl plain has lora, full and none, not {method}")
    return model


# ---- transformers + peft -------------------------------------------------------

def hf_model(args, method):
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(n_layer=args.layers, n_embd=args.hidden, n_head=args.heads, vocab_size=args.vocab,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    if method == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["c_attn"],
                                                 fan_in_fan_out=True))
    elif method == "full":
        pass
    elif method == "none":
        for p in model.parameters():
            p.requires_grad_(False)
    else:
        sys.exit(f"peer_pytorch.py: --impl hf has lora, full and none, not {method}")
    return model


def hf_available():
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
        return True
    except ImportError:
        return False


def logits_of(impl, model, ids):
    return model(ids)[0] if impl == "plain" else model(input_ids=ids).logits


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---- benchmarks ------------------------------------------------------------------

def bench_train(args, impl, model, emit):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    model.train()
    g = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(args.vocab, (args.batch, args.seq), generator=g)
    times = []
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if args.autocast else torch.autocast("cpu", enabled=False)
    for s in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        with ctx:
            logits = logits_of(impl, model, ids)
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        print(f"step {s}: {dt:.3f} s, loss {loss.item():.4f}", file=sys.stderr)
        if s >= args.warmup:
            times.append(dt)
    med = statistics.median(times)
    emit({"bench": "train", "step_s": times, "median_step_s": med, "tokens_per_s": args.batch * args.seq / med,
          "trainable": sum(p.numel() for p in params), "last_loss": loss.item()})


def bench_forward(args, impl, model, emit):
    model.eval()
    g = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(args.vocab, (args.batch, args.seq), generator=g)
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.iters):
            t0 = time.perf_counter()
            logits_of(impl, model, ids)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    emit({"bench": "forward", "forward_s": times, "median_forward_s": med, "tokens_per_s": args.batch * args.seq / med})


def bench_generate(args, impl, model, emit):
    model.eval()
    g = torch.Generator().manual_seed(args.seed + 2)
    ids = torch.randint(args.vocab, (args.batch, args.prompt), generator=g)
    times = []
    with torch.no_grad():
        for i in range(1 + max(1, args.iters // 2)):
            t0 = time.perf_counter()
            if impl == "plain":
                logits, past = model(ids)
                for _ in range(args.new_tokens - 1):
                    nxt = logits[:, -1].argmax(-1, keepdim=True)
                    logits, past = model(nxt, past)
                logits[:, -1].argmax(-1)
            else:
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, pad_token_id=0)
                assert out.size(1) == args.prompt + args.new_tokens
            if i >= 1:
                times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    emit({"bench": "generate", "prompt_tokens": args.prompt, "new_tokens": args.new_tokens, "run_s": times,
          "median_run_s": med, "tokens_per_s": args.batch * args.new_tokens / med})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", choices=["train", "forward", "generate"])
    ap.add_argument("--impl", choices=["auto", "hf", "plain"], default="auto")
    ap.add_argument("--method", choices=["lora", "full", "none"], default="lora")
    ap.add_argument("--autocast", action="store_true", help="train: bf16 autocast over fp32 weights")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if os.environ.get("OPENBLAS_CORETYPE"):
        print(f"warning: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set; benchmarks expect it unset",
              file=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    impl = args.impl
    if impl == "auto":
        impl = "hf" if hf_available() else "plain"
    model = plain_model(args, args.method) if impl == "plain" else hf_model(args, args.method)

    def emit(fields):
        out = {"impl": "pytorch-" + impl, "torch": torch.__version__, "method": args.method,
               "dtype": "fp32", "autocast": args.autocast, "threads": args.threads, "batch": args.batch,
               "seq": args.seq, "layers": args.layers}
        out.update(fields)
        out["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(out), flush=True)

    {"train": bench_train, "forward": bench_forward, "generate": bench_generate}[args.bench](args, impl, model, emit)


if __name__ == "__main__":
    main()
