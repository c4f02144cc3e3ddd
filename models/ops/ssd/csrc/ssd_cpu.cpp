// State-space duality (SSD) on CPU as its recurrence, forward and backward
// (models/ops/ssd/cpu.py builds this file on first use, calls it through ctypes and wraps it in
// an autograd Function). Per head, with a scalar decay a_t = exp(log_a_t):
//
//   S_t = a_t S_{t-1} + dt_t x_t B_t^T      (S: (p, n))
//   y_t = S_t C_t + D x_t
//
// dt (a scalar per step and head) and D (a scalar per head) are optional (null: 1 and 0):
// Mamba-2's input scaling and skip, fused here because as separate PyTorch passes over (b, l, h,
// p) they cost ~8% of a Mamba-2 `mini` step (three passes forward, seven backward).
//
// The chunked PyTorch form (chunked.py) turns this into small matrix products; on a CPU the
// recurrence itself, one step at a time with the (p, n) state in L1, needs no more arithmetic
// and none of the chunked form's (T, T) score tensors, copies and permutes.
//
// Tasks: the forward runs one (batch row, head) per task; the backward one (batch row, group,
// part of the group's heads), because grad_B and grad_C sum over the heads that share B and C.
// The forward holds the state's rows (p) in 32-byte vectors (kernel_common.h) with the loop
// over the n columns innermost: x and the output's sums stay in registers and no sum runs
// across lanes (measured at b 64, l 200, h 4, p 32, n 64, one thread: 25-27 -> 16.5 ms, best
// of 6, against the (p, n) rows with `omp simd` over n and one sum across lanes per row). The
// backward keeps (p, n) rows with its loops over n innermost, contiguous and vectorised.
//
// Memory: the forward keeps the state at the start of every chunk of `chunk` steps,
// (b, h, n_chunks, p, n); the backward rebuilds each chunk's states from it, (chunk, p, n)
// per task, and runs the adjoint recurrence back through the chunk. Nothing of size
// (b, l, h, p, n) is stored.
//
// Entry points: plain C functions on contiguous arrays that the caller allocates and checks.
//
// Axis letters: b batch, l time, h heads, g groups of heads sharing B and C, p head width of x,
// n state size.

#include <ATen/Parallel.h>

#include "kernel_common.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <vector>

namespace {

using namespace lra_kernels;  // the shared vector helpers (kernel_common.h)

struct Sizes {
  int64_t batch, length, heads, width, groups, states, chunk, n_chunks;
  int64_t plane() const { return width * states; }
  int64_t heads_per_group() const { return heads / groups; }
};

// Forward over tasks [begin, end) of (batch row, head): y, the last state and, when `kept` is
// not null, the state at the start of every chunk.
template <typename T>
void forward_tasks(int64_t begin, int64_t end, const Sizes& s, const T* x, const T* log_a,
                   const T* B, const T* C, const T* h0, const T* dt, const T* D, T* y,
                   T* last_state, T* kept) {
  // The state in kernel_common.h's (vector, n, lane) layout: rows (p) in vectors.
  constexpr int64_t V = kLanes<T>;
  const int64_t plane = s.plane(), n = s.states, vectors = (s.width + V - 1) / V;
  std::vector<T> state_buffer(vectors * n * V);
  T* __restrict__ state = state_buffer.data();
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / s.heads, head = task % s.heads;
    const int64_t group = head / s.heads_per_group();
    const Vec<T> skip = splat(D != nullptr ? D[head] : T(0));
    to_lanes(h0 + task * plane, s.width, n, T(1), state, vectors * n * V);
    for (int64_t t = 0; t < s.length; ++t) {
      if (kept != nullptr && t % s.chunk == 0)
        to_rows(state, s.width, n, kept + (task * s.n_chunks + t / s.chunk) * plane);
      const int64_t step = (b * s.length + t) * s.heads + head;
      const Vec<T> a = splat(T(std::exp(log_a[step])));
      const Vec<T> scale = splat(dt != nullptr ? dt[step] : T(1));
      const T* __restrict__ x_t = x + step * s.width;
      const T* __restrict__ B_t = B + ((b * s.length + t) * s.groups + group) * n;
      const T* __restrict__ C_t = C + ((b * s.length + t) * s.groups + group) * n;
      T* __restrict__ y_t = y + step * s.width;
      for (int64_t v = 0; v < vectors; ++v) {
        const Vec<T> raw = load_part(x_t, v, s.width);
        const Vec<T> x_v = raw * scale;
        T* __restrict__ h = state + v * n * V;
        // Four sums, so that the adds of consecutive j do not wait on each other's latency.
        Vec<T> out[4] = {};
        int64_t j = 0;
        for (; j + 4 <= n; j += 4) {
          for (int64_t u = 0; u < 4; ++u) {
            const Vec<T> next = a * load(h + (j + u) * V) + x_v * B_t[j + u];
            store(h + (j + u) * V, next);
            out[u] += next * C_t[j + u];
          }
        }
        for (; j < n; ++j) {
          const Vec<T> next = a * load(h + j * V) + x_v * B_t[j];
          store(h + j * V, next);
          out[0] += next * C_t[j];
        }
        store_part(y_t, v, s.width, (out[0] + out[1]) + (out[2] + out[3]) + skip * raw);
      }
    }
    to_rows(state, s.width, n, last_state + task * plane);
  }
}

