// Reformer's LSH-attention bias (models/ops/lsh_bias/__init__.py) in one pass on CPU: for every
// (batch row, head) the chunk of each position in each round is read off `order`, then each
// scored pair (round r, sorted chunk c, query slot w, key slot s of chunks c - 1 and c) gets
//
//   MASKED                    key missing (before chunk 0), padding, in another bucket, or
//                             (causal) after the query
//   -SELF_PENALTY - log R     the key is the query (R > 1; -SELF_PENALTY alone at R = 1)
//   -log N                    N = rounds r' in which the key shares the query's bucket and
//                             sits in its chunk or the one before (0 at N = 1)
//
// The PyTorch form builds the same from ~18 elementwise passes over the (B, H, R, N, W, 2W)
// pairs (bucket and position comparisons per round, a uint8 count, float fills); here a query's
// row is filled with MASKED and only the ~2% of pairs (ListOps `mini`) whose key shares the
// query's bucket are written again, with the count over rounds. At `mini` (64 x 4 heads, 2
// rounds, 4 chunks of 64; one thread beside two runs): the PyTorch form 136-233 ms, a first
// kernel that decided every pair by branches 62 ms, this one 17-20 ms.
//
// Axis letters: B batch, H heads, R rounds, L positions (a multiple of W), N = L / W chunks,
// W chunk width.

#include <ATen/Parallel.h>

#include "kernel_common.h"

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr float kMasked = -1e30f;     // models/ops/attention/blocked.py's MASKED
constexpr double kSelfPenalty = 1e5;  // reference.py's SELF_PENALTY

struct Sizes {
  int64_t batch, heads, rounds, length, width, n_buckets;
  bool causal;
};

// Scratch of one thread: each position's chunk per round, and the keys of one sorted chunk.
struct Scratch {
  std::vector<int64_t> chunk_of, key_pos, key_bucket;
};

// The pairs of (batch row, head) `task`: bias (R, N, W, 2W) from buckets and order (R, L).
// Each query row is first filled with MASKED (a plain store loop), then only the keys in the
// query's bucket (compared against a row of 2W key buckets) are written again.
void bias_task(const Sizes& s, const int64_t* buckets, const int64_t* order, float* bias,
               Scratch& scratch) {
  const int64_t L = s.length, W = s.width, R = s.rounds, n_chunks = L / W;
  int64_t* chunk_of = scratch.chunk_of.data();
  int64_t* key_pos = scratch.key_pos.data();
  int64_t* key_bucket = scratch.key_bucket.data();
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < L; ++i) chunk_of[r * L + order[r * L + i]] = i / W;
  // -log n for n = 0 .. R, rounded to float as the reference's fills are.
  std::vector<float> minus_log(R + 1, 0.0f);
  for (int64_t n = 2; n <= R; ++n) minus_log[n] = static_cast<float>(-std::log(double(n)));
  const float self =
      static_cast<float>(R > 1 ? -kSelfPenalty - std::log(double(R)) : -kSelfPenalty);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t* round_order = order + r * L;
    const int64_t* round_buckets = buckets + r * L;
    for (int64_t c = 0; c < n_chunks; ++c) {
      // Keys: chunk c - 1 (none before chunk 0), then chunk c; a missing or padded key gets
      // bucket -1, which no query has.
      for (int64_t slot = 0; slot < 2 * W; ++slot) {
        const int64_t key_chunk = c - 1 + slot / W;
        const int64_t k = key_chunk < 0 ? -1 : round_order[key_chunk * W + slot % W];
        const int64_t bucket = k < 0 ? -1 : round_buckets[k];
        key_pos[slot] = k;
        key_bucket[slot] = bucket < s.n_buckets ? bucket : -1;
      }
      for (int64_t w = 0; w < W; ++w) {
        const int64_t q = round_order[c * W + w];
        const int64_t q_bucket = round_buckets[q];
        float* __restrict__ out = bias + ((r * n_chunks + c) * W + w) * 2 * W;
        for (int64_t slot = 0; slot < 2 * W; ++slot) out[slot] = kMasked;
        for (int64_t slot = 0; slot < 2 * W; ++slot) {
          if (key_bucket[slot] != q_bucket) continue;
          const int64_t k = key_pos[slot];
          if (s.causal && k > q) continue;
          if (k == q) {
            out[slot] = self;
            continue;
          }
          int64_t shared = 0;
          for (int64_t other = 0; other < R; ++other) {
            const int64_t gap = chunk_of[other * L + q] - chunk_of[other * L + k];
            shared += buckets[other * L + q] == buckets[other * L + k] && (gap == 0 || gap == 1);
          }
          out[slot] = minus_log[shared];
        }
      }
    }
  }
}

}  // namespace

// bias: (B, H, R, N, W, 2W) float32, written whole.  buckets, order: (B, H, R, L) int64.
extern "C" int lsh_bias_f32(float* bias, const int64_t* buckets, const int64_t* order,
                            int64_t batch, int64_t heads, int64_t rounds, int64_t length,
                            int64_t width, int64_t n_buckets, int64_t causal) {
  if (width < 1 || length % width != 0) return 1;
  const Sizes s{batch, heads, rounds, length, width, n_buckets, causal != 0};
  return lra_kernels::guarded([&] {
    at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
      Scratch scratch{std::vector<int64_t>(s.rounds * s.length),
                      std::vector<int64_t>(2 * s.width), std::vector<int64_t>(2 * s.width)};
      const int64_t per_task = s.rounds * s.length;
      for (int64_t task = begin; task < end; ++task)
        bias_task(s, buckets + task * per_task, order + task * per_task,
                  bias + task * per_task * 2 * s.width, scratch);
    });
  });
}
