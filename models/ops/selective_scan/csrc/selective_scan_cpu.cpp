// The selective scan of Mamba on CPU, forward and backward (models/ops/selective_scan/cpu.py
// builds this file on first use, calls it through ctypes and wraps it in an autograd Function).
//
//   h_t[d, n] = exp(delta_t[d] A[d, n]) h_{t-1}[d, n] + delta_t[d] B_t[n] u_t[d]
//   y_t[d]    = sum_n C_t[n] h_t[d, n] + D[d] u_t[d]
//
// Work is split into tasks of one batch row and a tile of consecutive channels, run in parallel
// with at::parallel_for (so torch.set_num_threads applies). Inside a task every loop over the
// tile's channels is innermost and contiguous in memory (u and delta are (b, l, d)), marked
// `omp simd`: the compiler turns it into vector code, exp included (exp_approx below has no
// branches and no calls). The tile's state (n, tile) stays in L1.
//
// Memory: the forward keeps one state per chunk of `chunk` steps, (b, n_chunks, d, n). The
// backward walks the chunks from last to first; for each it rebuilds, from the kept state, the
// chunk's states (chunk + 1, n, tile) and decay factors exp(delta A) (chunk, n, tile) in a buffer
// of the task sized for L2 (which sets the tile), then runs the adjoint recurrence back through
// the chunk. Nothing of size (b, l, d, n) is ever stored.
//
// The entry points are plain C functions on contiguous arrays that the caller allocates and
// checks (cpu.py): the only torch header is ATen/Parallel.h, so the first build compiles in
// seconds where ATen's tensor and op-registration headers took ~10x longer (measured).
//
// Axis letters: b batch, l time, d channels, n state size.

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
  int64_t batch, length, channels, states, chunk, n_chunks;
};

// Channel tile of the forward: (states, tile) state and A in L1.
constexpr int64_t kForwardTile = 64;

// Channel tile of the backward: the rebuilt chunk, states (chunk + 1, n, tile) and decay
// factors (chunk, n, tile), fits in ~256 KiB, half of a Zen 3 core's L2. (Measured at b 4,
// l 1024, d 256, n 16: keeping the factors rather than computing each exp twice made the
// backward ~20% faster; 128-step chunks, which leave a 24-channel tile, ~1.5x slower than
// 32-step ones with 56 channels: the per-(t, n) work outside the vector loop starts to count.)
template <typename T>
int64_t backward_tile(const Sizes& s) {
  const int64_t per_channel = (2 * s.chunk + 1) * s.states * static_cast<int64_t>(sizeof(T));
  int64_t tile = (256 * 1024 / std::max<int64_t>(per_channel, 1)) / 8 * 8;
  return std::clamp<int64_t>(tile, 8, std::max<int64_t>(s.channels, 8));
}

// Forward over tasks [begin, end) of (batch row, channel tile). Writes y, the last state and,
// when `chunk_states` is not null, the state at the start of every chunk.
template <typename T>
void forward_tasks(int64_t begin, int64_t end, const Sizes& s, int64_t tile, const T* u,
                   const T* delta, const T* A, const T* B, const T* C, const T* D, const T* h0,
                   T* y, T* last_state, T* chunk_states) {
  const int64_t n_tiles = (s.channels + tile - 1) / tile;
  std::vector<T> state_buffer(s.states * tile), a_buffer(s.states * tile);
  std::vector<T> dt_buffer(tile), du_buffer(tile), y_buffer(tile);
  T* __restrict__ state = state_buffer.data();
  T* __restrict__ a_tile = a_buffer.data();
  T* __restrict__ dt = dt_buffer.data();
  T* __restrict__ du = du_buffer.data();
  T* __restrict__ acc = y_buffer.data();
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / n_tiles, d0 = (task % n_tiles) * tile;
    const int64_t width = std::min(tile, s.channels - d0);
    // A (d, n) and states (b, d, n) are transposed into (n, tile) so that channels are inner.
    for (int64_t n = 0; n < s.states; ++n) {
      for (int64_t w = 0; w < width; ++w) {
        a_tile[n * tile + w] = A[(d0 + w) * s.states + n];
        state[n * tile + w] = h0[(b * s.channels + d0 + w) * s.states + n];
      }
    }
    for (int64_t t = 0; t < s.length; ++t) {
      if (chunk_states != nullptr && t % s.chunk == 0) {
        T* out = chunk_states + ((b * s.n_chunks + t / s.chunk) * s.channels + d0) * s.states;
        for (int64_t w = 0; w < width; ++w)
          for (int64_t n = 0; n < s.states; ++n) out[w * s.states + n] = state[n * tile + w];
      }
      const int64_t row = (b * s.length + t);
      const T* u_t = u + row * s.channels + d0;
      const T* delta_t = delta + row * s.channels + d0;
#pragma omp simd
      for (int64_t w = 0; w < width; ++w) {
        dt[w] = delta_t[w];
        du[w] = delta_t[w] * u_t[w];
        acc[w] = D != nullptr ? D[d0 + w] * u_t[w] : T(0);
      }
      for (int64_t n = 0; n < s.states; ++n) {
        const T b_n = B[row * s.states + n], c_n = C[row * s.states + n];
        T* __restrict__ h = state + n * tile;
        const T* __restrict__ a = a_tile + n * tile;
#pragma omp simd
        for (int64_t w = 0; w < width; ++w) {
          const T next = exp_approx(dt[w] * a[w]) * h[w] + du[w] * b_n;
          h[w] = next;
          acc[w] += c_n * next;
        }
      }
      T* y_t = y + row * s.channels + d0;
#pragma omp simd
      for (int64_t w = 0; w < width; ++w) y_t[w] = acc[w];
    }
    for (int64_t w = 0; w < width; ++w)
      for (int64_t n = 0; n < s.states; ++n)
        last_state[(b * s.channels + d0 + w) * s.states + n] = state[n * tile + w];
  }
}