// Pointers of the backward. grad_B and grad_C are partial sums per part of each group's heads,
// (parts, b, l, g, n), zero-filled by the caller; everything else is written whole by the one
// task that owns its head.
// dt, D, grad_dt and grad_D may be null (no scaling, no skip); grad_D is (b, h), one sum per
// batch row, written by the task that owns the head.
template <typename T>
struct BackwardArgs {
  const T *x, *log_a, *B, *C, *dt, *D, *kept, *grad_y, *grad_last;
  T *grad_x, *grad_log_a, *grad_B, *grad_C, *grad_h0, *grad_dt, *grad_D;
};

// One backward step on row i of the state (p, n) at time t: updates lambda's row (to
// a_t lambda_t), grad_B_t and grad_c_t (sums over rows; grad_c_t gathers S_{t-1}^T grad_y_t,
// see backward_tasks), writes grad_x_t[i], returns the row's part of sum(lambda_t * S_{t-1}).
// before: S_{t-1}.
template <typename T>
T backward_row(int64_t i, int64_t n, T a, const T* __restrict__ x_t,
               const T* __restrict__ grad_y_t, const T* __restrict__ B_t,
               const T* __restrict__ C_t, const T* __restrict__ before,
               T* __restrict__ lambda, T* __restrict__ grad_B_t, T* __restrict__ grad_c_t,
               T* __restrict__ grad_x_t) {
  const T* __restrict__ before_i = before + i * n;
  T* __restrict__ lam = lambda + i * n;
  const T x_i = x_t[i], g_i = grad_y_t[i];
  T grad_x_i = T(0), sum = T(0);
#pragma omp simd reduction(+ : grad_x_i, sum)
  for (int64_t j = 0; j < n; ++j) {
    const T l = lam[j] + g_i * C_t[j];
    grad_x_i += l * B_t[j];
    grad_B_t[j] += l * x_i;
    grad_c_t[j] += before_i[j] * g_i;
    sum += l * before_i[j];
    lam[j] = l * a;
  }
  grad_x_t[i] = grad_x_i;
  return sum;
}

