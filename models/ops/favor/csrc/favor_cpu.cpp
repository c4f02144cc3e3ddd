// FAVOR+ bidirectional attention on CPU, forward and backward (models/ops/favor/cpu.py builds
// this file on first use, calls it through ctypes and wraps it in an autograd Function).
// Per (batch row, head), with the projection W (m, d) and the scaled queries and keys q, k:
//
//   e(x)_r  = W_r . x - |x|^2 / 2                        (r = 1..m)
//   phi_q   = exp(e(q) - max_r e(q)_r) / sqrt(m)          (each query its own stabiliser)
//   phi_k   = exp(e(k) - s) / sqrt(m) at real keys, 0 at padded ones
//             (s: the largest e over the row's real keys, 0 when it has none)
//   S'      = sum_j phi_k,j [v_j, 1]^T                    (m, E + 1): the state and z
//   out_i   = phi_q,i^T S',   y_i = out_i[:E] / max(out_i[E], eps)
//
// exactly the PyTorch form's (reference.py) arithmetic, but row by row: the (L, m) features
// that the PyTorch form writes, reads back and differentiates as whole (b, h, L, m) tensors
// (tens of MB each at LRA sizes) live here one row at a time in L1, or as one (L, m) buffer
// per task in L2. The stabilisers are constants to autograd (they cancel), as there.
//
// Backward, with D_i = max(den_i, eps) and g_i = [dy_i / D_i, -(dy_i . y_i) / D_i] (the last
// entry 0 where den_i < eps, as clamp_min's gradient):
//   dphi_q,i = S' g_i      dS' = sum_i phi_q,i g_i^T      de(q)_i = dphi_q,i * phi_q,i
//   dphi_k,j = dS' [v_j, 1]     dv_j = dS'[:, :E]^T phi_k,j     de(k)_j = dphi_k,j * phi_k,j
//   dx = W^T de - (sum_r de_r) x   for x = q_i, k_j (the second term from -|x|^2 / 2).
// The projection gets no gradient (it is a buffer of random features).
//
// Tasks: one (batch row, head) each, in parallel with at::parallel_for. Every loop over the m
// features is innermost, contiguous and vectorised (`omp simd`, exp_approx in float32).
//
// Entry points: plain C functions on contiguous arrays that the caller allocates and checks.
//
// Axis letters: b batch, h heads, l time, d query/key width, m features, e value width.

#include <ATen/Parallel.h>

#include "kernel_common.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <vector>

