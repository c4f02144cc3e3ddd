// Mamba's short causal depthwise convolution with its SiLU, forward and backward, on CPU
// (models/ops/causal_conv1d/cpu.py builds this file on first use and calls it through ctypes):
//
//   pre[b, t, c] = bias[c] + sum_k w[k, c] x[b, t - (K - 1) + k, c]     (x = 0 before t = 0)
//   y[b, t, c]   = silu(pre) = pre * sigmoid(pre)    (or pre, without the activation)
//
// on channels-last (b, l, c) arrays, the layout the mixers hold (nn.Conv1d wants (b, c, l): two
// transposed copies per call). An optional keep mask (b, l) of bytes zeroes y where it is 0
// (and the gradient through those steps): the Mamba mixers re-zero padded positions after the
// conv, which as a separate PyTorch multiply cost a pass over (b, l, c) each way.
//
// One task is one batch row and one 32-byte vector of channels (8 floats, 4 doubles; GCC's
// vector extensions, see kernel_common.h), and inside it time runs innermost with everything a
// step needs in registers: the K taps, the last K inputs (a window shifted by one each step),
// and in the backward the last K gradients of the pre-activation and the K + 1 sums of dw and
// dbias. Each step then loads one vector and stores one. For K up to kUnrolledWidth the width is
// a compile-time constant, so the windows' shifts are register renames; wider kernels run the
// same code with the width read at run time.
//
// Backward, time running backwards: g[t] = dy[t] * silu'(pre[t]) with pre recomputed from the
// window of x, and
//   dx[t]   = sum_k w[k] g[t + K - 1 - k]       (the g of steps t .. t + K - 1)
//   dw[k]  += g[t] x[t - (K - 1) + k],   dbias += g[t]
// dw and dbias go per batch row into (b, K, c) and (b, c) partials that the caller sums, so the
// result does not depend on the number of threads. Nothing of size (b, l, c) is stored.
//
// Measured at b 64, l 200, K 4, one thread, float32, the best of 15 calls, against the former
// loops (a task per step or per batch row, channels innermost, the pre-activation and the window
// of gradients in memory): backward 5.6 -> 3.2 ms at c 128 and 16.6 -> 8.9 ms at c 320 (Mamba-2's
// xBC width); the forward unchanged (1.7-1.9 ms at c 128, 4.5-5.0 at c 320), about half of it the
// SiLU's exp and division (without the activation 1.0-1.7 ms). A forward over whole rows (time
// outer, channel vectors inner, taps read from L1) measured the same.
//
// Axis letters: b batch, l time, c channels, K kernel width.

#include <ATen/Parallel.h>

#include "kernel_common.h"

#include <cstdint>

