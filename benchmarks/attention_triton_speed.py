"""Forward + backward speed of the attention op's Triton kernels against torch SDPA's flash
backend, on CUDA, for the targets of issue 10 (bf16, head dim 64, L >= 4096): the full and
causal patterns at >= 0.8x SDPA flash's TFLOP/s, and a 512-token window at 16K >= 4x faster
than SDPA flash's full attention (which cannot skip anything).

    python benchmarks/attention_triton_speed.py [--lengths 4096,8192,16384] [--tokens 16384] \
        [--heads 32] [--head-dim 64] [--window 512]

Batch = tokens / length (FlashAttention's benchmark convention: 16K tokens, 2048 wide). One
JSON line per measurement: milliseconds of forward + backward (triton.testing.do_bench,
median), TFLOP/s of the work the pattern asks for (4 * B * H * L * keys per query * d forward,
2.5x that backward), and the speed-up of Triton over SDPA flash. The Triton side gets an
all-True key_valid (SDPA's flash kernel takes no mask).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.ops.attention import AttentionPattern  # noqa: E402


def allowed_pairs(pattern: AttentionPattern, length: int) -> int:
    """Number of (query, key) pairs a full, causal or window pattern allows (no padding),
    counted by query blocks so that long sequences need no (L, L) matrix."""
    total, step = 0, 1024
    for start in range(0, length, step):
        i = torch.arange(start, min(start + step, length))[:, None]
        j = torch.arange(length)[None, :]
        allowed = torch.ones(i.shape[0], length, dtype=torch.bool)
        if pattern.window is not None:
            allowed = (i - j).abs() <= pattern.window
        if pattern.causal:
            allowed = allowed & (j <= i)
        total += int(allowed.sum())
    return total


def forward_backward(fn, q, k, v):
    """A closure running fn(q, k, v) forward and backward with a fixed upstream gradient."""
    grad = torch.randn(*q.shape[:3], v.shape[-1], device=q.device, dtype=q.dtype)

    def run():
        for t in (q, k, v):
            t.grad = None
        fn(q, k, v).backward(grad)

    return run


def measure(name, pattern, length, args) -> dict:
    import triton.testing
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention

    from models.ops.attention.triton import attention_triton

    batch = max(1, args.tokens // length)
    shape = (batch, args.heads, length, args.head_dim)
    q, k, v = (
        torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in "qkv"
    )
    valid = torch.ones(batch, length, dtype=torch.bool, device="cuda")

    def sdpa(q, k, v):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return scaled_dot_product_attention(q, k, v, is_causal=pattern.causal)

    triton_ms = triton.testing.do_bench(
        forward_backward(lambda *t: attention_triton(*t, valid, pattern), q, k, v)
    )
    sdpa_ms = triton.testing.do_bench(forward_backward(sdpa, q, k, v))
    sdpa_full = AttentionPattern(causal=pattern.causal)  # what SDPA computes: every key
    flops = 3.5 * 4 * batch * args.heads * args.head_dim
    return {
        "pattern": name,
        "length": length,
        "batch": batch,
        "triton_ms": round(triton_ms, 3),
        "sdpa_flash_ms": round(sdpa_ms, 3),
        "triton_tflops": round(flops * allowed_pairs(pattern, length) / triton_ms / 1e9, 1),
        "sdpa_flash_tflops": round(flops * allowed_pairs(sdpa_full, length) / sdpa_ms / 1e9, 1),
        "speedup": round(sdpa_ms / triton_ms, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="4096,8192,16384")
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("attention_triton_speed: needs a CUDA device (SDPA's flash backend and Triton)")
    patterns = {
        "full": AttentionPattern(),
        "causal": AttentionPattern(causal=True),
        f"window{args.window}": AttentionPattern(window=args.window),
    }
    header = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    print(json.dumps(header), flush=True)
    for length in (int(n) for n in args.lengths.split(",")):
        for name, pattern in patterns.items():
            print(json.dumps(measure(name, pattern, length, args)), flush=True)


if __name__ == "__main__":
    main()