namespace {

using lra_kernels::guarded;
using lra_kernels::exp_approx;

struct Sizes {
  int64_t batch, heads, length, width, features, values;
  int64_t state() const { return (values + 1) * features; }  // S'^T: (E + 1, m)
};

// Rows are handled kRows at a time where they can be: each load of the projection, of the
// state or of its gradient then serves kRows rows (one row at a time, these loops were bound
// by loads and stores rather than arithmetic). kTile features of kRows rows are kept in
// registers while the d inputs are summed.
constexpr int64_t kRows = 4;
constexpr int64_t kTile = 16;

// For R rows x[i] (d each): e[i] = W x[i] - |x[i]|^2 / 2 (m each); top[i] = max_r e[i]_r.
// WT: (d, m).
template <typename T, int R>
void exponents(const Sizes& s, const T* const* x, const T* __restrict__ WT, T* const* e,
               T* top) {
  const int64_t m = s.features, d = s.width;
  T half_norm[R];
  for (int i = 0; i < R; ++i) {
    T sum = T(0);
    for (int64_t c = 0; c < d; ++c) sum += x[i][c] * x[i][c];
    half_norm[i] = T(0.5) * sum;
    top[i] = -std::numeric_limits<T>::infinity();
  }
  int64_t r0 = 0;
  for (; r0 + kTile <= m; r0 += kTile) {
    T acc[R][kTile];
    for (int i = 0; i < R; ++i)
      for (int64_t t = 0; t < kTile; ++t) acc[i][t] = -half_norm[i];
    for (int64_t c = 0; c < d; ++c) {
      const T* __restrict__ w = WT + c * m + r0;
      for (int i = 0; i < R; ++i) {
        const T x_c = x[i][c];
#pragma omp simd
        for (int64_t t = 0; t < kTile; ++t) acc[i][t] += x_c * w[t];
      }
    }
    for (int i = 0; i < R; ++i) {
      T* __restrict__ out = e[i] + r0;
      T best = top[i];
#pragma omp simd reduction(max : best)
      for (int64_t t = 0; t < kTile; ++t) {
        out[t] = acc[i][t];
        best = std::max(best, acc[i][t]);
      }
      top[i] = best;
    }
  }
  for (; r0 < m; ++r0) {  // the last m % kTile features
    for (int i = 0; i < R; ++i) {
      T value = -half_norm[i];
      for (int64_t c = 0; c < d; ++c) value += x[i][c] * WT[c * m + r0];
      e[i][r0] = value;
      top[i] = std::max(top[i], value);
    }
  }
}

// out[i] = a[i] . b over m, for R rows a[i] (one pass over b).
template <typename T, int R>
void dots(const T* const* a, const T* __restrict__ b, int64_t m, T* out) {
  if constexpr (R == 4) {
    const T *__restrict__ a0 = a[0], *__restrict__ a1 = a[1];
    const T *__restrict__ a2 = a[2], *__restrict__ a3 = a[3];
    T s0 = T(0), s1 = T(0), s2 = T(0), s3 = T(0);
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t r = 0; r < m; ++r) {
      s0 += a0[r] * b[r];
      s1 += a1[r] * b[r];
      s2 += a2[r] * b[r];
      s3 += a3[r] * b[r];
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
  } else {
    for (int i = 0; i < R; ++i) {
      const T* __restrict__ a_i = a[i];
      T sum = T(0);
#pragma omp simd reduction(+ : sum)
      for (int64_t r = 0; r < m; ++r) sum += a_i[r] * b[r];
      out[i] = sum;
    }
  }
}

// phi = exp(e - shift) * scale in place.
template <typename T>
void features(int64_t m, T shift, T scale, T* __restrict__ e) {
#pragma omp simd
  for (int64_t r = 0; r < m; ++r) e[r] = exp_approx(e[r] - shift) * scale;
}

// For R rows: dx[i] = W^T de[i] - (sum_r de[i]_r) x[i] (d each); WT: (d, m).
template <typename T, int R>
void input_gradients(const Sizes& s, const T* const* de, const T* const* x,
                     const T* __restrict__ WT, T* const* dx) {
  const int64_t m = s.features;
  T total[R];
  for (int i = 0; i < R; ++i) {
    const T* __restrict__ g = de[i];
    T sum = T(0);
#pragma omp simd reduction(+ : sum)
    for (int64_t r = 0; r < m; ++r) sum += g[r];
    total[i] = sum;
  }
  for (int64_t c = 0; c < s.width; ++c) {
    T sum[R];
    dots<T, R>(de, WT + c * m, m, sum);
    for (int i = 0; i < R; ++i) dx[i][c] = sum[i] - total[i] * x[i][c];
  }
}

template <typename T>
struct Args {
  const T *q, *k, *v, *WT, *mask;
  T eps;
  T *y, *state, *shift, *den;                  // forward outputs (state: (b, h, E + 1, m))
  const T *grad_y;                             // backward input
  T *grad_q, *grad_k, *grad_v;                 // backward outputs
};

// Calls body.template operator()<R>(first) on blocks of kRows of the n items, then on the
// remaining ones singly.
template <typename F>
void in_blocks(int64_t n, F&& body) {
  int64_t first = 0;
  for (; first + kRows <= n; first += kRows) body.template operator()<kRows>(first);
  for (; first < n; ++first) body.template operator()<1>(first);
}

// Forward of one block of R query rows (rows[i]: their positions).
template <typename T, int R>
void query_block(const Sizes& s, const Args<T>& a, int64_t task, const int64_t* rows,
                 const T* state, T* buffer) {
  const int64_t d = s.width, m = s.features, E = s.values, L = s.length;
  const T scale = T(1) / std::sqrt(static_cast<T>(m));
  const T* x[R];
  T* phi[R];
  T top[R];
  for (int i = 0; i < R; ++i) {
    x[i] = a.q + (task * L + rows[i]) * d;
    phi[i] = buffer + i * m;
  }
  exponents<T, R>(s, x, a.WT, phi, top);
  for (int i = 0; i < R; ++i) features(m, top[i], scale, phi[i]);
  T out[R];
  T floor[R];
  const T* __restrict__ z = state + E * m;
  const T* features_of[R];
  for (int i = 0; i < R; ++i) features_of[i] = phi[i];
  dots<T, R>(features_of, z, m, out);
  for (int i = 0; i < R; ++i) {
    a.den[task * L + rows[i]] = out[i];
    floor[i] = std::max(out[i], a.eps);
  }
  for (int64_t e = 0; e < E; ++e) {
    dots<T, R>(features_of, state + e * m, m, out);
    for (int i = 0; i < R; ++i) a.y[(task * L + rows[i]) * E + e] = out[i] / floor[i];
  }
}

template <typename T>
void forward_tasks(int64_t begin, int64_t end, const Sizes& s, const Args<T>& a) {
  const int64_t L = s.length, d = s.width, m = s.features, E = s.values;
  const T scale = T(1) / std::sqrt(static_cast<T>(m));
  std::vector<T> keys_buffer(L * m), query_buffer(kRows * m);
  std::vector<int64_t> positions(L), real_keys(L);
  for (int64_t i = 0; i < L; ++i) positions[i] = i;
  T* __restrict__ keys = keys_buffer.data();  // (L, m): e(k_j), then phi_k,j
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / s.heads;
    const T* k = a.k + task * L * d;
    const T* v = a.v + task * L * E;
    const T* real = a.mask + b * L;
    T* __restrict__ state = a.state + task * s.state();
    int64_t n_real = 0;
    for (int64_t j = 0; j < L; ++j)
      if (real[j] != T(0)) real_keys[n_real++] = j;
    T shift = -std::numeric_limits<T>::infinity();
    in_blocks(n_real, [&]<int R>(int64_t first) {
      const T* x[R];
      T* e[R];
      T top[R];
      for (int i = 0; i < R; ++i) {
        x[i] = k + real_keys[first + i] * d;
        e[i] = keys + (first + i) * m;  // packed: the n-th real key's row is n
      }
      exponents<T, R>(s, x, a.WT, e, top);
      for (int i = 0; i < R; ++i) shift = std::max(shift, top[i]);
    });
    if (!std::isfinite(shift)) shift = T(0);  // no real key (or an infinite exponent)
    a.shift[task] = shift;
    std::fill_n(state, s.state(), T(0));
    for (int64_t n = 0; n < n_real; ++n) features(m, shift, scale, keys + n * m);
    in_blocks(n_real, [&]<int R>(int64_t first) {
      const T* phi[R];
      const T* v_rows[R];
      for (int i = 0; i < R; ++i) {
        phi[i] = keys + (first + i) * m;
        v_rows[i] = v + real_keys[first + i] * E;
      }
      for (int64_t e = 0; e <= E; ++e) {
        T weight[R];
        for (int i = 0; i < R; ++i) weight[i] = e < E ? v_rows[i][e] : T(1);
        T* __restrict__ row = state + e * m;
#pragma omp simd
        for (int64_t r = 0; r < m; ++r) {
          T sum = row[r];
          for (int i = 0; i < R; ++i) sum += weight[i] * phi[i][r];
          row[r] = sum;
        }
      }
    });
    in_blocks(L, [&]<int R>(int64_t first) {
      query_block<T, R>(s, a, task, positions.data() + first, state, query_buffer.data());
    });
  }
}