// Pointers of the backward: inputs, incoming gradients, and where the gradients go. grad_B and
// grad_C are per-group partial sums (groups, b, l, n), grad_A and grad_D per-row partial sums
// (b, d, n) and (b, d): each task writes only its own slice, so no two threads touch one value.
template <typename T>
struct BackwardArgs {
  const T *u, *delta, *A, *B, *C, *D, *chunk_states, *grad_y, *grad_last;
  T *grad_u, *grad_delta, *grad_A, *grad_B, *grad_C, *grad_D, *grad_h0;
};

// Backward over tasks [begin, end) of (batch row, group of channel tiles).
//
// Adjoint of the state, lambda_t = dLoss/dh_t, run from t = l - 1 down to 0:
//   lambda_t = C_t grad_y_t + exp(delta_{t+1} A) lambda_{t+1}   (lambda_{l-1} also gets grad_last)
// and with e_t = exp(delta_t A), h_{t-1} the state before step t:
//   grad_C_t[n]  += sum_d grad_y_t[d] h_t[d, n]           grad_B_t[n] += sum_d lambda_t delta_t u_t
//   grad_u_t[d]   = delta_t sum_n lambda_t B_t + D grad_y_t
//   grad_delta_t  = sum_n lambda_t (A e_t h_{t-1} + B_t u_t)
//   grad_A[d, n] += lambda_t delta_t e_t h_{t-1}             grad_h0 = e_0 lambda_0
template <typename T>
void backward_tasks(int64_t begin, int64_t end, const Sizes& s, int64_t tile, int64_t groups,
                    const BackwardArgs<T>& g) {
  const int64_t n_tiles = (s.channels + tile - 1) / tile;
  const int64_t tiles_per_group = (n_tiles + groups - 1) / groups;
  const int64_t plane = s.states * tile;
  std::vector<T> states_buffer((s.chunk + 1) * plane), exps_buffer(s.chunk * plane);
  std::vector<T> lambda_buffer(plane), a_buffer(plane), grad_a_buffer(plane), vectors(7 * tile);
  T* __restrict__ states = states_buffer.data();  // (chunk + 1, n, tile): h before each step
  T* __restrict__ exps = exps_buffer.data();      // (chunk, n, tile): exp(delta A) of each step
  T* __restrict__ lambda = lambda_buffer.data();
  T* __restrict__ a_tile = a_buffer.data();
  T* __restrict__ grad_a = grad_a_buffer.data();
  T* __restrict__ dt = vectors.data();
  T* __restrict__ u_w = dt + tile;
  T* __restrict__ du = u_w + tile;
  T* __restrict__ gy = du + tile;
  T* __restrict__ lambda_b = gy + tile;      // sum_n lambda B
  T* __restrict__ lambda_aeh = lambda_b + tile;  // sum_n lambda A e h_{t-1}
  T* __restrict__ grad_d = lambda_aeh + tile;
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / groups, group = task % groups;
    T* grad_B = g.grad_B + (group * s.batch + b) * s.length * s.states;
    T* grad_C = g.grad_C + (group * s.batch + b) * s.length * s.states;
    const int64_t first_tile = group * tiles_per_group;
    const int64_t last_tile = std::min(n_tiles, first_tile + tiles_per_group);
    for (int64_t tile_index = first_tile; tile_index < last_tile; ++tile_index) {
      const int64_t d0 = tile_index * tile, width = std::min(tile, s.channels - d0);
      for (int64_t n = 0; n < s.states; ++n) {
        for (int64_t w = 0; w < width; ++w) {
          const int64_t at = (d0 + w) * s.states + n;
          a_tile[n * tile + w] = g.A[at];
          lambda[n * tile + w] = g.grad_last[b * s.channels * s.states + at];
          grad_a[n * tile + w] = T(0);
        }
      }
      for (int64_t w = 0; w < width; ++w) grad_d[w] = T(0);
      for (int64_t chunk = s.n_chunks - 1; chunk >= 0; --chunk) {
        const int64_t t0 = chunk * s.chunk, steps = std::min(s.chunk, s.length - t0);
        const T* stored = g.chunk_states + ((b * s.n_chunks + chunk) * s.channels + d0) * s.states;
        for (int64_t n = 0; n < s.states; ++n)
          for (int64_t w = 0; w < width; ++w) states[n * tile + w] = stored[w * s.states + n];
        // Rebuild the chunk: states[k + 1] = h after step t0 + k, exps[k] its decay factor.
        for (int64_t k = 0; k < steps; ++k) {
          const int64_t row = b * s.length + t0 + k;
          const T* u_t = g.u + row * s.channels + d0;
          const T* delta_t = g.delta + row * s.channels + d0;
          for (int64_t n = 0; n < s.states; ++n) {
            const T b_n = g.B[row * s.states + n];
            const T* __restrict__ before = states + k * plane + n * tile;
            T* __restrict__ after = states + (k + 1) * plane + n * tile;
            T* __restrict__ ek = exps + k * plane + n * tile;
            const T* __restrict__ a = a_tile + n * tile;
#pragma omp simd
            for (int64_t w = 0; w < width; ++w) {
              const T e = exp_approx(delta_t[w] * a[w]);
              ek[w] = e;
              after[w] = e * before[w] + delta_t[w] * u_t[w] * b_n;
            }
          }
        }
        for (int64_t k = steps - 1; k >= 0; --k) {
          const int64_t row = b * s.length + t0 + k;
          const T* u_t = g.u + row * s.channels + d0;
          const T* delta_t = g.delta + row * s.channels + d0;
          const T* grad_y_t = g.grad_y + row * s.channels + d0;
#pragma omp simd
          for (int64_t w = 0; w < width; ++w) {
            dt[w] = delta_t[w];
            u_w[w] = u_t[w];
            du[w] = delta_t[w] * u_t[w];
            gy[w] = grad_y_t[w];
            lambda_b[w] = T(0);
            lambda_aeh[w] = T(0);
          }
          for (int64_t n = 0; n < s.states; ++n) {
            const T b_n = g.B[row * s.states + n], c_n = g.C[row * s.states + n];
            const T* __restrict__ ek = exps + k * plane + n * tile;
            const T* __restrict__ before = states + k * plane + n * tile;
            const T* __restrict__ after = states + (k + 1) * plane + n * tile;
            const T* __restrict__ a = a_tile + n * tile;
            T* __restrict__ lam = lambda + n * tile;
            T* __restrict__ ga = grad_a + n * tile;
            T sum_b = T(0), sum_c = T(0);
#pragma omp simd reduction(+ : sum_b, sum_c)
            for (int64_t w = 0; w < width; ++w) {
              const T l = lam[w] + c_n * gy[w];
              const T e = ek[w];
              const T leh = l * e * before[w];
              sum_c += gy[w] * after[w];
              sum_b += l * du[w];
              lambda_b[w] += l * b_n;
              lambda_aeh[w] += leh * a[w];
              ga[w] += leh * dt[w];
              lam[w] = l * e;
            }
            grad_B[(t0 + k) * s.states + n] += sum_b;
            grad_C[(t0 + k) * s.states + n] += sum_c;
          }
          T* grad_u_t = g.grad_u + row * s.channels + d0;
          T* grad_delta_t = g.grad_delta + row * s.channels + d0;
#pragma omp simd
          for (int64_t w = 0; w < width; ++w) {
            const T skip = g.D != nullptr ? g.D[d0 + w] * gy[w] : T(0);
            grad_u_t[w] = dt[w] * lambda_b[w] + skip;
            grad_delta_t[w] = lambda_aeh[w] + u_w[w] * lambda_b[w];
            grad_d[w] += gy[w] * u_w[w];
          }
        }
      }
      for (int64_t w = 0; w < width; ++w) {
        for (int64_t n = 0; n < s.states; ++n) {
          const int64_t at = (b * s.channels + d0 + w) * s.states + n;
          g.grad_h0[at] = lambda[n * tile + w];
          g.grad_A[at] = grad_a[n * tile + w];
        }
        if (g.grad_D != nullptr) g.grad_D[b * s.channels + d0 + w] = grad_d[w];
      }
    }
  }
}

