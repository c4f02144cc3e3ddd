// Mamba's short causal depthwise convolution with its SiLU, forward and backward, on CPU
// (models/ops/causal_conv1d/cpu.py builds this file on first use and calls it through ctypes):
//
//   pre[b, t, c] = bias[c] + sum_k w[k, c] x[b, t - (K - 1) + k, c]     (x = 0 before t = 0)
//   y[b, t, c]   = silu(pre) = pre * sigmoid(pre)    (or pre, without the activation)
//
// on channels-last (b, l, c) arrays, the layout the mixers hold (nn.Conv1d wants (b, c, l): two
// transposed copies per call), every loop over channels innermost, contiguous and vectorised.
//
// Backward, one batch row per task, time running backwards: g[t] = dy[t] * silu'(pre[t]) with
// pre recomputed from x, kept for the last K steps in a ring of K rows, so that
//   dx[t]   = sum_k w[k] g[t + K - 1 - k]       (the g of steps t .. t + K - 1)
//   dw[k]  += g[t] x[t - (K - 1) + k],   dbias += g[t]
// dw and dbias per batch row into (b, K, c) and (b, c) partials that the caller sums, so the
// result does not depend on the number of threads. Nothing of size (b, l, c) is stored.
//
// Axis letters: b batch, l time, c channels, K kernel width.

#include <ATen/Parallel.h>

#include "kernel_common.h"

#include <cstdint>
#include <vector>

namespace {

using lra_kernels::exp_approx;
using lra_kernels::guarded;

struct Sizes {
  int64_t batch, length, channels, width;
  bool silu;
};

// pre[c] for step t of one batch row: bias + the K taps (taps before t = 0 are zero).
template <typename T>
inline void preactivation(const Sizes& s, const T* __restrict__ row, const T* __restrict__ wT,
                          const T* __restrict__ bias, int64_t t, T* __restrict__ pre) {
  const int64_t C = s.channels, K = s.width;
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) pre[c] = bias[c];
  for (int64_t k = 0; k < K; ++k) {
    const int64_t source = t - (K - 1) + k;
    if (source < 0) continue;
    const T* __restrict__ x = row + source * C;
    const T* __restrict__ w = wT + k * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) pre[c] += w[c] * x[c];
  }
}

template <typename T>
inline T sigmoid(T v) {
  return T(1) / (T(1) + exp_approx(-v));
}

template <typename T>
void forward_rows(const Sizes& s, const T* x, const T* wT, const T* bias, T* y, int64_t begin,
                  int64_t end) {
  const int64_t L = s.length, C = s.channels;
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / L, t = task % L;
    const T* row = x + b * L * C;
    T* out = y + (b * L + t) * C;
    preactivation(s, row, wT, bias, t, out);
    if (s.silu) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] = out[c] * sigmoid(out[c]);
    }
  }
}

template <typename T>
void backward_row(const Sizes& s, const T* x, const T* wT, const T* bias, const T* grad_y,
                  T* grad_x, T* grad_wT, T* grad_bias, int64_t b) {
  const int64_t L = s.length, C = s.channels, K = s.width;
  const T* row = x + b * L * C;
  const T* dy_row = grad_y + b * L * C;
  T* dx_row = grad_x + b * L * C;
  T* dw = grad_wT + b * K * C;  // this row's partial (K, C)
  T* db = grad_bias + b * C;    // (C)
  std::vector<T> ring(static_cast<size_t>(K * C), T(0));  // g of steps t .. t + K - 1
  std::vector<T> pre(static_cast<size_t>(C));
  for (int64_t i = 0; i < K * C; ++i) dw[i] = T(0);
  for (int64_t c = 0; c < C; ++c) db[c] = T(0);
  for (int64_t t = L - 1; t >= 0; --t) {
    T* g = ring.data() + (t % K) * C;  // replaces g[t + K], no longer needed
    const T* dy = dy_row + t * C;
    if (s.silu) {
      preactivation(s, row, wT, bias, t, pre.data());
      const T* p = pre.data();
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const T sig = sigmoid(p[c]);
        g[c] = dy[c] * sig * (T(1) + p[c] * (T(1) - sig));
      }
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) g[c] = dy[c];
    }
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) db[c] += g[c];
    for (int64_t k = 0; k < K; ++k) {
      const int64_t source = t - (K - 1) + k;
      if (source < 0) continue;
      const T* __restrict__ xs = row + source * C;
      T* __restrict__ dwk = dw + k * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) dwk[c] += g[c] * xs[c];
    }
    // dx[t] = sum_k w[k] g[t + K - 1 - k], over the steps that exist.
    T* __restrict__ dx = dx_row + t * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) dx[c] = T(0);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t step = t + K - 1 - k;
      if (step >= L) continue;
      const T* __restrict__ gs = ring.data() + (step % K) * C;
      const T* __restrict__ w = wT + k * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) dx[c] += w[c] * gs[c];
    }
  }
}

}  // namespace

#define FORWARD_ENTRY(NAME, T)                                                                \
  extern "C" int NAME(const T* x, const T* wT, const T* bias, T* y, int64_t batch,            \
                      int64_t length, int64_t channels, int64_t width, int64_t silu) {        \
    const Sizes s{batch, length, channels, width, silu != 0};                                 \
    return guarded([&] {                                                                      \
      /* one (row, step) per task: 64 of them (~16K multiply-adds at c 256) per chunk */      \
      at::parallel_for(0, batch * length, 64, [&](int64_t begin, int64_t end) {              \
        forward_rows<T>(s, x, wT, bias, y, begin, end);                                       \
      });                                                                                     \
    });                                                                                       \
  }

#define BACKWARD_ENTRY(NAME, T)                                                               \
  extern "C" int NAME(const T* x, const T* wT, const T* bias, const T* grad_y, T* grad_x,     \
                      T* grad_wT, T* grad_bias, int64_t batch, int64_t length,                \
                      int64_t channels, int64_t width, int64_t silu) {                        \
    const Sizes s{batch, length, channels, width, silu != 0};                                 \
    return guarded([&] {                                                                      \
      at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {                        \
        for (int64_t b = begin; b < end; ++b)                                                 \
          backward_row<T>(s, x, wT, bias, grad_y, grad_x, grad_wT, grad_bias, b);             \
      });                                                                                     \
    });                                                                                       \
  }

FORWARD_ENTRY(causal_conv1d_forward_f32, float)
FORWARD_ENTRY(causal_conv1d_forward_f64, double)
BACKWARD_ENTRY(causal_conv1d_backward_f32, float)
BACKWARD_ENTRY(causal_conv1d_backward_f64, double)
