// The selective scan of Mamba on CPU, forward and backward (models/ops/selective_scan/cpu.py
// builds this file on first use, calls it through ctypes and wraps it in an autograd Function).
//
//   h_t[d, n] = exp(delta_t[d] A[d, n]) h_{t-1}[d, n] + delta_t[d] B_t[n] u_t[d]
//   y_t[d]    = sum_n C_t[n] h_t[d, n] + D[d] u_t[d]
//
// Work is split into tasks of one batch row and a tile of consecutive channels, run in parallel
// with at::parallel_for (so torch.set_num_threads applies). Inside a task, channels go in
// vectors of 32 bytes (8 floats, 4 doubles; GCC's vector extensions, so the code is the same for
// both dtypes and for any x86 or ARM vector unit), and for each vector the loop over the state
// size n runs innermost with delta, u and the output's sum held in registers: the states are
// laid out (vector, n, lane). Lanes past the tile's last channel hold zeros and are never
// written out. The per-update cost is dominated by exp(delta A): A is scaled by log2(e) once
// per tile and exp2 runs as a polynomial on whole vectors (float; the float64 form, used for
// checking, calls the library's exp2 per lane).
//
// Memory: the forward keeps one state per chunk of `chunk` steps, (b, n_chunks, d, n). The
// backward walks the chunks from last to first; for each it rebuilds, from the kept state, the
// chunk's states (chunk + 1, n, tile) and decay factors exp(delta A) (chunk, n, tile) in a buffer
// of the task sized for L2 (which sets the tile), then runs the adjoint recurrence back through
// the chunk. Nothing of size (b, l, d, n) is ever stored.
//
// Measured at b 64, l 200, d 128, n 16 (a mini ListOps Mamba layer), one thread: forward 23.5 ->
// 14.3 ms, backward 43.6 -> 36.2 ms against the former loops (channels innermost, `omp simd`,
// exp by Cephes' expf in each lane).
//
// The entry points are plain C functions on contiguous arrays that the caller allocates and
// checks (cpu.py): the only torch header is ATen/Parallel.h, so the first build compiles in
// seconds where ATen's tensor and op-registration headers took ~10x longer (measured).
//
// Axis letters: b batch, l time, d channels, n state size.

#include <ATen/Parallel.h>