namespace {

using namespace lra_kernels;  // the shared vector helpers (kernel_common.h)

// Widths compiled with K fixed (Mamba's 4 and its neighbours); wider ones up to kMaxWidth take
// the run-time form. cpu.py refuses wider kernels before calling.
constexpr int kUnrolledWidth = 4;
constexpr int kMaxWidth = 64;

struct Sizes {
  int64_t batch, length, channels, width;
  bool silu;
  const uint8_t* keep;  // (b, l) or null: y = 0 where keep is 0
  bool kept(int64_t b, int64_t t) const { return keep == nullptr || keep[b * length + t] != 0; }
};

template <typename T>
inline Vec<T> sigmoid(Vec<T> v) {
  return splat(T(1)) / (splat(T(1)) + exp2_lanes(v * splat(T(-kLog2E))));
}

// The width a task uses: the template's K, or (K = 0) the run's.
template <int K>
inline int64_t width_of(const Sizes& s) {
  return K > 0 ? K : s.width;
}
template <int K>
constexpr int kSlots = K > 0 ? K : kMaxWidth;

// Forward of one task: batch row b, channel vector j.
template <typename T, int K>
void forward_task(const Sizes& s, const T* x, const T* wT, const T* bias, T* y, int64_t b,
                  int64_t j) {
  const int64_t C = s.channels, width = width_of<K>(s);
  Vec<T> w[kSlots<K>], window[kSlots<K>];  // window[k] = x[t - (K - 1) + k]
  for (int64_t k = 0; k < width; ++k) {
    w[k] = load_part(wT + k * C, j, C);
    window[k] = splat(T(0));
  }
  const Vec<T> b_j = load_part(bias, j, C);
  const T* row = x + b * s.length * C;
  T* out = y + b * s.length * C;
  for (int64_t t = 0; t < s.length; ++t) {
    for (int64_t k = 0; k + 1 < width; ++k) window[k] = window[k + 1];
    window[width - 1] = load_part(row + t * C, j, C);
    if (!s.kept(b, t)) {
      store_part(out + t * C, j, C, splat(T(0)));
      continue;
    }
    Vec<T> pre = b_j;
    for (int64_t k = 0; k < width; ++k) pre += w[k] * window[k];
    store_part(out + t * C, j, C, s.silu ? pre * sigmoid<T>(pre) : pre);
  }
}

// Backward of one task: batch row b, channel vector j; writes dx and this row's dw, dbias.
template <typename T, int K>
void backward_task(const Sizes& s, const T* x, const T* wT, const T* bias, const T* grad_y,
                   T* grad_x, T* grad_wT, T* grad_bias, int64_t b, int64_t j) {
  const int64_t L = s.length, C = s.channels, width = width_of<K>(s);
  // window[k] = x[t - (K - 1) + k]; later[m] = g[t + m] (zero past the end); dw[k] its sum.
  Vec<T> w[kSlots<K>], window[kSlots<K>], later[kSlots<K>], dw[kSlots<K>];
  const T* row = x + b * L * C;
  for (int64_t k = 0; k < width; ++k) {
    w[k] = load_part(wT + k * C, j, C);
    const int64_t source = L - width + k;  // the window of t = L - 1
    window[k] = source >= 0 ? load_part(row + source * C, j, C) : splat(T(0));
    later[k] = splat(T(0));
    dw[k] = splat(T(0));
  }
  const Vec<T> b_j = load_part(bias, j, C);
  Vec<T> db = splat(T(0));
  const T* dy_row = grad_y + b * L * C;
  T* dx_row = grad_x + b * L * C;
  for (int64_t t = L - 1; t >= 0; --t) {
    const bool kept = s.kept(b, t);
    const Vec<T> dy = kept ? load_part(dy_row + t * C, j, C) : splat(T(0));
    Vec<T> g = dy;
    if (s.silu && kept) {
      Vec<T> pre = b_j;
      for (int64_t k = 0; k < width; ++k) pre += w[k] * window[k];
      const Vec<T> sig = sigmoid<T>(pre);
      g = dy * sig * (splat(T(1)) + pre * (splat(T(1)) - sig));
    }
    for (int64_t m = width - 1; m > 0; --m) later[m] = later[m - 1];
    later[0] = g;
    db += g;
    Vec<T> dx = splat(T(0));
    for (int64_t k = 0; k < width; ++k) {
      dw[k] += g * window[k];
      dx += w[k] * later[width - 1 - k];
    }
    store_part(dx_row + t * C, j, C, dx);
    // The window of t - 1: one step back in time.
    for (int64_t k = width - 1; k > 0; --k) window[k] = window[k - 1];
    const int64_t source = t - width;
    window[0] = source >= 0 ? load_part(row + source * C, j, C) : splat(T(0));
  }
  for (int64_t k = 0; k < width; ++k) store_part(grad_wT + (b * width + k) * C, j, C, dw[k]);
  store_part(grad_bias + b * C, j, C, db);
}

// Runs body<K>() with K the width when it is at most kUnrolledWidth, else body<0>().
template <typename Body>
void with_width(int64_t width, Body&& body) {
  static_assert(kUnrolledWidth == 4, "one case per unrolled width");
  switch (width) {
    case 1: return body.template operator()<1>();
    case 2: return body.template operator()<2>();
    case 3: return body.template operator()<3>();
    case 4: return body.template operator()<4>();
    default: return body.template operator()<0>();
  }
}

// Tasks (b, j) in parallel; at b 64, c 128 there are 1024 of them, each l steps long.
template <typename T, typename Task>
void for_each_task(const Sizes& s, Task&& task) {
  const int64_t vectors = (s.channels + kLanes<T> - 1) / kLanes<T>;
  at::parallel_for(0, s.batch * vectors, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) task(i / vectors, i % vectors);
  });
}

template <typename T>
void forward(const Sizes& s, const T* x, const T* wT, const T* bias, T* y) {
  with_width(s.width, [&]<int K>() {
    for_each_task<T>(s, [&](int64_t b, int64_t j) { forward_task<T, K>(s, x, wT, bias, y, b, j); });
  });
}

template <typename T>
void backward(const Sizes& s, const T* x, const T* wT, const T* bias, const T* grad_y, T* grad_x,
              T* grad_wT, T* grad_bias) {
  with_width(s.width, [&]<int K>() {
    for_each_task<T>(s, [&](int64_t b, int64_t j) {
      backward_task<T, K>(s, x, wT, bias, grad_y, grad_x, grad_wT, grad_bias, b, j);
    });
  });
}

}  // namespace

#define FORWARD_ENTRY(NAME, T)                                                                \
  extern "C" int NAME(const T* x, const T* wT, const T* bias, const uint8_t* keep, T* y,     \
                      int64_t batch, int64_t length, int64_t channels, int64_t width,         \
                      int64_t silu) {                                                         \
    if (width < 1 || width > kMaxWidth) return 1;                                             \
    const Sizes s{batch, length, channels, width, silu != 0, keep};                           \
    return guarded([&] { forward<T>(s, x, wT, bias, y); });                                   \
  }

#define BACKWARD_ENTRY(NAME, T)                                                               \
  extern "C" int NAME(const T* x, const T* wT, const T* bias, const uint8_t* keep,            \
                      const T* grad_y, T* grad_x, T* grad_wT, T* grad_bias, int64_t batch,    \
                      int64_t length, int64_t channels, int64_t width, int64_t silu) {        \
    if (width < 1 || width > kMaxWidth) return 1;                                             \
    const Sizes s{batch, length, channels, width, silu != 0, keep};                           \
    return guarded([&] { backward<T>(s, x, wT, bias, grad_y, grad_x, grad_wT, grad_bias); }); \
  }

FORWARD_ENTRY(causal_conv1d_forward_f32, float)
FORWARD_ENTRY(causal_conv1d_forward_f64, double)
BACKWARD_ENTRY(causal_conv1d_backward_f32, float)
BACKWARD_ENTRY(causal_conv1d_backward_f64, double)
