"""RetNet's multi-scale retention (Sun, Dong, Huang, Ma, Xia, Xue, Wang & Wei, 2023, "Retentive
Network: A Successor to Transformer for Large Language Models"), Section 2.

Per head h with a fixed decay gamma_h = 1 - 2^(-5-h):

    o_n = sum_{m <= n} gamma^(n-m) (q_n . k_m) v_m        (q, k rotated by position: the
                                                           paper's e^{i n theta}, as rotary)
    Y = W_O (swish(W_G X) * GroupNorm_h(o))

computed in one of the paper's three equivalent forms: `parallel` (the (L, L) decay mask D),
`recurrent` (S_n = gamma S_{n-1} + k_n^T v_n, o_n = q_n S_n) or `chunkwise` (the recurrent form
across chunks, the parallel form inside them: the SSD op, models/ops/ssd, with log_a = log gamma). The
paper's extra rescalings of D and of q k^T are dropped: every one of them rescales a whole row of
a head's output, which the per-head GroupNorm undoes (the paper's own argument for them being
numerical only), and without them the three forms agree exactly.

Bidirectional form (LRA; as RMT's Manhattan decay, Fan et al., 2024, "RMT: Retentive Networks
Meet Vision Transformers", in one dimension): the decay mask is gamma^|n-m|, computed as a
forward pass plus a backward pass (the same recurrence over the reversed sequence) minus the
diagonal m = n that both count. Padded keys and values are zeroed, so a backward pass carries
nothing from padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.ops.ssd import ssd

FORMS = ("parallel", "chunkwise", "recurrent")


def retention_decays(n_heads: int) -> torch.Tensor:
    """log gamma_h for gamma_h = 1 - 2^(-5-h), h = 0..H-1 (RetNet's multi-scale decays)."""
    return torch.log1p(-torch.pow(2.0, -5.0 - torch.arange(n_heads, dtype=torch.float64)))


def rotate_pairs(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RetNet's position rotation: channel pairs (2i, 2i+1) rotated by n * theta_i, with theta_i =
    base^(-i / (K/2 - 1)) (torchscale's linspace(0, 1) spacing). x: (B, H, L, K) -> same."""
    half = x.shape[-1] // 2
    exponent = torch.linspace(0, 1, half, dtype=x.dtype, device=x.device)
    theta = base ** (-exponent)
    angle = positions.to(x.dtype)[:, None] * theta  # (L, K/2)
    cos, sin = angle.cos().repeat_interleave(2, -1), angle.sin().repeat_interleave(2, -1)
    pairs = x.unflatten(-1, (half, 2))
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], -1).flatten(-2)
    return x * cos + rotated * sin


def parallel_retention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_gamma: torch.Tensor, causal: bool
) -> torch.Tensor:
    """((q k^T) * D) v with D[n, m] = gamma^(n-m) (m <= n), or gamma^|n-m| when not causal.
    q, k: (B, H, L, K); v: (B, H, L, V); log_gamma: (H,) -> (B, H, L, V)."""
    positions = torch.arange(q.shape[2], device=q.device)
    distance = positions[:, None] - positions[None, :]
    log_mask = log_gamma[:, None, None] * distance.abs()
    if causal:
        log_mask = log_mask.masked_fill(distance < 0, float("-inf"))
    return torch.matmul(torch.matmul(q, k.transpose(-1, -2)) * torch.exp(log_mask), v)


class MultiScaleRetention(nn.Module):
    """Multi-scale retention, bidirectional unless `causal`.

    d_model: D.  n_heads: H.  value_factor: V = value_factor * D (the paper uses 2).
    rotary: rotate q and k by position (the paper's xPos-style relative position).
    form: 'chunkwise' | 'parallel' | 'recurrent' for forward.  chunk_size: chunkwise chunk.
    causal: m <= n only.  eps: GroupNorm epsilon.

    forward(x: (B, L, D), mask: (B, L) bool) -> (B, L, D).  reference(x, mask): the recurrent
    form.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int = 4,
        value_factor: int = 2,
        rotary: bool = True,
        form: str = "chunkwise",
        chunk_size: int = 32,
        causal: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ValueError(f"d_model {d_model} must split into {n_heads} heads of even width")
        if form not in FORMS:
            raise ValueError(f"form={form!r}; choose from {FORMS}")
        self.n_heads = n_heads
        self.key_dim = d_model // n_heads
        self.rotary = rotary
        self.form = form
        self.chunk_size = chunk_size
        self.causal = causal
        value_dim = value_factor * d_model
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, value_dim, bias=False)
        self.g_proj = nn.Linear(d_model, value_dim, bias=False)
        self.out_proj = nn.Linear(value_dim, d_model, bias=False)
        # GroupNorm with one group per head, without affine (torchscale's retention norm).
        self.group_norm = nn.GroupNorm(n_heads, value_dim, eps=eps, affine=False)
        # torchscale's initialisation: xavier with gain 2^-2.5 inside, 2^-1 at the output.
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.g_proj):
            nn.init.xavier_uniform_(proj.weight, gain=2**-2.5)
        nn.init.xavier_uniform_(self.out_proj.weight, gain=2**-1)
        self.register_buffer("log_gamma", retention_decays(n_heads).float(), persistent=False)

    ops = ("ssd",)  # the chunkwise and recurrent forms

    @property
    def backend(self) -> str | None:
        """The parallel form is the mixer's own; the others are the SSD op (its report)."""
        return "torch.retention_parallel" if self.form == "parallel" else None

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)  # (B, H, L, .)

    def _retention(self, q, k, v, form: str) -> torch.Tensor:
        """q, k: (B, H, L, K); v: (B, H, L, V) -> (B, H, L, V), one direction (m <= n)."""
        log_gamma = self.log_gamma.to(q.dtype)
        if form == "parallel":
            return parallel_retention(q, k, v, log_gamma, causal=True)
        # The SSD core: x = v, B = k, C = q, log_a = log gamma at every step.
        log_a = log_gamma.expand(q.shape[0], q.shape[2], -1)
        args = (v.transpose(1, 2), log_a, k.transpose(1, 2), q.transpose(1, 2))
        # chunkwise: the run's SSD backend; recurrent: its step-by-step reference.
        backend = None if form == "chunkwise" else "reference"
        o, _ = ssd(*args, chunk_size=self.chunk_size, backend=backend)
        return o.transpose(1, 2)

    def _mix(self, x: torch.Tensor, mask: torch.Tensor, form: str) -> torch.Tensor:
        batch, length, _ = x.shape
        real = mask[:, None, :, None].to(x.dtype)
        q = self._heads(self.q_proj(x))
        k = self._heads(self.k_proj(x)) * self.key_dim**-0.5 * real
        v = self._heads(self.v_proj(x)) * real
        if self.rotary:
            positions = torch.arange(length, device=x.device)
            q, k = rotate_pairs(q, positions), rotate_pairs(k, positions)
        if self.causal:
            o = self._retention(q, k, v, form)
        elif form == "parallel":
            o = parallel_retention(q, k, v, self.log_gamma.to(q.dtype), causal=False)
        else:
            forward = self._retention(q, k, v, form)
            backward = self._retention(q.flip(2), k.flip(2), v.flip(2), form).flip(2)
            diagonal = (q * k).sum(-1, keepdim=True) * v  # m = n, counted by both passes
            o = forward + backward - diagonal
        o = o.transpose(1, 2).reshape(batch * length, -1)
        o = self.group_norm(o).reshape(batch, length, -1)
        return self.out_proj(F.silu(self.g_proj(x)) * o)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._mix(x, mask, self.form)

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._mix(x, mask, "recurrent")
