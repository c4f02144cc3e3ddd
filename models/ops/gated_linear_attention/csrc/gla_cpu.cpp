// Gated linear attention on CPU as its recurrence, forward and backward
// (models/ops/gated_linear_attention/cpu.py builds this file on first use, calls it through
// ctypes and wraps it in an autograd Function). Per (batch row, head), with the state S (k, v)
// and a_t = exp(log_decay_t) per key channel (a = 1 without decay):
//
//   GLA (no bonus):   S_t = diag(a_t) S_{t-1} + k_t^T v_t,   o_t = q_t S_t
//   RWKV-6 (bonus u): o_t = q_t S_{t-1} + (q_t . (u * k_t)) v_t,   S_t as above
//
// The chunked PyTorch form builds (T, T, k) pairwise decays and loops over chunks in Python;
// on a CPU the recurrence itself, one step at a time with the (k, v) state in L1, needs no more
// arithmetic and none of those tensors.
//
// Backward, with lambda_t = dLoss/dS_t, from t = l - 1 down to 0 (lambda_{l-1} = grad_last):
//   GLA:    lambda_t += q_t^T grad_o_t;  grad_q_t = S_t grad_o_t
//   RWKV-6: grad_q_t = S_{t-1} grad_o_t + u * k_t (grad_o_t . v_t), likewise the bonus terms of
//           grad_k_t, grad_v_t and grad_u
//   grad_k_t = lambda_t v_t    grad_v_t = lambda_t^T k_t
//   grad_log_decay_t = a_t * rowsum(lambda_t * S_{t-1})
//   lambda_{t-1} = diag(a_t) lambda_t  (+ q_t^T grad_o_t for RWKV-6, whose o_t reads S_{t-1})
//   grad_initial_state = lambda_{-1}
//
// Memory: the forward keeps the state at the start of every chunk of `chunk` steps; the
// backward rebuilds each chunk's states from it. Nothing of size (b, h, l, k, v) is stored.
//
// Tasks: one (batch row, head) each, in parallel with at::parallel_for; loops over the value
// width v are innermost, contiguous and vectorised (`omp simd`).
//
// Axis letters: b batch, h heads, l time, k key width, v value width.

#include <ATen/Parallel.h>

#include "kernel_common.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <exception>
#include <vector>