// Backward of one block of R query rows: their gradients, and their part of dS'^T.
template <typename T, int R>
void query_gradient_block(const Sizes& s, const Args<T>& a, int64_t task, int64_t first,
                          const T* state, T* grad_state, T* buffer) {
  const int64_t d = s.width, m = s.features, E = s.values, L = s.length;
  const T scale = T(1) / std::sqrt(static_cast<T>(m));
  const T* x[R];
  T *phi[R], *grad[R], *dx[R];
  T top[R];
  T* g_rows[R];
  for (int i = 0; i < R; ++i) {
    const int64_t row = task * L + first + i;
    x[i] = a.q + row * d;
    dx[i] = a.grad_q + row * d;
    phi[i] = buffer + i * m;
    grad[i] = buffer + (R + i) * m;
    g_rows[i] = buffer + 2 * kRows * m + i * (E + 1);
  }
  exponents<T, R>(s, x, a.WT, phi, top);
  for (int i = 0; i < R; ++i) {
    features(m, top[i], scale, phi[i]);
    const int64_t row = task * L + first + i;
    const T den = a.den[row];
    const T floor = std::max(den, a.eps);
    const T* dy = a.grad_y + row * E;
    const T* y = a.y + row * E;
    T dot = T(0);
    for (int64_t e = 0; e < E; ++e) {
      g_rows[i][e] = dy[e] / floor;
      dot += dy[e] * y[e];
    }
    g_rows[i][E] = den >= a.eps ? -dot / floor : T(0);
    std::fill_n(grad[i], m, T(0));
  }
  for (int64_t e = 0; e <= E; ++e) {
    T weight[R];
    for (int i = 0; i < R; ++i) weight[i] = g_rows[i][e];
    const T* __restrict__ row = state + e * m;
    T* __restrict__ grad_row = grad_state + e * m;
#pragma omp simd
    for (int64_t r = 0; r < m; ++r) {
      T sum = grad_row[r];
      for (int i = 0; i < R; ++i) {
        grad[i][r] += weight[i] * row[r];
        sum += weight[i] * phi[i][r];
      }
      grad_row[r] = sum;
    }
  }
  for (int i = 0; i < R; ++i) {
    T* __restrict__ gi = grad[i];
    const T* __restrict__ pi = phi[i];
#pragma omp simd
    for (int64_t r = 0; r < m; ++r) gi[r] *= pi[r];
  }
  const T* grads[R];
  for (int i = 0; i < R; ++i) grads[i] = grad[i];
  input_gradients<T, R>(s, grads, x, a.WT, dx);
}