// Groups of channel tiles per batch row in the backward, as the caller chose them (it allocates
// the partial grad_B / grad_C); a group past the last tile does nothing.
template <typename T>
void backward_all(const Sizes& s, int64_t groups, const BackwardArgs<T>& g) {
  const int64_t tile = backward_tile<T>(s);
  at::parallel_for(0, s.batch * groups, 1, [&](int64_t begin, int64_t end) {
    backward_tasks<T>(begin, end, s, tile, groups, g);
  });
}

template <typename T>
void forward_all(const Sizes& s, const T* u, const T* delta, const T* A, const T* B, const T* C,
                 const T* D, const T* h0, T* y, T* last_state, T* chunk_states) {
  const int64_t tile = std::min(kForwardTile, std::max<int64_t>(s.channels, 1));
  const int64_t n_tiles = (s.channels + tile - 1) / tile;
  at::parallel_for(0, s.batch * n_tiles, 1, [&](int64_t begin, int64_t end) {
    forward_tasks<T>(begin, end, s, tile, u, delta, A, B, C, D, h0, y, last_state, chunk_states);
  });
}

}  // namespace

// Shapes (all arrays contiguous, one dtype; D, chunk_states may be null):
//   u, delta, y: (b, l, d)   A: (d, n)   B, C: (b, l, n)   D: (d,)   h0, last_state: (b, d, n)
//   chunk_states: (b, ceil(l / chunk), d, n), the state at the start of each chunk (null: the
//   caller needs no backward).
#define FORWARD(NAME, T)                                                                        \
  extern "C" int NAME(const T* u, const T* delta, const T* A, const T* B, const T* C,         \
                      const T* D, const T* h0, T* y, T* last_state, T* chunk_states,          \
                      int64_t batch, int64_t length, int64_t channels, int64_t states,         \
                      int64_t chunk) {                                                         \
    const Sizes s{batch, length, channels, states, chunk, (length + chunk - 1) / chunk};      \
    return guarded([&] {                                                                       \
      forward_all<T>(s, u, delta, A, B, C, D, h0, y, last_state, chunk_states);               \
    });                                                                                        \
  }
