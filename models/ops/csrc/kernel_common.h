// What every compiled CPU kernel of models/ops shares: a vectorisable float exp and the guard
// that keeps C++ exceptions from crossing the C boundary. Included by models/ops/<op>/csrc/*.cpp;
// models/ops/cpu_build.py passes this folder as an include path and hashes this file into every
// kernel's build name, so a change here rebuilds them all.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
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