// backward_row on rows i .. i + 3 at once: the four rows share one load and store of grad_B_t
// and grad_c_t, whose traffic otherwise bounds the loop (measured ~1.4x faster at p 32, n 64).
template <typename T>
T backward_four_rows(int64_t i, int64_t n, T a, const T* __restrict__ x_t,
                     const T* __restrict__ grad_y_t, const T* __restrict__ B_t,
                     const T* __restrict__ C_t, const T* __restrict__ before,
                     T* __restrict__ lambda, T* __restrict__ grad_B_t, T* __restrict__ grad_c_t,
                     T* __restrict__ grad_x_t) {
  const T *__restrict__ b0 = before + i * n, *__restrict__ b1 = b0 + n;
  const T *__restrict__ b2 = b1 + n, *__restrict__ b3 = b2 + n;
  T *__restrict__ m0 = lambda + i * n, *__restrict__ m1 = m0 + n;
  T *__restrict__ m2 = m1 + n, *__restrict__ m3 = m2 + n;
  const T x0 = x_t[i], x1 = x_t[i + 1], x2 = x_t[i + 2], x3 = x_t[i + 3];
  const T g0 = grad_y_t[i], g1 = grad_y_t[i + 1], g2 = grad_y_t[i + 2], g3 = grad_y_t[i + 3];
  T d0 = T(0), d1 = T(0), d2 = T(0), d3 = T(0), sum = T(0);
#pragma omp simd reduction(+ : d0, d1, d2, d3, sum)
  for (int64_t j = 0; j < n; ++j) {
    const T c = C_t[j], b = B_t[j];
    const T h0 = b0[j], h1 = b1[j], h2 = b2[j], h3 = b3[j];
    const T l0 = m0[j] + g0 * c, l1 = m1[j] + g1 * c, l2 = m2[j] + g2 * c, l3 = m3[j] + g3 * c;
    d0 += l0 * b;
    d1 += l1 * b;
    d2 += l2 * b;
    d3 += l3 * b;
    grad_B_t[j] += (l0 * x0 + l1 * x1) + (l2 * x2 + l3 * x3);
    grad_c_t[j] += (h0 * g0 + h1 * g1) + (h2 * g2 + h3 * g3);
    sum += (l0 * h0 + l1 * h1) + (l2 * h2 + l3 * h3);
    m0[j] = l0 * a;
    m1[j] = l1 * a;
    m2[j] = l2 * a;
    m3[j] = l3 * a;
  }
  grad_x_t[i] = d0;
  grad_x_t[i + 1] = d1;
  grad_x_t[i + 2] = d2;
  grad_x_t[i + 3] = d3;
  return sum;
}

