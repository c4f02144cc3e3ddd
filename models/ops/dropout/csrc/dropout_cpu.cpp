// Dropout on CPU with a counter-based mask (models/ops/dropout/cpu.py builds this file on first
// use and calls it through ctypes): y_i = x_i * scale where bits_i >= threshold, else 0.
//
// bits_i is word (i mod 4) of Philox4x32-10 (Salmon et al., SC 2011; Random123's philox4x32,
// Triton's tl.philox) at counter (i / 4 low 32 bits, i / 4 high 32 bits, 0, 0) and key
// (seed low 32 bits, seed high 32 bits), i the element's index in row-major order. The mask is a
// pure function of (seed, i): the backward draws it again instead of storing it, any split of
// the work over threads gives the same mask, and reference.py computes the same bits in PyTorch.
//
// Why: torch's CPU dropout draws its mask with bernoulli_ from the Mersenne twister, one element
// at a time, ~10 ns per element on this machine: 18% of the Transformer's `mini` training step
// at one thread. Philox vectorises (32 x 32 -> 64 bit products) and splits freely over threads.
//
// Entry point: dropout_apply_<f32|f64>(x, scale, y, n, seed, threshold), contiguous arrays;
// threshold in [0, 2^32] (2^32: nothing kept). The backward is the same call on the gradient.

#include <ATen/Parallel.h>

#include "kernel_common.h"

#include <algorithm>
#include <cstdint>

namespace {

using lra_kernels::guarded;

constexpr uint32_t kMultiplier0 = 0xD2511F53u;
constexpr uint32_t kMultiplier1 = 0xCD9E8D57u;
constexpr uint32_t kKeyBump0 = 0x9E3779B9u;  // the golden ratio
constexpr uint32_t kKeyBump1 = 0xBB67AE85u;  // sqrt(3) - 1
constexpr int kRounds = 10;

// Philox blocks per tile: 4 x 64 = 256 elements, whose bits sit in a 1 KiB buffer on the stack
// between the two loops (the first draws them, the second applies them).
constexpr int64_t kBlocks = 64;
constexpr int64_t kTile = 4 * kBlocks;

// Philox4x32-10 at key (k0, k1): the counter (c0, c1, c2, c3) becomes the four output words in
// place (references, not an output array: the vectoriser keeps scalars in registers, but would
// need a scatter for an array).
inline void philox(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0,
                   uint32_t k1) {
  for (int round = 0; round < kRounds; ++round) {
    const uint64_t product0 = uint64_t(kMultiplier0) * c0;
    const uint64_t product1 = uint64_t(kMultiplier1) * c2;
    const uint32_t next0 = uint32_t(product1 >> 32) ^ c1 ^ k0;
    const uint32_t next2 = uint32_t(product0 >> 32) ^ c3 ^ k1;
    c1 = uint32_t(product1);
    c3 = uint32_t(product0);
    c0 = next0;
    c2 = next2;
    k0 += kKeyBump0;
    k1 += kKeyBump1;
  }
}

template <typename T>
void apply_tiles(const T* __restrict__ x, T scale, T* __restrict__ y, int64_t n, uint64_t seed,
                 uint64_t threshold, int64_t first_tile, int64_t end_tile) {
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  // 32-bit compares vectorise best. threshold = 2^32 (p = 1) comes with scale 0, so any bar
  // gives x * 0 there, as the reference does.
  const uint32_t bar = threshold > 0xFFFFFFFFu ? 0xFFFFFFFFu : uint32_t(threshold);
  // Word w of block j in words[w][j]: contiguous stores, so the Philox loop vectorises over j
  // (four interleaved stores would not).
  alignas(64) uint32_t words[4][kBlocks];
  for (int64_t tile = first_tile; tile < end_tile; ++tile) {
    const int64_t start = tile * kTile;
    const int64_t count = std::min(kTile, n - start);
    const uint64_t first_block = uint64_t(start) / 4;
#pragma omp simd
    for (int64_t j = 0; j < kBlocks; ++j) {
      const uint64_t block = first_block + uint64_t(j);
      uint32_t c0 = uint32_t(block), c1 = uint32_t(block >> 32), c2 = 0, c3 = 0;
      philox(c0, c1, c2, c3, k0, k1);
      words[0][j] = c0;
      words[1][j] = c1;
      words[2][j] = c2;
      words[3][j] = c3;
    }
    const T* __restrict__ in = x + start;
    T* __restrict__ result = y + start;
    if (count == kTile) {
      // Element 4 j + w takes word w of block j: groups of four interleaved loads and stores,
      // which the vectoriser handles with permutes. x * 0 rather than a select of 0: NaN and
      // infinity stay NaN where dropped, as in the reference (and in torch's dropout).
#pragma omp simd
      for (int64_t j = 0; j < kBlocks; ++j) {
        result[4 * j + 0] = in[4 * j + 0] * (words[0][j] >= bar ? scale : T(0));
        result[4 * j + 1] = in[4 * j + 1] * (words[1][j] >= bar ? scale : T(0));
        result[4 * j + 2] = in[4 * j + 2] * (words[2][j] >= bar ? scale : T(0));
        result[4 * j + 3] = in[4 * j + 3] * (words[3][j] >= bar ? scale : T(0));
      }
    } else {
      for (int64_t i = 0; i < count; ++i)
        result[i] = in[i] * (words[i % 4][i / 4] >= bar ? scale : T(0));
    }
  }
}

}  // namespace

#define DROPOUT_ENTRY(NAME, T)                                                                 \
  extern "C" int NAME(const T* x, const T* scale, T* y, int64_t n, int64_t seed,               \
                      int64_t threshold) {                                                     \
    const int64_t tiles = (n + kTile - 1) / kTile;                                             \
    return guarded([&] {                                                                       \
      /* 64 tiles (16K elements) per task: below that, waking threads costs more than it */    \
      at::parallel_for(0, tiles, 64, [&](int64_t begin, int64_t end) {                        \
        apply_tiles<T>(x, *scale, y, n, uint64_t(seed), uint64_t(threshold), begin, end);      \
      });                                                                                      \
    });                                                                                        \
  }

DROPOUT_ENTRY(dropout_apply_f32, float)
DROPOUT_ENTRY(dropout_apply_f64, double)

// Philox4x32-10 of `count` counters (count, 4) under keys (count, 2): out (count, 4). For the
// known-answer test of the generator itself against Random123's published vectors
// (tests/ops/test_dropout.py).
extern "C" int philox4x32_10(const uint32_t* counters, const uint32_t* keys, uint32_t* out,
                             int64_t count) {
  return guarded([&] {
    for (int64_t j = 0; j < count; ++j) {
      uint32_t* words = out + 4 * j;
      for (int w = 0; w < 4; ++w) words[w] = counters[4 * j + w];
      philox(words[0], words[1], words[2], words[3], keys[2 * j], keys[2 * j + 1]);
    }
  });
}
