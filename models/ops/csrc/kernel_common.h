// What every compiled CPU kernel of models/ops shares: vectorisable float exps (one per value,
// and whole 32-byte vectors of GCC's vector extensions with their loads, stores and layout), and
// the guard that keeps C++ exceptions from crossing the C boundary. Included by
// models/ops/<op>/csrc/*.cpp; models/ops/cpu_build.py passes this folder as an include path and
// hashes this file into every kernel's build name, so a change here rebuilds them all.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>

namespace lra_kernels {

// exp(x) in float with ~2 ulp error (Cephes' expf: x = k ln2 + r, |r| <= ln2 / 2, a degree-7
// polynomial in r, times 2^k built in the exponent bits). Written without branches or calls so
// that loops calling it vectorise; std::exp would leave them scalar. Above 88 it saturates at
// exp(88) instead of overflowing (the scan's arguments, delta A, are <= 0).
inline float exp_approx(float x) {
  const bool underflows = x < -87.3f;  // below exp(-87.3) ~ 1e-38 the answer is 0 to float
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.0f ? 88.0f : x;
  // Round to nearest by the 1.5 * 2^23 trick: plain adds, which vectorise without SSE4.1.
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - k * 0.693359375f;  // ln 2 in two parts, the first exact in float
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

// In float64 the tests compare to 1e-9: the library exp (these loops stay scalar; float64 is for
// checking, float32 is what trains).
inline double exp_approx(double x) { return std::exp(x); }

// Asks for `count` values from `p` on in cache, one request per 64-byte line: for the rows a
// backward pass walking back in time reads next, which the hardware's prefetchers did not
// bring in time (measured in the ssd backward, ssd_cpu.cpp).
template <typename T>
inline void prefetch(const T* p, int64_t count) {
  const char* bytes = reinterpret_cast<const char*>(p);
  for (int64_t offset = 0; offset < count * static_cast<int64_t>(sizeof(T)); offset += 64)
    __builtin_prefetch(bytes + offset);
}

// One vector of T: 32 bytes.
template <typename T>
struct Lanes;
template <>
struct Lanes<float> {
  typedef float Vector __attribute__((vector_size(32)));
  typedef int32_t Integers __attribute__((vector_size(32)));
  static constexpr int64_t count = 8;
};
template <>
struct Lanes<double> {
  typedef double Vector __attribute__((vector_size(32)));
  static constexpr int64_t count = 4;
};
template <typename T>
using Vec = typename Lanes<T>::Vector;
template <typename T>
constexpr int64_t kLanes = Lanes<T>::count;

template <typename T>
inline Vec<T> splat(T x) {
  return Vec<T>{} + x;
}
template <typename T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof(v));
}
// Vector j of a row of `width` values: lanes past the end read as 0.
template <typename T>
inline Vec<T> load_part(const T* row, int64_t j, int64_t width) {
  if ((j + 1) * kLanes<T> <= width) return load(row + j * kLanes<T>);
  Vec<T> v{};
  for (int64_t i = 0; j * kLanes<T> + i < width; ++i) v[i] = row[j * kLanes<T> + i];
  return v;
}
template <typename T>
inline void store_part(T* row, int64_t j, int64_t width, Vec<T> v) {
  if ((j + 1) * kLanes<T> <= width) return store(row + j * kLanes<T>, v);
  for (int64_t i = 0; j * kLanes<T> + i < width; ++i) row[j * kLanes<T> + i] = v[i];
}

// A block of `width` rows of `states` values (channels x states in the selective scan, a head's
// p x n state in the SSD) laid out (vector, n, lane): rows go in vectors, so that one vector of
// rows can run the loop over the states innermost without sums across lanes. lane_index says
// where row w, state n lives.
inline int64_t lane_index(int64_t w, int64_t n, int64_t states, int64_t lanes) {
  return ((w / lanes) * states + n) * lanes + w % lanes;
}

// Copies a (width, states) block of rows into the (vector, n, lane) layout times `scale`, zeros
// in the lanes past `width` (`plane` values in all are written); `to_rows` copies back.
template <typename T>
void to_lanes(const T* rows, int64_t width, int64_t states, T scale, T* lanes_out, int64_t plane) {
  std::fill(lanes_out, lanes_out + plane, T(0));
  for (int64_t w = 0; w < width; ++w)
    for (int64_t n = 0; n < states; ++n)
      lanes_out[lane_index(w, n, states, kLanes<T>)] = rows[w * states + n] * scale;
}
template <typename T>
void to_rows(const T* lanes_in, int64_t width, int64_t states, T* rows) {
  for (int64_t w = 0; w < width; ++w)
    for (int64_t n = 0; n < states; ++n)
      rows[w * states + n] = lanes_in[lane_index(w, n, states, kLanes<T>)];
}

constexpr double kLog2E = 1.4426950408889634;

// 2^y in float: y = k + f with k = round(y), |f| <= 1/2; 2^f by a degree-6 polynomial fitted to
// 2^f on [-1/2, 1/2] (max relative error 1e-7 evaluated in float, about Cephes' expf), 2^k put
// into the exponent bits. Below 2^-125.9 (exp(-87.3), the smallest normal float's order) the
// answer is 0; above 2^127 it saturates at 2^127 rather than overflowing.
inline Vec<float> exp2_lanes(Vec<float> y) {
  using V = Vec<float>;
  using I = Lanes<float>::Integers;
  const I underflows = y < splat(-125.9f);
  y = y < splat(-125.9f) ? splat(-125.9f) : y;
  y = y > splat(127.0f) ? splat(127.0f) : y;
  const V k = (y + splat(12582912.0f)) - splat(12582912.0f);  // 1.5 * 2^23: round to nearest
  const V f = y - k;
  V p = splat(1.5345810970757157e-4f);
  p = p * f + splat(1.3399930903688073e-3f);
  p = p * f + splat(9.618489071726799e-3f);
  p = p * f + splat(5.550328642129898e-2f);
  p = p * f + splat(2.4022646248340607e-1f);
  p = p * f + splat(6.931471824645996e-1f);
  p = p * f + splat(1.0f);
  const I exponent = (__builtin_convertvector(k, I) + 127) << 23;
  const V result = p * reinterpret_cast<const V&>(exponent);
  return underflows ? splat(0.0f) : result;
}

// float64 is for checking against the reference to 1e-10: the library's exp2, lane by lane.
inline Vec<double> exp2_lanes(Vec<double> y) {
  for (int64_t i = 0; i < kLanes<double>; ++i) y[i] = std::exp2(y[i]);
  return y;
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

}  // namespace lra_kernels