FORWARD(selective_scan_forward_f32, float)
FORWARD(selective_scan_forward_f64, double)

// Gradients (written, not accumulated): grad_u, grad_delta (b, l, d); grad_A_rows (b, d, n) and
// grad_D_rows (b, d) per batch row (the caller sums them; grad_D_rows null without D); grad_B_parts,
// grad_C_parts (groups, b, l, n), zero-filled by the caller, one partial sum per group of
// channel tiles; grad_h0 (b, d, n). grad_last: the gradient of the last state (b, d, n).
#define BACKWARD(NAME, T)                                                                       \
  extern "C" int NAME(const T* u, const T* delta, const T* A, const T* B, const T* C,         \
                      const T* D, const T* chunk_states, const T* grad_y, const T* grad_last, \
                      T* grad_u, T* grad_delta, T* grad_A_rows, T* grad_B_parts,              \
                      T* grad_C_parts, T* grad_D_rows, T* grad_h0, int64_t batch,             \
                      int64_t length, int64_t channels, int64_t states, int64_t chunk,        \
                      int64_t groups) {                                                        \
    const Sizes s{batch, length, channels, states, chunk, (length + chunk - 1) / chunk};      \
    const BackwardArgs<T> g{u,           delta,        A,          B,          C,             \
                            D,           chunk_states, grad_y,     grad_last,  grad_u,        \
                            grad_delta,  grad_A_rows,  grad_B_parts, grad_C_parts,           \
                            grad_D_rows, grad_h0};                                            \
    return guarded([&] { backward_all<T>(s, groups, g); });                                    \
  }
BACKWARD(selective_scan_backward_f32, float)
BACKWARD(selective_scan_backward_f64, double)
