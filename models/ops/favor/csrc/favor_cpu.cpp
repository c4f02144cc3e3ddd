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

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <vector>

namespace {

// exp(x) in float with ~2 ulp error (Cephes' expf), branch-free so that loops calling it
// vectorise (the same function as the selective scan's kernel). Arguments here are <= 0.
inline float exp_approx(float x) {
  const bool underflows = x < -87.3f;
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.0f ? 88.0f : x;
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - k * 0.693359375f;
  r = r + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t exponent = (static_cast<int32_t>(k) + 127) << 23;
  const float result = p * std::bit_cast<float>(exponent);
  return underflows ? 0.0f : result;
}

// float64 is for checking against the reference to 1e-9: the library exp.
inline double exp_approx(double x) { return std::exp(x); }

struct Sizes {
  int64_t batch, heads, length, width, features, values;
  int64_t state() const { return (values + 1) * features; }  // S'^T: (E + 1, m)
};

// e(x) = W x - |x|^2 / 2 into e (m); WT: (d, m). Returns max_r e_r.
template <typename T>
T exponents(const Sizes& s, const T* __restrict__ x, const T* __restrict__ WT,
            T* __restrict__ e) {
  const int64_t m = s.features;
  T half_norm = T(0);
  for (int64_t c = 0; c < s.width; ++c) half_norm += x[c] * x[c];
  half_norm *= T(0.5);
#pragma omp simd
  for (int64_t r = 0; r < m; ++r) e[r] = -half_norm;
  for (int64_t c = 0; c < s.width; ++c) {
    const T x_c = x[c];
    const T* __restrict__ w = WT + c * m;
#pragma omp simd
    for (int64_t r = 0; r < m; ++r) e[r] += x_c * w[r];
  }
  T top = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : top)
  for (int64_t r = 0; r < m; ++r) top = std::max(top, e[r]);
  return top;
}

// phi = exp(e - shift) * scale in place.
template <typename T>
void features(int64_t m, T shift, T scale, T* __restrict__ e) {
#pragma omp simd
  for (int64_t r = 0; r < m; ++r) e[r] = exp_approx(e[r] - shift) * scale;
}

// dx = W^T de - (sum_r de_r) x, written to dx (d); WT: (d, m).
template <typename T>
void input_gradient(const Sizes& s, const T* __restrict__ de, const T* __restrict__ x,
                    const T* __restrict__ WT, T* __restrict__ dx) {
  const int64_t m = s.features;
  T total = T(0);
#pragma omp simd reduction(+ : total)
  for (int64_t r = 0; r < m; ++r) total += de[r];
  for (int64_t c = 0; c < s.width; ++c) {
    const T* __restrict__ w = WT + c * m;
    T sum = T(0);
#pragma omp simd reduction(+ : sum)
    for (int64_t r = 0; r < m; ++r) sum += de[r] * w[r];
    dx[c] = sum - total * x[c];
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

template <typename T>
void forward_tasks(int64_t begin, int64_t end, const Sizes& s, const Args<T>& a) {
  const int64_t L = s.length, d = s.width, m = s.features, E = s.values;
  const T scale = T(1) / std::sqrt(static_cast<T>(m));
  std::vector<T> keys_buffer(L * m), query_buffer(m);
  T* __restrict__ keys = keys_buffer.data();  // (L, m): e(k_j), then phi_k,j
  T* __restrict__ query = query_buffer.data();
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / s.heads;
    const T* q = a.q + task * L * d;
    const T* k = a.k + task * L * d;
    const T* v = a.v + task * L * E;
    const T* real = a.mask + b * L;
    T* __restrict__ state = a.state + task * s.state();
    T shift = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < L; ++j)
      if (real[j] != T(0)) shift = std::max(shift, exponents(s, k + j * d, a.WT, keys + j * m));
    if (!std::isfinite(shift)) shift = T(0);  // no real key (or an infinite exponent)
    a.shift[task] = shift;
    std::fill_n(state, s.state(), T(0));
    T* __restrict__ z = state + E * m;
    for (int64_t j = 0; j < L; ++j) {
      if (real[j] == T(0)) continue;
      T* __restrict__ phi = keys + j * m;
      features(m, shift, scale, phi);
      for (int64_t e = 0; e < E; ++e) {
        const T v_e = v[j * E + e];
        T* __restrict__ row = state + e * m;
#pragma omp simd
        for (int64_t r = 0; r < m; ++r) row[r] += v_e * phi[r];
      }
#pragma omp simd
      for (int64_t r = 0; r < m; ++r) z[r] += phi[r];
    }
    for (int64_t i = 0; i < L; ++i) {
      const T top = exponents(s, q + i * d, a.WT, query);
      features(m, top, scale, query);
      T den = T(0);
#pragma omp simd reduction(+ : den)
      for (int64_t r = 0; r < m; ++r) den += query[r] * z[r];
      const T floor = std::max(den, a.eps);
      a.den[task * L + i] = den;
      T* y = a.y + (task * L + i) * E;
      for (int64_t e = 0; e < E; ++e) {
        const T* __restrict__ row = state + e * m;
        T out = T(0);
#pragma omp simd reduction(+ : out)
        for (int64_t r = 0; r < m; ++r) out += query[r] * row[r];
        y[e] = out / floor;
      }
    }
  }
}