namespace {

using lra_kernels::guarded;
using lra_kernels::exp_approx;

struct Sizes {
  int64_t batch, heads, length, keys, values, chunk, n_chunks;
  int64_t plane() const { return keys * values; }
};

template <typename T>
struct Args {
  const T *q, *k, *v, *log_decay, *bonus, *h0;  // log_decay, bonus may be null
  T *o, *last_state, *kept;                      // forward outputs (kept may be null)
  const T *grad_o, *grad_last;
  T *grad_q, *grad_k, *grad_v, *grad_log_decay, *grad_bonus, *grad_h0;  // grad_bonus: (b, h, k)
};

// The decays a_t of step t into `a` (ones without decay).
template <typename T>
void decays(const Sizes& s, const T* log_decay, int64_t step, T* a) {
  if (log_decay == nullptr) {
    std::fill_n(a, s.keys, T(1));
    return;
  }
  const T* __restrict__ w = log_decay + step * s.keys;
#pragma omp simd
  for (int64_t i = 0; i < s.keys; ++i) a[i] = exp_approx(w[i]);
}

template <typename T>
void forward_tasks(int64_t begin, int64_t end, const Sizes& s, const Args<T>& g) {
  const int64_t plane = s.plane(), K = s.keys, V = s.values;
  std::vector<T> state_buffer(plane), a(K);
  T* __restrict__ state = state_buffer.data();
  for (int64_t task = begin; task < end; ++task) {
    const int64_t head = task % s.heads;
    if (g.h0 != nullptr)
      std::copy_n(g.h0 + task * plane, plane, state);
    else
      std::fill_n(state, plane, T(0));
    const T* u = g.bonus == nullptr ? nullptr : g.bonus + head * K;
    for (int64_t t = 0; t < s.length; ++t) {
      if (g.kept != nullptr && t % s.chunk == 0)
        std::copy_n(state, plane, g.kept + (task * s.n_chunks + t / s.chunk) * plane);
      const int64_t step = task * s.length + t;
      const T* q_t = g.q + step * K;
      const T* k_t = g.k + step * K;
      const T* __restrict__ v_t = g.v + step * V;
      T* __restrict__ o_t = g.o + step * V;
      decays(s, g.log_decay, step, a.data());
      T coefficient = T(0);  // RWKV-6's bonus weight q_t . (u * k_t)
      if (u != nullptr)
        for (int64_t i = 0; i < K; ++i) coefficient += q_t[i] * u[i] * k_t[i];
#pragma omp simd
      for (int64_t j = 0; j < V; ++j) o_t[j] = coefficient * v_t[j];
      // One pass over the state: read it (S_{t-1} for RWKV-6, S_t for GLA) and update it.
      const bool reads_before = u != nullptr;
      for (int64_t i = 0; i < K; ++i) {
        T* __restrict__ row = state + i * V;
        const T q_i = q_t[i], a_i = a[i], k_i = k_t[i];
#pragma omp simd
        for (int64_t j = 0; j < V; ++j) {
          const T next = a_i * row[j] + k_i * v_t[j];
          o_t[j] += q_i * (reads_before ? row[j] : next);
          row[j] = next;
        }
      }
    }
    std::copy_n(state, plane, g.last_state + task * plane);
  }
}

template <typename T>
void backward_tasks(int64_t begin, int64_t end, const Sizes& s, const Args<T>& g) {
  const int64_t plane = s.plane(), K = s.keys, V = s.values;
  std::vector<T> states_buffer((s.chunk + 1) * plane), lambda_buffer(plane);
  std::vector<T> decay_buffer(s.chunk * K);
  T* __restrict__ states = states_buffer.data();  // (chunk + 1, k, v): S before each step
  T* __restrict__ lambda = lambda_buffer.data();
  T* __restrict__ chunk_decays = decay_buffer.data();
  for (int64_t task = begin; task < end; ++task) {
    const int64_t head = task % s.heads;
    const T* u = g.bonus == nullptr ? nullptr : g.bonus + head * K;
    T* grad_u = g.grad_bonus == nullptr ? nullptr : g.grad_bonus + task * K;
    if (grad_u != nullptr) std::fill_n(grad_u, K, T(0));
    std::copy_n(g.grad_last + task * plane, plane, lambda);
    for (int64_t chunk = s.n_chunks - 1; chunk >= 0; --chunk) {
      const int64_t t0 = chunk * s.chunk, steps = std::min(s.chunk, s.length - t0);
      std::copy_n(g.kept + (task * s.n_chunks + chunk) * plane, plane, states);
      for (int64_t c = 0; c < steps; ++c) {
        const int64_t step = task * s.length + t0 + c;
        decays(s, g.log_decay, step, chunk_decays + c * K);
        const T* a = chunk_decays + c * K;
        const T* k_t = g.k + step * K;
        const T* __restrict__ v_t = g.v + step * V;
        const T* __restrict__ before = states + c * plane;
        T* __restrict__ after = states + (c + 1) * plane;
        for (int64_t i = 0; i < K; ++i) {
          const T a_i = a[i], k_i = k_t[i];
#pragma omp simd
          for (int64_t j = 0; j < V; ++j)
            after[i * V + j] = a_i * before[i * V + j] + k_i * v_t[j];
        }
      }
      for (int64_t c = steps - 1; c >= 0; --c) {
        const int64_t step = task * s.length + t0 + c;
        const T* a = chunk_decays + c * K;
        const T* q_t = g.q + step * K;
        const T* k_t = g.k + step * K;
        const T* __restrict__ v_t = g.v + step * V;
        const T* __restrict__ go = g.grad_o + step * V;
        const T* before = states + c * plane;
        const T* after = states + (c + 1) * plane;
        T* grad_q = g.grad_q + step * K;
        T* grad_k = g.grad_k + step * K;
        T* __restrict__ grad_v = g.grad_v + step * V;
        const T* read = u == nullptr ? after : before;  // the state o_t reads
        T go_v = T(0), bonus_weight = T(0);
        if (u != nullptr) {
          for (int64_t j = 0; j < V; ++j) go_v += go[j] * v_t[j];
          for (int64_t i = 0; i < K; ++i) bonus_weight += q_t[i] * u[i] * k_t[i];
        }
#pragma omp simd
        for (int64_t j = 0; j < V; ++j) grad_v[j] = bonus_weight * go[j];
        // One pass over lambda's rows: (GLA: add q_t^T grad_o_t first, as o_t reads S_t), the
        // gradients of step t, then lambda_{t-1} (RWKV-6: + q_t^T grad_o_t).
        for (int64_t i = 0; i < K; ++i) {
          T* __restrict__ lam = lambda + i * V;
          const T* __restrict__ read_i = read + i * V;
          const T* __restrict__ before_i = before + i * V;
          const T k_i = k_t[i], q_i = q_t[i], a_i = a[i];
          const T q_in = u == nullptr ? q_i : T(0), q_out = u == nullptr ? T(0) : q_i;
          T dq = T(0), dk = T(0), dw = T(0);
#pragma omp simd reduction(+ : dq, dk, dw)
          for (int64_t j = 0; j < V; ++j) {
            const T l = lam[j] + q_in * go[j];
            dq += read_i[j] * go[j];
            dk += l * v_t[j];
            dw += l * before_i[j];
            grad_v[j] += l * k_i;
            lam[j] = a_i * l + q_out * go[j];
          }
          if (u != nullptr) {
            dq += u[i] * k_i * go_v;
            dk += u[i] * q_i * go_v;
            grad_u[i] += q_i * k_i * go_v;
          }
          grad_q[i] = dq;
          grad_k[i] = dk;
          if (g.grad_log_decay != nullptr) g.grad_log_decay[step * K + i] = a_i * dw;
        }
      }
    }
    if (g.grad_h0 != nullptr) std::copy_n(lambda, plane, g.grad_h0 + task * plane);
  }
}

Sizes sizes(int64_t batch, int64_t heads, int64_t length, int64_t keys, int64_t values,
            int64_t chunk) {
  return {batch, heads, length, keys, values, chunk, (length + chunk - 1) / chunk};
}

}  // namespace