// Backward over tasks [begin, end) of (batch row, group, part of the group's heads).
//
// Adjoint of the state, lambda_t = dLoss/dS_t (p, n), from t = l - 1 down to 0, with the drive
// u_t = dt_t x_t:
//   lambda_t = grad_y_t C_t^T + a_{t+1} lambda_{t+1}        (lambda_{l-1} also gets grad_last)
//   grad_u_t = lambda_t B_t       grad_B_t += lambda_t^T u_t       grad_C_t += S_t^T grad_y_t
//   grad_log_a_t = a_t sum(lambda_t * S_{t-1})                     grad_h0 = a_0 lambda_0
//   grad_x_t = dt_t grad_u_t + D grad_y_t   grad_dt_t = x_t . grad_u_t   grad_D += x_t . grad_y_t
// grad_C_t is formed from S_{t-1} as a_t S_{t-1}^T grad_y_t + B_t (x_t . grad_y_t), so that a
// step reads one rebuilt state, S_{t-1}, where S_t^T grad_y_t read two: the rebuilt chunk sits
// in L2, and its loads bound the loop (b 64, l 200, h 4, p 32, n 64, one thread, best of 6,
// beside two busy processes on 2 cores: 95-100 -> 69-70 ms).
template <typename T>
void backward_tasks(int64_t begin, int64_t end, const Sizes& s, int64_t parts,
                    const BackwardArgs<T>& g) {
  const int64_t plane = s.plane(), n = s.states;
  const int64_t per_part = (s.heads_per_group() + parts - 1) / parts;
  std::vector<T> states_buffer(s.chunk * plane), lambda_buffer(plane), decays(s.chunk);
  std::vector<T> grad_c_buffer(n), drive_buffer(s.width);
  T* __restrict__ states = states_buffer.data();  // (chunk, p, n): S before each step
  T* __restrict__ drive = drive_buffer.data();    // u_t = dt_t x_t of one step
  T* __restrict__ lambda = lambda_buffer.data();
  T* __restrict__ grad_c = grad_c_buffer.data();  // S_{t-1}^T grad_y_t of one step
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / (s.groups * parts), group = task / parts % s.groups;
    const int64_t part = task % parts;
    const int64_t first = group * s.heads_per_group() + part * per_part;
    const int64_t last = std::min((group + 1) * s.heads_per_group(), first + per_part);
    T* grad_B = g.grad_B + (part * s.batch + b) * s.length * s.groups * n;
    T* grad_C = g.grad_C + (part * s.batch + b) * s.length * s.groups * n;
    for (int64_t head = first; head < last; ++head) {
      const int64_t row = b * s.heads + head;  // (b, h) index of the head's state
      const T skip = g.D != nullptr ? g.D[head] : T(0);
      T grad_skip = T(0);
      std::copy_n(g.grad_last + row * plane, plane, lambda);
      for (int64_t chunk = s.n_chunks - 1; chunk >= 0; --chunk) {
        const int64_t t0 = chunk * s.chunk, steps = std::min(s.chunk, s.length - t0);
        std::copy_n(g.kept + (row * s.n_chunks + chunk) * plane, plane, states);
        // Rebuild the chunk: states[k + 1] = S after step t0 + k (the last step's is not
        // needed), decays[k] its a.
        for (int64_t k = 0; k < steps; ++k) {
          const int64_t t = t0 + k, step = (b * s.length + t) * s.heads + head;
          const T a = std::exp(g.log_a[step]);
          decays[k] = a;
          if (k + 1 == steps) break;
          const T scale = g.dt != nullptr ? g.dt[step] : T(1);
          const T* __restrict__ x_t = g.x + step * s.width;
          const T* __restrict__ B_t = g.B + ((b * s.length + t) * s.groups + group) * n;
          const T* __restrict__ before = states + k * plane;
          T* __restrict__ after = states + (k + 1) * plane;
          for (int64_t i = 0; i < s.width; ++i) {
            const T x_i = x_t[i] * scale;
#pragma omp simd
            for (int64_t j = 0; j < n; ++j)
              after[i * n + j] = a * before[i * n + j] + x_i * B_t[j];
          }
        }
        for (int64_t k = steps - 1; k >= 0; --k) {
          const int64_t t = t0 + k, step = (b * s.length + t) * s.heads + head;
          const int64_t shared = ((b * s.length + t) * s.groups + group) * n;
          const T a = decays[k];
          const T* __restrict__ x_t = g.x + step * s.width;
          const T* __restrict__ grad_y_t = g.grad_y + step * s.width;
          const T* __restrict__ B_t = g.B + shared;
          const T* __restrict__ C_t = g.C + shared;
          T* __restrict__ grad_B_t = grad_B + (t * s.groups + group) * n;
          T* __restrict__ grad_C_t = grad_C + (t * s.groups + group) * n;
          T* __restrict__ grad_x_t = g.grad_x + step * s.width;
          if (k > 0) {  // the previous step's rows, read next, from memory (not the chunk)
            prefetch(grad_y_t - s.heads * s.width, s.width);
            prefetch(C_t - s.groups * n, n);
            prefetch(grad_B_t - s.groups * n, n);
            prefetch(grad_C_t - s.groups * n, n);
          }
          const T* before = states + k * plane;
          const T scale = g.dt != nullptr ? g.dt[step] : T(1);
          std::fill(grad_c, grad_c + n, T(0));
          T decay_sum = T(0), x_dot_grad_y = T(0), u_dot_grad_y = T(0);
          for (int64_t i = 0; i < s.width; ++i) {
            drive[i] = x_t[i] * scale;
            x_dot_grad_y += x_t[i] * grad_y_t[i];
          }
          u_dot_grad_y = scale * x_dot_grad_y;
          int64_t i = 0;
          for (; i + 4 <= s.width; i += 4)
            decay_sum += backward_four_rows(i, n, a, drive, grad_y_t, B_t, C_t, before, lambda,
                                            grad_B_t, grad_c, grad_x_t);
          for (; i < s.width; ++i)
            decay_sum += backward_row(i, n, a, drive, grad_y_t, B_t, C_t, before, lambda,
                                      grad_B_t, grad_c, grad_x_t);
          // grad_x_t holds grad_u_t: the drive's gradient to dt and x, and the skip's.
          T grad_scale = T(0);
          for (int64_t r = 0; r < s.width; ++r) {
            grad_scale += x_t[r] * grad_x_t[r];
            grad_x_t[r] = scale * grad_x_t[r] + skip * grad_y_t[r];
          }
          if (g.grad_dt != nullptr) g.grad_dt[step] = grad_scale;
          grad_skip += x_dot_grad_y;
          // S_t^T grad_y_t = a_t S_{t-1}^T grad_y_t + B_t (x_t . grad_y_t).
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) grad_C_t[j] += a * grad_c[j] + B_t[j] * u_dot_grad_y;
          g.grad_log_a[step] = a * decay_sum;
        }
      }
      std::copy_n(lambda, plane, g.grad_h0 + row * plane);
      if (g.grad_D != nullptr) g.grad_D[row] = grad_skip;
    }
  }
}

