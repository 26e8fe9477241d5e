"""A decoding-only forward pass for Llama-family models (Llama, SmolLM, Qwen2) over a slot KV cache.

Why not the model's own forward: on CPU, ``F.linear`` with a few rows (decoding) runs
MKL's sgemm with a transposed weight, which for a few rows is several times slower than
multiplying by a pre-transposed contiguous copy (bench/engine_kernels.py), and HF's
dynamic cache re-allocates every layer's keys and values at every step. Here the weights are
copied once per weight version into fused, transposed matrices (q|k|v and gate|up in one
matmul each) and keys/values are written in place into a pre-allocated cache.

The numbers are those of the model's own forward (fp32; a test compares logits), so the
log-probs the engine reports are the ones the trainer recomputes. With ``bf16=True``
(``engine.autocast_bf16``, auto: on where the CPU has native bf16 matmuls, AMX /
AVX512-BF16) the forward is the model's under bf16 autocast: every matrix (layers and LM head)
is kept in bf16, activations enter and leave the matmuls in bf16 without a round trip through
fp32, rotary embeddings are applied in bf16 and keys/values are cached in bf16 (half the bytes
attention reads per step); the residual stream, the norms and the attention softmax stay fp32.
Decoding is bound by the bytes it reads (every weight and the cached keys/values once per
step), so halving them is what pays. In bf16 the matrices are also pre-packed into oneDNN's
blocked layout once per weight version (``torch.ops.mkldnn._reorder_linear_weight``, the
weight prepacking torch's own inductor uses for CPU linears): a plain bf16 matmul re-blocks its
weight on every call. Packed, a forward's matrices take 1.22x less time at 16 rows and 1.35x
at 64, with the same numbers (bench/engine_kernels.py). Where packing is unavailable the
transposed matmul is used. Only what decoding needs is here: no dropout, no gradients, no
output attentions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SUPPORTED = ("llama", "qwen2")


def supports(model) -> str | None:
    """None when the fast path can run ``model``; otherwise the reason it cannot."""
    base = _base_model(model)
    cfg = getattr(base, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED:
        return f"model type {getattr(cfg, 'model_type', None)!r} (fast path: {', '.join(SUPPORTED)})"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"activation {cfg.hidden_act!r}"
    if getattr(cfg, "use_sliding_window", False):
        return "sliding-window attention"
    if not hasattr(base, "model") or not hasattr(base.model, "rotary_emb"):
        return "no rotary embedding module"
    return None


def _base_model(model):
    """The transformers model under a PEFT wrapper (LoRA layers stay in place inside it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _linear_weight(mod) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Effective (weight, bias) of a Linear, with an active, unmerged LoRA adapter folded in."""
    base = getattr(mod, "base_layer", None)
    if base is None:
        return mod.weight.detach(), (mod.bias.detach() if mod.bias is not None else None)
    w = base.weight.detach().clone()
    if not getattr(mod, "merged", False) and not getattr(mod, "disable_adapters", False):
        for name in mod.active_adapters:
            if name in mod.lora_A:
                w += mod.get_delta_weight(name).detach().to(w.dtype)
    return w, (base.bias.detach() if base.bias is not None else None)


_PACKING: bool | None = None


def packing_available() -> bool:
    """Whether this torch build packs bf16 linear weights for oneDNN (probed once: the packed
    product must equal the plain one on a small matrix)."""
    global _PACKING
    if _PACKING is None:
        try:
            w = torch.randn(64, 32, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
            x = torch.randn(3, 32, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
            y = torch.ops.mkldnn._linear_pointwise(x, torch.ops.mkldnn._reorder_linear_weight(w, 16), None, "none", [], "")
            _PACKING = bool(torch.allclose(y.float(), (x.float() @ w.float().t()), atol=0.1, rtol=0.02))
        except (AttributeError, RuntimeError, NotImplementedError):
            _PACKING = False
    return _PACKING


def weight_version(model) -> int:
    """Sum of the parameters' in-place version counters: any optimiser step changes it."""
    return sum(p._version for p in model.parameters())


@dataclass
class _Layer:
    # matrices in ``FastLlama._matrix``'s layout: (in, out) transposed, or oneDNN-packed (out, in)
    ln_in: torch.Tensor
    w_qkv: torch.Tensor  # H -> (NH + 2 KVH) D
    b_qkv: torch.Tensor | None
    w_o: torch.Tensor  # NH D -> H
    ln_post: torch.Tensor
    w_gu: torch.Tensor  # H -> 2 I: gate | up
    w_down: torch.Tensor  # I -> H


class FastLlama:
    """Weights (copied per version) and the forward over ``KV`` slot caches."""

    def __init__(self, model, bf16: bool = False):
        base = _base_model(model)
        self.dtype = torch.bfloat16 if bf16 else torch.float32  # of the layers' matrices
        self.packed = bf16 and packing_available()
        c = base.config
        self.n_layers = c.num_hidden_layers
        self.n_heads = c.num_attention_heads
        self.n_kv = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.eps = c.rms_norm_eps
        self.vocab = c.vocab_size
        self.max_positions = int(getattr(c, "max_position_embeddings", 2048))
        self.model = model
        self.base = base
        self._rope_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.version = -1
        self.sync()

    # -- weights ------------------------------------------------------------------------------
    def _matrix(self, w_OI: torch.Tensor) -> torch.Tensor:
        """A Linear's (out, in) weight in the layout ``_mm`` multiplies by."""
        if self.packed:
            return torch.ops.mkldnn._reorder_linear_weight(w_OI.to(self.dtype).contiguous(), 16)
        return w_OI.t().contiguous().to(self.dtype)

    def _mm(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
        return x @ w

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the live weights (LoRA folded in) into the fused, transposed layout."""
        m = self.base.model
        self.embed = m.embed_tokens.weight.detach()
        head = self.base.lm_head
        hw, hb = _linear_weight(head)
        self.w_head = self._matrix(hw)
        self.b_head = hb
        self.ln_final = m.norm.weight.detach()
        self.layers = []
        for layer in m.layers:
            a, mlp = layer.self_attn, layer.mlp
            ws = [_linear_weight(p) for p in (a.q_proj, a.k_proj, a.v_proj)]
            bias = torch.cat([b for _, b in ws]).to(self.dtype) if all(b is not None for _, b in ws) else None
            wo, _ = _linear_weight(a.o_proj)
            wg, _ = _linear_weight(mlp.gate_proj)
            wu, _ = _linear_weight(mlp.up_proj)
            wd, _ = _linear_weight(mlp.down_proj)
            self.layers.append(
                _Layer(
                    ln_in=layer.input_layernorm.weight.detach(),
                    w_qkv=self._matrix(torch.cat([w for w, _ in ws], 0)),
                    b_qkv=bias,
                    w_o=self._matrix(wo),
                    ln_post=layer.post_attention_layernorm.weight.detach(),
                    w_gu=self._matrix(torch.cat([wg, wu], 0)),
                    w_down=self._matrix(wd),
                )
            )
        self.version = weight_version(self.model)

    def copied_bytes(self) -> int:
        """Bytes of the matrices copied out of the model (the embedding and the norms are the
        model's own tensors, shared, and not counted). Packed (oneDNN-blocked) matrices count
        their logical size: they expose no storage to measure."""
        mats = [self.w_head] + [w for layer in self.layers for w in (layer.w_qkv, layer.w_o, layer.w_gu, layer.w_down)]
        return sum(w.numel() * w.element_size() for w in mats if w is not None)

    def stale(self) -> bool:
        return weight_version(self.model) != self.version

    def rope(self, n_positions: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin tables (P, D) from the model's own rotary module (so rope scaling variants
        are honoured)."""
        if self._rope_cache is None or self._rope_cache[0].shape[0] < n_positions:
            P = max(n_positions, 1024)
            pos = torch.arange(P)[None, :]
            dummy = torch.zeros(1, 1, self.head_dim)
            with torch.no_grad():
                cos, sin = self.base.model.rotary_emb(dummy, pos)
            self._rope_cache = (cos[0].float(), sin[0].float())
        return self._rope_cache

    # -- forward ------------------------------------------------------------------------------
    def _norm(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # LlamaRMSNorm (normalise in fp32, then scale) in one call; handed to the next matmul in its dtype
        return torch.rms_norm(x, (x.shape[-1],), w, self.eps).to(self.dtype)

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
        """Rotary embedding: ``x cos + rotate_half(x) sin`` with rotate_half(x) = (-x2, x1),
        written as ``x cos + roll(x) (-sin1, sin2)``: one roll instead of a negation and a
        concatenation, the same products."""
        return x * cos + x.roll(x.shape[-1] // 2, -1) * sin_signed

    def _decode_attention(self, q_RH1D: torch.Tensor, K_RKLD: torch.Tensor, V_RKLD: torch.Tensor, bias_R11L: torch.Tensor) -> torch.Tensor:
        """One query per row, grouped: the G query heads sharing a key/value head are one
        (G, D) @ (D, L) product, so keys are read once per kv head instead of being expanded
        (fp32: faster than SDPA's CPU kernel or within 12% of it, docs/BENCHMARKS.md).
        In bf16 the transposed-key product copies every row's keys per layer (bf16 batched
        matmuls take no transposed operand), and SDPA's fused CPU kernel is 1.2-4x faster
        (bench/decode_attention.py), so bf16 decoding goes through SDPA. ``bias_R11L`` is the
        additive (0 / -inf) fp32 bias for the grouped product, the boolean allowed-mask in bf16."""
        if q_RH1D.dtype == torch.bfloat16:
            return F.scaled_dot_product_attention(q_RH1D, K_RKLD, V_RKLD, attn_mask=bias_R11L, enable_gqa=True)
        R, NH, _, D = q_RH1D.shape
        KV = K_RKLD.shape[1]
        q = q_RH1D.reshape(R, KV, NH // KV, D)
        scores = (q @ K_RKLD.transpose(-1, -2)).float() * (D**-0.5) + bias_R11L  # (R, KV, G, L), softmax in fp32
        o = torch.softmax(scores, dim=-1).to(V_RKLD.dtype) @ V_RKLD  # (R, KV, G, D)
        return o.reshape(R, NH, 1, D)

    @torch.no_grad()
    def forward(
        self, ids_RN: torch.Tensor, pos_RN: torch.Tensor, rows_R: torch.Tensor, length_R: torch.Tensor, kv: KVCache, last_R: torch.Tensor
    ) -> torch.Tensor:
        """Run tokens ``ids_RN`` at positions ``pos_RN`` for cache rows ``rows_R``; rows' keys and
        values are written into the cache first, then every query attends to its row's cached
        positions ``<= its own`` (and ``< length_R``, the row's length after this call).
        Returns the logits (R, V) of the token at column ``last_R`` of each row."""
        R, N = ids_RN.shape
        NH, KV, D = self.n_heads, self.n_kv, self.head_dim
        cos_P, sin_P = self.rope(int(length_R.max()))
        cos = cos_P[pos_RN][:, :, None].to(self.dtype)  # (R, N, 1, D)
        sin = sin_P[pos_RN][:, :, None]
        sin = torch.cat([-sin[..., : D // 2], sin[..., D // 2 :]], dim=-1).to(self.dtype)
        Lk = int(length_R.max())
        key_pos_L = torch.arange(Lk)
        allowed_RNL = (key_pos_L[None, None, :] <= pos_RN[:, :, None]) & (key_pos_L[None, None, :] < length_R[:, None, None])
        mask = allowed_RNL[:, None]  # (R, 1, N, Lk)
        bias_R11L = None
        if N == 1:  # bf16 decodes through SDPA with the boolean mask, fp32 through the grouped product with a bias
            bias_R11L = mask if self.dtype == torch.bfloat16 else torch.zeros(R, 1, 1, Lk).masked_fill_(~mask, float("-inf"))
        contiguous = R == int(rows_R[-1]) - int(rows_R[0]) + 1 and bool((rows_R[1:] > rows_R[:-1]).all()) if R > 1 else True
        r0 = int(rows_R[0])
        # where each (row, position, kv head) goes in a layer's cache viewed as (S KV Lcap, D)
        cap = kv.capacity
        slot_RNK = (rows_R[:, None, None] * KV + torch.arange(KV)[None, None, :]) * cap + pos_RN[:, :, None]
        slot = slot_RNK.flatten()
        h = self.embed[ids_RN]  # (R, N, H)
        for i, lay in enumerate(self.layers):
            x = self._norm(h, lay.ln_in)
            qkv = self._mm(x, lay.w_qkv)
            if lay.b_qkv is not None:
                qkv = qkv + lay.b_qkv
            # queries and keys rotated together, heads-last: (R, N, NH + KV, D)
            qk = self._rotate(qkv[..., : (NH + KV) * D].view(R, N, NH + KV, D), cos, sin)
            q = qk[:, :, :NH].transpose(1, 2)  # (R, NH, N, D)
            K, V = kv.k[i], kv.v[i]  # (S, KV, Lcap, D)
            K.view(-1, D).index_copy_(0, slot, qk[:, :, NH:].reshape(-1, D))
            V.view(-1, D).index_copy_(0, slot, qkv[..., (NH + KV) * D :].reshape(-1, D))
            if contiguous:  # a view, no copy: the common case of decoding rows 0..R-1
                Kr, Vr = K[r0 : r0 + R, :, :Lk], V[r0 : r0 + R, :, :Lk]
            else:
                Kr, Vr = K[rows_R, :, :Lk], V[rows_R, :, :Lk]
            if N == 1:
                o = self._decode_attention(q, Kr, Vr, bias_R11L)
            else:
                o = F.scaled_dot_product_attention(q, Kr, Vr, attn_mask=mask, enable_gqa=NH != KV)
            h = h + self._mm(o.transpose(1, 2).reshape(R, N, NH * D), lay.w_o)
            x = self._norm(h, lay.ln_post)
            g, u = self._mm(x, lay.w_gu).chunk(2, dim=-1)
            h = h + self._mm(F.silu(g) * u, lay.w_down)
        last = h[torch.arange(R), last_R]  # (R, H)
        logits = self._mm(self._norm(last, self.ln_final), self.w_head).float()
        if self.b_head is not None:
            logits = logits + self.b_head
        return logits


class KVCache:
    """Pre-allocated keys and values: per layer a (slots, kv_heads, capacity, head_dim) tensor.
    Grows (re-allocating, keeping contents) when a longer sequence arrives."""

    def __init__(self, n_layers: int, slots: int, n_kv: int, head_dim: int, capacity: int, dtype: torch.dtype = torch.float32):
        self.shape = (slots, n_kv, capacity, head_dim)
        self.dtype = dtype
        self.k = [torch.zeros(self.shape, dtype=dtype) for _ in range(n_layers)]
        self.v = [torch.zeros(self.shape, dtype=dtype) for _ in range(n_layers)]

    @property
    def capacity(self) -> int:
        return self.shape[2]

    def ensure(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        new_cap = max(capacity, int(self.capacity * 1.5))
        S, KV, L, D = self.shape
        for lst in (self.k, self.v):
            for i, old in enumerate(lst):
                t = torch.zeros(S, KV, new_cap, D, dtype=self.dtype)
                t[:, :, :L] = old
                lst[i] = t
        self.shape = (S, KV, new_cap, D)

    def copy_row(self, src: int, dst: int, n: int) -> None:
        if src == dst or n == 0:
            return
        for K, V in zip(self.k, self.v):
            K[dst, :, :n] = K[src, :, :n]
            V[dst, :, :n] = V[src, :, :n]

    def export(self, row: int, n: int) -> torch.Tensor:
        """The first ``n`` positions of a row as one (layers, 2, KV, n, D) tensor."""
        return torch.stack([torch.stack([K[row, :, :n], V[row, :, :n]]) for K, V in zip(self.k, self.v)])

    def load(self, row: int, saved: torch.Tensor, n: int) -> None:
        for i, (K, V) in enumerate(zip(self.k, self.v)):
            K[row, :, :n] = saved[i, 0, :, :n]
            V[row, :, :n] = saved[i, 1, :, :n]

    def nbytes(self) -> int:
        return 2 * len(self.k) * self.k[0].numel() * self.k[0].element_size()