// Shapes (all arrays contiguous, one dtype): q, k, log_decay: (b, h, l, k)   v, o: (b, h, l, v)
// bonus: (h, k)   h0, last_state: (b, h, k, v)   kept: (b, h, ceil(l / chunk), k, v).
// log_decay, bonus, h0 and kept may be null (no decay, GLA form, zero state, no backward).
#define FORWARD(NAME, T)                                                                       \
  extern "C" int NAME(const T* q, const T* k, const T* v, const T* log_decay, const T* bonus, \
                      const T* h0, T* o, T* last_state, T* kept, int64_t batch,               \
                      int64_t heads, int64_t length, int64_t keys, int64_t values,            \
                      int64_t chunk) {                                                        \
    const Sizes s = sizes(batch, heads, length, keys, values, chunk);                         \
    Args<T> g{};                                                                              \
    g.q = q, g.k = k, g.v = v, g.log_decay = log_decay, g.bonus = bonus, g.h0 = h0;           \
    g.o = o, g.last_state = last_state, g.kept = kept;                                        \
    return guarded([&] {                                                                      \
      at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {                \
        forward_tasks<T>(begin, end, s, g);                                                   \
      });                                                                                     \
    });                                                                                       \
  }
FORWARD(gla_forward_f32, float)
FORWARD(gla_forward_f64, double)

// Gradients (written, not accumulated): grad_q, grad_k (b, h, l, k), grad_v (b, h, l, v),
// grad_log_decay (b, h, l, k) or null, grad_bonus (b, h, k) per batch row or null, grad_h0
// (b, h, k, v) or null. grad_last: the gradient of the last state.
#define BACKWARD(NAME, T)                                                                      \
  extern "C" int NAME(const T* q, const T* k, const T* v, const T* log_decay, const T* bonus, \
                      const T* kept, const T* grad_o, const T* grad_last, T* grad_q,          \
                      T* grad_k, T* grad_v, T* grad_log_decay, T* grad_bonus, T* grad_h0,     \
                      int64_t batch, int64_t heads, int64_t length, int64_t keys,             \
                      int64_t values, int64_t chunk) {                                        \
    const Sizes s = sizes(batch, heads, length, keys, values, chunk);                         \
    Args<T> g{};                                                                              \
    g.q = q, g.k = k, g.v = v, g.log_decay = log_decay, g.bonus = bonus;                      \
    g.kept = const_cast<T*>(kept);                                                            \
    g.grad_o = grad_o, g.grad_last = grad_last, g.grad_q = grad_q, g.grad_k = grad_k;         \
    g.grad_v = grad_v, g.grad_log_decay = grad_log_decay, g.grad_bonus = grad_bonus;          \
    g.grad_h0 = grad_h0;                                                                      \
    return guarded([&] {                                                                      \
      at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {                \
        backward_tasks<T>(begin, end, s, g);                                                  \
      });                                                                                     \
    });                                                                                       \
  }
BACKWARD(gla_backward_f32, float)
BACKWARD(gla_backward_f64, double)