Sizes sizes(int64_t batch, int64_t length, int64_t heads, int64_t width, int64_t groups,
            int64_t states, int64_t chunk) {
  return {batch, length, heads, width, groups, states, chunk, (length + chunk - 1) / chunk};
}

}  // namespace

// Shapes (all arrays contiguous, one dtype; kept may be null):
//   x, y: (b, l, h, p)   log_a: (b, l, h)   B, C: (b, l, g, n)   h0, last_state: (b, h, p, n)
//   dt: (b, l, h) or null   D: (h) or null
//   kept: (b, h, ceil(l / chunk), p, n), the state at the start of each chunk (null: the caller
//   needs no backward).
#define FORWARD(NAME, T)                                                                       \
  extern "C" int NAME(const T* x, const T* log_a, const T* B, const T* C, const T* h0,         \
                      const T* dt, const T* D, T* y, T* last_state, T* kept, int64_t batch,    \
                      int64_t length, int64_t heads,                                           \
                      int64_t width, int64_t groups, int64_t states, int64_t chunk) {         \
    const Sizes s = sizes(batch, length, heads, width, groups, states, chunk);               \
    return guarded([&] {                                                                      \
      at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {                \
        forward_tasks<T>(begin, end, s, x, log_a, B, C, h0, dt, D, y, last_state, kept);     \
      });                                                                                     \
    });                                                                                       \
  }
FORWARD(ssd_forward_f32, float)
FORWARD(ssd_forward_f64, double)

// Gradients (written, not accumulated): grad_x (b, l, h, p), grad_log_a (b, l, h), grad_h0
// (b, h, p, n), grad_dt (b, l, h) or null, grad_D_rows (b, h) or null (summed over b by the
// caller); grad_B_parts, grad_C_parts (parts, b, l, g, n), zero-filled by the caller, one
// partial sum per part of each group's heads. grad_last: the gradient of the last state.
#define BACKWARD(NAME, T)                                                                       \
  extern "C" int NAME(const T* x, const T* log_a, const T* B, const T* C, const T* dt,         \
                      const T* D, const T* kept, const T* grad_y, const T* grad_last,          \
                      T* grad_x, T* grad_log_a, T* grad_B_parts, T* grad_C_parts, T* grad_h0,  \
                      T* grad_dt, T* grad_D_rows, int64_t batch,                                \
                      int64_t length, int64_t heads, int64_t width, int64_t groups,             \
                      int64_t states, int64_t chunk, int64_t parts) {                           \
    const Sizes s = sizes(batch, length, heads, width, groups, states, chunk);                 \
    const BackwardArgs<T> g{x,         log_a,     B,      C,          dt,           D,    kept, \
                            grad_y,    grad_last, grad_x, grad_log_a, grad_B_parts,             \
                            grad_C_parts, grad_h0, grad_dt, grad_D_rows};                       \
    return guarded([&] {                                                                        \
      at::parallel_for(0, batch * groups * parts, 1, [&](int64_t begin, int64_t end) {         \
        backward_tasks<T>(begin, end, s, parts, g);                                             \
      });                                                                                       \
    });                                                                                         \
  }
BACKWARD(ssd_backward_f32, float)
BACKWARD(ssd_backward_f64, double)
