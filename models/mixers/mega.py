"""Mega (Ma, Zhou, Kong, He, Gui, Neubig, May & Zettlemoyer, 2023, "Mega: Moving Average Equipped
Gated Attention"): the moving-average equipped gated attention of Section 3.

1. Multi-dimensional damped EMA, per channel d and EMA dimension n:
       h_t = alpha * beta * x_t + (1 - alpha * delta) * h_{t-1},   y_t = sum_n eta_n h_t[n]
   (alpha, delta in (0, 1) by sigmoid; eta = gamma / sqrt(N)), computed as an FFT convolution of
   its kernel K[l] = sum_n eta_n alpha_n beta_n (1 - alpha_n delta_n)^l. Bidirectional (LRA): a
   second EMA with its own parameters runs backwards from lag 1 (Mega's `shift`), so lag 0 is
   counted once; X' = SiLU(EMA(X) + omega * X).
2. Single-head gated attention: Z = SiLU(X' W_z), Q = Z*k_q + mu_q, K = Z*k_k + mu_k,
   V = SiLU(X W_v), A = softmax(Q K^T / sqrt(z) + relative-position bias) (or Mega's laplace /
   relu^2 for the image tasks, normalised by the number of keys), reset gate
   gamma = SiLU(X' W_r), candidate H = SiLU(X' W_h + (gamma * (A V)) U_h), update gate
   phi = sigmoid(X' W_u), output Y = phi * H + (1 - phi) * X.
   Mega-chunk (`chunk_size`): attention only within chunks of that length; the EMA still runs
   over the whole sequence.

The backbone owns the residual connection and the norms, so the mixer returns Y - X =
phi * (H - X): the block then computes x + Mega(LN(x)) - LN(x). Padded positions are zeroed
before the EMA and are never attended to.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.layers.additive_mask import additive_mask
from models.layers.dropout import dropout
from models.ops.fft_conv import long_conv
from models.parameter_tags import tag

ATTENTION = ("softmax", "laplace", "relu2")


def laplace(x: torch.Tensor, mu: float = 0.707107, sigma: float = 0.282095) -> torch.Tensor:
    """Mega's laplace attention function: the Gaussian CDF 0.5 (1 + erf((x - mu) / (sigma
    sqrt 2))), with mu, sigma matched to relu^2 (mu = sqrt(1/2), sigma = sqrt(1/(4 pi)))."""
    return 0.5 * (1.0 + torch.erf((x - mu) / (sigma * math.sqrt(2.0))))


class MultiHeadEMA(nn.Module):
    """Mega's multi-dimensional damped EMA.

    d_model: D channels.  ema_dim: N EMA dimensions per channel.  bidirectional: add the
    backward EMA.  ssm_lr: learning rate of the EMA parameters (no weight decay; None = the
    global rate).

    forward(x: (B, L, D) zero at padding, fast) -> SiLU(EMA(x) + omega * x): (B, L, D);
    `fast` = FFT convolution, else the recurrence step by step.
    """

    def __init__(
        self, d_model: int, ema_dim: int, bidirectional: bool, ssm_lr: float | None
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.bidirectional = bidirectional
        self.scale = math.sqrt(1.0 / ema_dim)
        kernels = 2 * d_model if bidirectional else d_model
        # Mega's initialisation: alpha, delta ~ N(0, 0.2) before the sigmoid; beta ~ N(0, 0.02)
        # around (1, -1, 1, -1, ...); gamma, omega ~ N(0, 1).
        signs = torch.ones(ema_dim)
        signs[1::2] = -1.0
        self.alpha = nn.Parameter(torch.randn(kernels, ema_dim) * 0.2)
        self.delta = nn.Parameter(torch.randn(kernels, ema_dim) * 0.2)
        self.beta = nn.Parameter(torch.randn(kernels, ema_dim) * 0.02 + signs)
        self.gamma = nn.Parameter(torch.randn(kernels, ema_dim))
        self.omega = nn.Parameter(torch.randn(d_model))
        for param in (self.alpha, self.delta, self.beta, self.gamma, self.omega):
            tag(param, lr=ssm_lr, weight_decay=0.0)

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input weight alpha * beta, damping q = 1 - alpha * delta, output weight eta), each
        (kernels, N); the first D kernels run forwards, the next D backwards."""
        alpha = torch.sigmoid(self.alpha)
        damping = 1.0 - alpha * torch.sigmoid(self.delta)
        return alpha * self.beta, damping, self.gamma * self.scale

    def kernel(self, length: int) -> torch.Tensor:
        """K[:, l] = sum_n eta_n (alpha beta)_n q_n^l, l = 0..length-1: (kernels, length)."""
        drive, damping, readout = self.coefficients()
        lags = torch.arange(length, device=drive.device, dtype=drive.dtype)
        powers = torch.exp(lags * torch.log(damping).unsqueeze(-1))  # (kernels, N, L)
        return torch.einsum("kn,knl->kl", drive * readout, powers)

    def _convolve(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        kernel = self.kernel(length)
        backward = None
        if self.bidirectional:
            # The backward EMA from lag 1: long_conv's k_bwd[j] weighs the input j + 1 ahead.
            backward = F.pad(kernel[self.d_model :, 1:], (0, 1))
        return long_conv(x.transpose(1, 2), kernel[: self.d_model], backward).transpose(1, 2)

    def _recurrence(self, x: torch.Tensor) -> torch.Tensor:
        drive, damping, readout = self.coefficients()

        def scan(inputs, part):
            h = x.new_zeros(x.shape[0], self.d_model, drive.shape[-1])
            states = []
            for x_t in inputs:
                h = drive[part] * x_t.unsqueeze(-1) + damping[part] * h
                states.append(h)
            return states

        forward = torch.stack(scan(x.unbind(1), slice(0, self.d_model)), 1)
        y = (forward * readout[: self.d_model]).sum(-1)
        if self.bidirectional:
            part = slice(self.d_model, None)
            # Backward EMA from lag 1: y_t += eta q e_{t+1}, e the EMA run from the end.
            backward = torch.stack(scan(reversed(x.unbind(1)), part)[::-1], 1)
            following = F.pad(backward[:, 1:], (0, 0, 0, 0, 0, 1))
            y = y + (following * damping[part] * readout[part]).sum(-1)
        return y

    def forward(self, x: torch.Tensor, fast: bool = True) -> torch.Tensor:
        y = self._convolve(x) if fast else self._recurrence(x)
        return F.silu(y + x * self.omega)


class RelativePositionBias(nn.Module):
    """Mega's "simple" relative position bias: one learned scalar per offset j - i.
    forward(length) -> (length, length) with [i, j] = b[j - i]."""

    def __init__(self, max_positions: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.bias = nn.Parameter(torch.randn(2 * max_positions - 1) * 0.02)

    def forward(self, length: int) -> torch.Tensor:
        if length > self.max_positions:
            raise ValueError(f"length {length} exceeds max_positions {self.max_positions}")
        positions = torch.arange(length, device=self.bias.device)
        return self.bias[positions[None, :] - positions[:, None] + self.max_positions - 1]


class Mega(nn.Module):
    """Mega mixer (EMA + single-head gated attention), bidirectional unless `causal`.

    d_model: D.  z_dim: shared query/key width (LRA ListOps: 64).  v_dim: value width (default
    2 D, as every LRA config).  ema_dim: EMA dimensions N (16).  attention: 'softmax' (text
    tasks) | 'laplace' (image tasks) | 'relu2'.  chunk_size: Mega-chunk attention window; None
    for full attention.  max_length: longest sequence (sizes the position bias; the backbone
    passes it).  dropout: on the attention weights.  ssm_lr: learning rate of the EMA
    parameters (None: the global rate, as the paper trains them; never weight-decayed).
    causal: forward EMA and causal attention.

    forward(x: (B, L, D), mask: (B, L) bool) -> (B, L, D).  reference(x, mask): the same with
    the EMA computed step by step.
    """

    def __init__(
        self,
        d_model: int,
        z_dim: int = 64,
        v_dim: int | None = None,
        ema_dim: int = 16,
        attention: str = "softmax",
        chunk_size: int | None = None,
        max_length: int = 1024,
        dropout: float = 0.0,
        ssm_lr: float | None = None,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if attention not in ATTENTION:
            raise ValueError(f"attention={attention!r}; choose from {ATTENTION}")
        v_dim = v_dim or 2 * d_model
        self.d_model, self.z_dim, self.v_dim = d_model, z_dim, v_dim
        self.attention = attention
        self.chunk_size = chunk_size if chunk_size and chunk_size > 0 else None
        self.dropout = dropout
        self.causal = causal
        self.ema = MultiHeadEMA(d_model, ema_dim, bidirectional=not causal, ssm_lr=ssm_lr)
        self.v_proj = nn.Linear(d_model, v_dim)
        self.mx_proj = nn.Linear(d_model, d_model + z_dim + v_dim + d_model)  # u, z, r, hx
        self.h_proj = nn.Linear(v_dim, d_model)
        self.qk_scale = nn.Parameter(torch.randn(2, z_dim) * 0.02)  # kappa_q, kappa_k
        self.qk_offset = nn.Parameter(torch.zeros(2, z_dim))  # mu_q, mu_k
        window = self.chunk_size or max_length
        self.position_bias = RelativePositionBias(window)
        # Mega's initialisation: N(0, 0.02) weights, zero biases.
        for proj in (self.v_proj, self.mx_proj, self.h_proj):
            nn.init.normal_(proj.weight, std=0.02)
            nn.init.zeros_(proj.bias)

    ops = ("fft_conv",)  # the EMA's convolution

    @property
    def backend(self) -> str:
        """The gated attention is the mixer's own."""
        return f"torch.{self.attention}_attention"

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """q, k: (B, C, T, Z); v: (B, C, T, V); mask: (B, C, T) -> (B, C, T, V), attention within
        each of the C blocks of T positions."""
        length = q.shape[2]
        bias = self.position_bias(length).to(q.dtype)
        allowed = mask[:, :, None, :]  # keys
        if self.causal:
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
        if self.attention == "softmax":
            # A block made only of padding would have no key at all: let it attend anyway (its
            # outputs are padding) rather than produce NaN.
            allowed = allowed | ~mask.any(-1)[:, :, None, None]
            scores = torch.matmul(q, k.transpose(-1, -2)) * self.z_dim**-0.5 + bias
            weights = (scores + additive_mask(allowed, scores.dtype)).softmax(-1)
        else:
            # Laplace / relu^2 are normalised by the number of keys a query may see instead of a
            # softmax (Mega's element attention).
            keys = allowed.sum(-1, keepdim=True).clamp(min=1).to(q.dtype)
            scores = torch.matmul(q, k.transpose(-1, -2)) / keys + bias
            weights = laplace(scores) if self.attention == "laplace" else F.relu(scores).square()
            weights = weights * allowed.to(q.dtype)
        weights = dropout(weights, self.dropout, self.training)
        return torch.matmul(weights, v)

    def _mix(self, x: torch.Tensor, mask: torch.Tensor, fast: bool) -> torch.Tensor:
        batch, length, _ = x.shape
        real = mask.unsqueeze(-1).to(x.dtype)
        v = F.silu(self.v_proj(x))
        mx = self.ema(x * real, fast)
        u, zr, hx = self.mx_proj(mx).split(
            [self.d_model, self.z_dim + self.v_dim, self.d_model], -1
        )
        update = torch.sigmoid(u)
        z, reset = F.silu(zr).split([self.z_dim, self.v_dim], -1)
        q, k = (z.unsqueeze(2) * self.qk_scale + self.qk_offset).unbind(2)
        block = self.chunk_size if self.chunk_size and length > self.chunk_size else length
        pad = -length % block
        if pad:
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
            mask = F.pad(mask, (0, pad))
        blocks = (length + pad) // block
        attended = self._attend(
            q.reshape(batch, blocks, block, -1),
            k.reshape(batch, blocks, block, -1),
            v.reshape(batch, blocks, block, -1),
            mask.reshape(batch, blocks, block),
        ).reshape(batch, blocks * block, -1)[:, :length]
        candidate = F.silu(hx + self.h_proj(attended * reset))
        return update * (candidate - x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._mix(x, mask, fast=True)

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._mix(x, mask, fast=False)
