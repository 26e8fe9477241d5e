"""Log-probabilities of the sampled tokens (and the entropies) straight from the last hidden
states, without keeping the (positions x vocabulary) logits.

The usual path (``model(...).logits`` then ``log_softmax`` and ``gather``) materialises the
logits in bf16, again in fp32, the log-softmax, and in the backward pass a zero-filled scatter
target and the log-softmax gradient: for SmolLM2's 49k-entry vocabulary that is ~200 KB per
scored position per copy, several GB for a batch of long rows, and half a dozen passes over
memory. Here the output layer runs in chunks of positions: the forward keeps only each
position's log-sum-exp; the backward recomputes a chunk's logits from the saved hidden states
and forms d logp / d logits = onehot(target) - softmax in place (one extra output-layer matmul
per chunk — the approach of Liger-Kernel's fused linear cross-entropy, here with the sampled
token's log-prob as the output). The softmax runs in blocks of positions small enough to stay in
cache; the logits of a chunk live in one bf16 buffer, which the backward pass overwrites with
their gradient.

Precision follows the autocast path it replaces: with ``bf16`` the hidden states and the weight
are multiplied in bf16 and the logits rounded to bf16 before the fp32 softmax, as
``torch.autocast`` does for a Linear; gradients are fp32.
"""

from __future__ import annotations

import torch

CHUNK = 2048
"""Scored positions per output-layer matmul (bf16 logits of 2,048 x 49,152 = 200 MB, one buffer
reused by every chunk of a pass)."""

BLOCK = 32
"""Positions per softmax block: the fp32 temporaries of 32 x 49,152 (6 MB) stay in cache and
are recycled by the allocator, where whole-chunk fp32 tensors would be fresh pages (a page
fault per 4 KB) on every pass."""


def _logits_into(buf: torch.Tensor, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    # F.linear's kernels, into the reused buffer (the bias inside the product, rounded once)
    out = buf[: h.shape[0]]
    return torch.mm(h, w.t(), out=out) if b is None else torch.addmm(b, h, w.t(), out=out)


class _HeadLogprob(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden_NH, weight_VH, bias_V, target_N, bf16: bool, with_entropy: bool, chunk: int):
        dt = torch.bfloat16 if bf16 else torch.float32
        w = weight_VH.detach().to(dt)
        b = bias_V.detach().to(dt) if bias_V is not None else None
        h = hidden_NH.detach().to(dt)
        N = h.shape[0]
        logp_N = torch.empty(N)
        lse_N = torch.empty(N)
        ent_N = torch.empty(N) if with_entropy else torch.empty(0)
        buf = torch.empty(min(chunk, N), w.shape[0], dtype=dt)
        for s in range(0, N, chunk):
            logits = _logits_into(buf, h[s : s + chunk], w, b)  # bf16 under bf16, as autocast rounds them
            for k in range(0, logits.shape[0], BLOCK):
                i = slice(s + k, s + min(k + BLOCK, logits.shape[0]))
                # log-sum-exp and entropy in fp32 from one exp pass: z = x - max, e = exp z,
                # lse = max + log sum e, H = -sum p (x - lse) = log sum e - sum e z / sum e
                z = logits[k : k + BLOCK].float()  # (under fp32 the buffer itself: it is not read again)
                m = z.amax(-1)
                z.sub_(m[:, None])
                e = torch.exp(z)
                log_sum = e.sum(-1).log()
                lse_N[i] = m + log_sum
                logp_N[i] = z.gather(-1, target_N[i, None]).squeeze(-1) - log_sum
                if with_entropy:
                    ent_N[i] = log_sum - e.mul_(z).sum(-1) / log_sum.exp()
        ctx.save_for_backward(h, w, b if b is not None else torch.empty(0), target_N, lse_N)
        ctx.has_bias, ctx.chunk = bias_V is not None, chunk
        ctx.dtypes = (hidden_NH.dtype, weight_VH.dtype)
        ctx.mark_non_differentiable(ent_N)
        return logp_N, ent_N

    @staticmethod
    def backward(ctx, g_N, _g_ent):
        h, w, b, target_N, lse_N = ctx.saved_tensors
        b = b if ctx.has_bias else None
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.empty(h.shape, dtype=ctx.dtypes[0]) if need_h else None
        grad_w = torch.zeros(w.shape, dtype=ctx.dtypes[1]) if need_w else None
        grad_b = torch.zeros(w.shape[0], dtype=ctx.dtypes[1]) if need_b else None
        g_N = g_N.float()
        buf = torch.empty(min(ctx.chunk, h.shape[0]), w.shape[0], dtype=w.dtype)
        for s in range(0, h.shape[0], ctx.chunk):
            hc = h[s : s + ctx.chunk]
            gl_all = _logits_into(buf, hc, w, b)  # recomputed, then overwritten block by block by d logp / d logits
            for k in range(0, gl_all.shape[0], BLOCK):
                i = slice(s + k, s + min(k + BLOCK, gl_all.shape[0]))
                # d logp / d logits = onehot(target) - softmax, times the incoming gradient
                gl = gl_all[k : k + BLOCK].float().sub_(lse_N[i, None]).exp_().mul_(-g_N[i, None])
                gl.scatter_add_(-1, target_N[i, None], g_N[i, None])
                if need_b:
                    grad_b += gl.sum(0)
                gl_all[k : k + BLOCK] = gl
            if need_h:
                grad_h[s : s + ctx.chunk] = gl_all @ w
            if need_w:
                grad_w += gl_all.t() @ hc
        return grad_h, grad_w, grad_b, None, None, None, None


def head_logprobs(
    hidden_NH: torch.Tensor, head: torch.nn.Linear, target_N: torch.Tensor, bf16: bool, with_entropy: bool = False, chunk: int = CHUNK
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log softmax(head(hidden))[target]`` per position (differentiable in ``hidden`` and the
    head's parameters) and, with ``with_entropy``, the entropy of each position's distribution
    (not differentiable). ``hidden_NH`` are the final (normed) hidden states of the N scored
    positions, ``target_N`` the tokens they predict."""
    logp_N, ent_N = _HeadLogprob.apply(hidden_NH, head.weight, head.bias, target_N, bf16, with_entropy, chunk)
    return logp_N, (ent_N if with_entropy else None)