template <typename T>
void backward_tasks(int64_t begin, int64_t end, const Sizes& s, const Args<T>& a) {
  const int64_t L = s.length, d = s.width, m = s.features, E = s.values;
  const T scale = T(1) / std::sqrt(static_cast<T>(m));
  std::vector<T> grad_state_buffer(s.state()), phi_buffer(m), grad_buffer(m), g(E + 1);
  T* __restrict__ grad_state = grad_state_buffer.data();  // dS'^T: (E + 1, m)
  T* __restrict__ phi = phi_buffer.data();
  T* __restrict__ grad = grad_buffer.data();
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / s.heads;
    const T* q = a.q + task * L * d;
    const T* k = a.k + task * L * d;
    const T* v = a.v + task * L * E;
    const T* real = a.mask + b * L;
    const T* __restrict__ state = a.state + task * s.state();
    std::fill_n(grad_state, s.state(), T(0));
    for (int64_t i = 0; i < L; ++i) {
      const T top = exponents(s, q + i * d, a.WT, phi);
      features(m, top, scale, phi);
      const T den = a.den[task * L + i];
      const T floor = std::max(den, a.eps);
      const T* dy = a.grad_y + (task * L + i) * E;
      const T* y = a.y + (task * L + i) * E;
      T dot = T(0);
      for (int64_t e = 0; e < E; ++e) {
        g[e] = dy[e] / floor;
        dot += dy[e] * y[e];
      }
      g[E] = den >= a.eps ? -dot / floor : T(0);
      std::fill_n(grad, m, T(0));
      for (int64_t e = 0; e <= E; ++e) {
        const T g_e = g[e];
        const T* __restrict__ row = state + e * m;
        T* __restrict__ grad_row = grad_state + e * m;
#pragma omp simd
        for (int64_t r = 0; r < m; ++r) {
          grad[r] += g_e * row[r];
          grad_row[r] += g_e * phi[r];
        }
      }
#pragma omp simd
      for (int64_t r = 0; r < m; ++r) grad[r] *= phi[r];
      input_gradient(s, grad, q + i * d, a.WT, a.grad_q + (task * L + i) * d);
    }
    const T shift = a.shift[task];
    const T* __restrict__ grad_z = grad_state + E * m;
    for (int64_t j = 0; j < L; ++j) {
      T* grad_k = a.grad_k + (task * L + j) * d;
      T* grad_v = a.grad_v + (task * L + j) * E;
      if (real[j] == T(0)) {
        std::fill_n(grad_k, d, T(0));
        std::fill_n(grad_v, E, T(0));
        continue;
      }
      exponents(s, k + j * d, a.WT, phi);
      features(m, shift, scale, phi);
#pragma omp simd
      for (int64_t r = 0; r < m; ++r) grad[r] = grad_z[r];
      for (int64_t e = 0; e < E; ++e) {
        const T v_e = v[j * E + e];
        const T* __restrict__ grad_row = grad_state + e * m;
        T sum = T(0);
#pragma omp simd reduction(+ : sum)
        for (int64_t r = 0; r < m; ++r) {
          grad[r] += v_e * grad_row[r];
          sum += phi[r] * grad_row[r];
        }
        grad_v[e] = sum;
      }
#pragma omp simd
      for (int64_t r = 0; r < m; ++r) grad[r] *= phi[r];
      input_gradient(s, grad, k + j * d, a.WT, grad_k);
    }
  }
}

// An exception must not cross the C boundary: it becomes a non-zero return (the caller raises).
template <typename F>
int guarded(F&& body) {
  try {
    body();
    return 0;
  } catch (const std::bad_alloc&) {
    return 2;
  } catch (...) {
    return 1;
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