// Backward of one block of R real keys (n-th real key at position keys[n]).
template <typename T, int R>
void key_gradient_block(const Sizes& s, const Args<T>& a, int64_t task, const int64_t* keys,
                        T shift, const T* grad_state, T* buffer) {
  const int64_t d = s.width, m = s.features, E = s.values, L = s.length;
  const T scale = T(1) / std::sqrt(static_cast<T>(m));
  const T* x[R];
  const T* v_rows[R];
  T *phi[R], *grad[R], *dx[R];
  T top[R];
  for (int i = 0; i < R; ++i) {
    const int64_t row = task * L + keys[i];
    x[i] = a.k + row * d;
    v_rows[i] = a.v + row * E;
    dx[i] = a.grad_k + row * d;
    phi[i] = buffer + i * m;
    grad[i] = buffer + (R + i) * m;
  }
  exponents<T, R>(s, x, a.WT, phi, top);
  const T* __restrict__ grad_z = grad_state + E * m;
  const T* features_of[R];
  for (int i = 0; i < R; ++i) {
    features_of[i] = phi[i];
    features(m, shift, scale, phi[i]);
    std::copy_n(grad_z, m, grad[i]);
  }
  for (int64_t e = 0; e < E; ++e) {
    T weight[R];
    T sum[R];
    for (int i = 0; i < R; ++i) weight[i] = v_rows[i][e];
    const T* __restrict__ grad_row = grad_state + e * m;
#pragma omp simd
    for (int64_t r = 0; r < m; ++r) {
      const T gr = grad_row[r];
      for (int i = 0; i < R; ++i) grad[i][r] += weight[i] * gr;
    }
    dots<T, R>(features_of, grad_row, m, sum);
    for (int i = 0; i < R; ++i) a.grad_v[(task * L + keys[i]) * E + e] = sum[i];
  }
  for (int i = 0; i < R; ++i) {
    T* __restrict__ gi = grad[i];
    const T* __restrict__ pi = phi[i];
#pragma omp simd
    for (int64_t r = 0; r < m; ++r) gi[r] *= pi[r];
  }
  const T* grads[R];
  for (int i = 0; i < R; ++i) grads[i] = grad[i];
  input_gradients<T, R>(s, grads, x, a.WT, dx);
}