#include "kernel_common.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using namespace lra_kernels;  // the shared vector helpers (kernel_common.h)

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
  constexpr int64_t L = kLanes<T>;
  const int64_t N = s.states, n_tiles = (s.channels + tile - 1) / tile;
  const int64_t plane = (tile + L - 1) / L * L * N;
  std::vector<T> state_buffer(plane), a_buffer(plane);
  T* __restrict__ state = state_buffer.data();
  T* __restrict__ a2 = a_buffer.data();  // A log2(e)
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / n_tiles, d0 = (task % n_tiles) * tile;
    const int64_t width = std::min(tile, s.channels - d0), vectors = (width + L - 1) / L;
    to_lanes<T>(A + d0 * N, width, N, T(kLog2E), a2, plane);
    to_lanes<T>(h0 + (b * s.channels + d0) * N, width, N, T(1), state, plane);
    for (int64_t t = 0; t < s.length; ++t) {
      if (chunk_states != nullptr && t % s.chunk == 0)
        to_rows<T>(state, width, N,
                   chunk_states + ((b * s.n_chunks + t / s.chunk) * s.channels + d0) * N);
      const int64_t row = b * s.length + t;
      const T* u_t = u + row * s.channels + d0;
      const T* delta_t = delta + row * s.channels + d0;
      const T* B_t = B + row * N;
      const T* C_t = C + row * N;
      for (int64_t j = 0; j < vectors; ++j) {
        const Vec<T> dt = load_part(delta_t, j, width), u_j = load_part(u_t, j, width);
        const Vec<T> du = dt * u_j;
        Vec<T> out = D != nullptr ? load_part(D + d0, j, width) * u_j : splat(T(0));
        T* __restrict__ h = state + j * N * L;
        const T* __restrict__ a = a2 + j * N * L;
        for (int64_t n = 0; n < N; ++n) {
          const Vec<T> next = exp2_lanes(dt * load(a + n * L)) * load(h + n * L) + du * B_t[n];
          store(h + n * L, next);
          out += C_t[n] * next;
        }
        store_part(y + row * s.channels + d0, j, width, out);
      }
    }
    to_rows<T>(state, width, N, last_state + (b * s.channels + d0) * N);
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
// grad_B and grad_C are sums over channels: each (t, n) gathers one vector of lane partials over
// the tile's vectors and adds their sum once.
template <typename T>
void backward_tasks(int64_t begin, int64_t end, const Sizes& s, int64_t tile, int64_t groups,
                    const BackwardArgs<T>& g) {
  constexpr int64_t L = kLanes<T>;
  const int64_t N = s.states, n_tiles = (s.channels + tile - 1) / tile;
  const int64_t tiles_per_group = (n_tiles + groups - 1) / groups;
  const int64_t plane = (tile + L - 1) / L * L * N;
  std::vector<T> states_buffer((s.chunk + 1) * plane), exps_buffer(s.chunk * plane);
  std::vector<T> lambda_buffer(plane), a_buffer(plane), a2_buffer(plane), grad_a_buffer(plane);
  std::vector<T> partials(2 * N * L), grad_d_buffer(plane / N);
  T* __restrict__ states = states_buffer.data();  // (chunk + 1, plane): h before each step
  T* __restrict__ exps = exps_buffer.data();      // (chunk, plane): exp(delta A) of each step
  T* __restrict__ lambda = lambda_buffer.data();
  T* __restrict__ a_lanes = a_buffer.data();
  T* __restrict__ a2 = a2_buffer.data();  // A log2(e)
  T* __restrict__ grad_a = grad_a_buffer.data();
  T* __restrict__ grad_b_lanes = partials.data();  // (n, lane) partial sums of one step
  T* __restrict__ grad_c_lanes = grad_b_lanes + N * L;
  T* __restrict__ grad_d = grad_d_buffer.data();
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / groups, group = task % groups;
    T* grad_B = g.grad_B + (group * s.batch + b) * s.length * N;
    T* grad_C = g.grad_C + (group * s.batch + b) * s.length * N;
    const int64_t first_tile = group * tiles_per_group;
    const int64_t last_tile = std::min(n_tiles, first_tile + tiles_per_group);
    for (int64_t tile_index = first_tile; tile_index < last_tile; ++tile_index) {
      const int64_t d0 = tile_index * tile, width = std::min(tile, s.channels - d0);
      const int64_t vectors = (width + L - 1) / L;
      to_lanes<T>(g.A + d0 * N, width, N, T(1), a_lanes, plane);
      to_lanes<T>(g.A + d0 * N, width, N, T(kLog2E), a2, plane);
      to_lanes<T>(g.grad_last + (b * s.channels + d0) * N, width, N, T(1), lambda, plane);
      std::fill(grad_a, grad_a + plane, T(0));
      std::fill(grad_d, grad_d + plane / N, T(0));
      for (int64_t chunk = s.n_chunks - 1; chunk >= 0; --chunk) {
        const int64_t t0 = chunk * s.chunk, steps = std::min(s.chunk, s.length - t0);
        to_lanes<T>(g.chunk_states + ((b * s.n_chunks + chunk) * s.channels + d0) * N, width, N,
                    T(1), states, plane);
        // Rebuild the chunk: states[k + 1] = h after step t0 + k, exps[k] its decay factor.
        for (int64_t k = 0; k < steps; ++k) {
          const int64_t row = b * s.length + t0 + k;
          const T* u_t = g.u + row * s.channels + d0;
          const T* delta_t = g.delta + row * s.channels + d0;
          const T* B_t = g.B + row * N;
          for (int64_t j = 0; j < vectors; ++j) {
            const Vec<T> dt = load_part(delta_t, j, width);
            const Vec<T> du = dt * load_part(u_t, j, width);
            const T* __restrict__ a = a2 + j * N * L;
            const T* __restrict__ before = states + k * plane + j * N * L;
            T* __restrict__ after = states + (k + 1) * plane + j * N * L;
            T* __restrict__ e_k = exps + k * plane + j * N * L;
            for (int64_t n = 0; n < N; ++n) {
              const Vec<T> e = exp2_lanes(dt * load(a + n * L));
              store(e_k + n * L, e);
              store(after + n * L, e * load(before + n * L) + du * B_t[n]);
            }
          }
        }
        for (int64_t k = steps - 1; k >= 0; --k) {
          const int64_t row = b * s.length + t0 + k;
          const T* u_t = g.u + row * s.channels + d0;
          const T* delta_t = g.delta + row * s.channels + d0;
          const T* grad_y_t = g.grad_y + row * s.channels + d0;
          const T* B_t = g.B + row * N;
          const T* C_t = g.C + row * N;
          std::fill(grad_b_lanes, grad_b_lanes + 2 * N * L, T(0));
          for (int64_t j = 0; j < vectors; ++j) {
            const Vec<T> dt = load_part(delta_t, j, width), u_j = load_part(u_t, j, width);
            const Vec<T> gy = load_part(grad_y_t, j, width);
            const Vec<T> du = dt * u_j;
            Vec<T> lambda_b = splat(T(0)), lambda_aeh = splat(T(0));  // sums over n
            const T* __restrict__ a = a_lanes + j * N * L;
            const T* __restrict__ before = states + k * plane + j * N * L;
            const T* __restrict__ after = states + (k + 1) * plane + j * N * L;
            const T* __restrict__ e_k = exps + k * plane + j * N * L;
            T* __restrict__ lam = lambda + j * N * L;
            T* __restrict__ ga = grad_a + j * N * L;
            for (int64_t n = 0; n < N; ++n) {
              const Vec<T> l = load(lam + n * L) + C_t[n] * gy;
              const Vec<T> e = load(e_k + n * L);
              const Vec<T> leh = l * e * load(before + n * L);
              store(grad_c_lanes + n * L, load(grad_c_lanes + n * L) + gy * load(after + n * L));
              store(grad_b_lanes + n * L, load(grad_b_lanes + n * L) + l * du);
              lambda_b += l * B_t[n];
              lambda_aeh += leh * load(a + n * L);
              store(ga + n * L, load(ga + n * L) + leh * dt);
              store(lam + n * L, l * e);
            }
            const Vec<T> skip = g.D != nullptr ? load_part(g.D + d0, j, width) * gy : splat(T(0));
            store_part(g.grad_u + row * s.channels + d0, j, width, dt * lambda_b + skip);
            store_part(g.grad_delta + row * s.channels + d0, j, width, lambda_aeh + u_j * lambda_b);
            store(grad_d + j * L, load(grad_d + j * L) + gy * u_j);
          }
          for (int64_t n = 0; n < N; ++n) {
            T sum_b = T(0), sum_c = T(0);
            for (int64_t i = 0; i < L; ++i) {
              sum_b += grad_b_lanes[n * L + i];
              sum_c += grad_c_lanes[n * L + i];
            }
            grad_B[(t0 + k) * N + n] += sum_b;
            grad_C[(t0 + k) * N + n] += sum_c;
          }
        }
      }
      to_rows<T>(lambda, width, N, g.grad_h0 + (b * s.channels + d0) * N);
      to_rows<T>(grad_a, width, N, g.grad_A + (b * s.channels + d0) * N);
      if (g.grad_D != nullptr) std::copy(grad_d, grad_d + width, g.grad_D + b * s.channels + d0);
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