template <typename T>
void backward_tasks(int64_t begin, int64_t end, const Sizes& s, const Args<T>& a) {
  const int64_t L = s.length, d = s.width, m = s.features, E = s.values;
  // (per block: phi and its gradient (kRows, m) each, g (kRows, E + 1))
  std::vector<T> grad_state_buffer(s.state()), buffer(2 * kRows * m + kRows * (E + 1));
  std::vector<int64_t> real_keys(L);
  T* __restrict__ grad_state = grad_state_buffer.data();  // dS'^T: (E + 1, m)
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / s.heads;
    const T* real = a.mask + b * L;
    const T* state = a.state + task * s.state();
    std::fill_n(grad_state, s.state(), T(0));
    in_blocks(L, [&]<int R>(int64_t first) {
      query_gradient_block<T, R>(s, a, task, first, state, grad_state, buffer.data());
    });
    int64_t n_real = 0;
    for (int64_t j = 0; j < L; ++j) {
      if (real[j] != T(0)) {
        real_keys[n_real++] = j;
      } else {  // padded keys: no features, no gradient
        std::fill_n(a.grad_k + (task * L + j) * d, d, T(0));
        std::fill_n(a.grad_v + (task * L + j) * E, E, T(0));
      }
    }
    const T shift = a.shift[task];
    in_blocks(n_real, [&]<int R>(int64_t first) {
      key_gradient_block<T, R>(s, a, task, real_keys.data() + first, shift, grad_state,
                               buffer.data());
    });
  }
}

}  // namespace

// Shapes (all arrays contiguous, one dtype): q, k: (b, h, l, d)  v, y: (b, h, l, E)
// WT: (d, m), the projection transposed  mask: (b, l), 1 at real positions, 0 at padding
// eps: one value, the floor of the normaliser
// state: (b, h, E + 1, m), S'^T  shift: (b, h)  den: (b, h, l)   (kept for the backward)
#define FORWARD(NAME, T)                                                                       \
  extern "C" int NAME(const T* q, const T* k, const T* v, const T* WT, const T* mask,         \
                      const T* eps, T* y, T* state, T* shift, T* den, int64_t batch,          \
                      int64_t heads, int64_t length, int64_t width, int64_t features,         \
                      int64_t values) {                                                       \
    const Sizes s{batch, heads, length, width, features, values};                             \
    const Args<T> a{q,     k,       v,       WT,      mask,    *eps,                          \
                    y,     state,   shift,   den,     nullptr, nullptr, nullptr, nullptr};    \
    return guarded([&] {                                                                      \
      at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {                \
        forward_tasks<T>(begin, end, s, a);                                                   \
      });                                                                                     \
    });                                                                                       \
  }
FORWARD(favor_forward_f32, float)
FORWARD(favor_forward_f64, double)

// Gradients (written, not accumulated): grad_q, grad_k (b, h, l, d), grad_v (b, h, l, E).
#define BACKWARD(NAME, T)                                                                      \
  extern "C" int NAME(const T* q, const T* k, const T* v, const T* WT, const T* mask,         \
                      const T* eps, const T* y, const T* state, const T* shift,               \
                      const T* den, const T* grad_y, T* grad_q, T* grad_k, T* grad_v,         \
                      int64_t batch, int64_t heads, int64_t length, int64_t width,            \
                      int64_t features, int64_t values) {                                     \
    const Sizes s{batch, heads, length, width, features, values};                             \
    const Args<T> a{q,                     k,                      v,                          \
                    WT,                    mask,                   *eps,                       \
                    const_cast<T*>(y),     const_cast<T*>(state),  const_cast<T*>(shift),      \
                    const_cast<T*>(den),   grad_y,                 grad_q,                     \
                    grad_k,                grad_v};                                            \
    return guarded([&] {                                                                      \
      at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {                \
        backward_tasks<T>(begin, end, s, a);                                                  \
      });                                                                                     \
    });                                                                                       \
  }
BACKWARD(favor_backward_f32, float)
BACKWARD(favor_backward_f64, double)
