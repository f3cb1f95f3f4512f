// math.cuh: exp, log, sigmoid and the Philox4x32-10 generator, written with fma and exact
// operations only, so that the emulator and the GPU compute the very same bits (there is no
// libdevice here: clang compiles with -nocudalib). exp and log are within 2 ulp of the correctly
// rounded result over the ranges training uses. Included by common.cuh.
#pragma once

namespace cf {

// e^x. Range reduction x = n·ln2 + r with ln2 split in two (Cody–Waite), |r| ≤ ln2/2, then a
// degree-7 Taylor polynomial (truncation below 2^-27 relative) and a scale by 2^n built from bits.
CF_INLINE float exp(float x) {
  if (x != x) return x;
  if (x > 88.7228394f) return __builtin_huge_valf();
  if (x < -103.972084f) return 0.0f;
  const float log2e = 1.44269504f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682e-6f;
  float n = floor_f(fma_rn(x, log2e, 0.5f));
  float r = fma_rn(n, -ln2_hi, x);
  r = fma_rn(n, -ln2_lo, r);
  float p = 1.0f / 5040.0f;
  p = fma_rn(p, r, 1.0f / 720.0f);
  p = fma_rn(p, r, 1.0f / 120.0f);
  p = fma_rn(p, r, 1.0f / 24.0f);
  p = fma_rn(p, r, 1.0f / 6.0f);
  p = fma_rn(p, r, 0.5f);
  p = fma_rn(p, r, 1.0f);
  p = fma_rn(p, r, 1.0f);
  // 2^n in two halves, each a normal float, so that results down to the subnormals come out right.
  int e = static_cast<int>(n), half = e / 2;
  float scale1 = bits_float(static_cast<unsigned>(half + 127) << 23);
  float scale2 = bits_float(static_cast<unsigned>(e - half + 127) << 23);
  return p * scale1 * scale2;
}

// ln x for x > 0 (NaN below, -inf at 0). x = m·2^k with m in [√½, √2); ln m = 2·atanh(s),
// s = (m−1)/(m+1), |s| ≤ 0.1716, by its odd series to s^13.
CF_INLINE float log(float x) {
  if (!(x > 0.0f)) return x == 0.0f ? -__builtin_huge_valf() : __builtin_nanf("");
  if (x == __builtin_huge_valf()) return x;
  unsigned bits = float_bits(x);
  int k = 0;
  if (bits < 0x00800000u) {  // subnormal: scale up by 2^23 first
    bits = float_bits(x * 8388608.0f);
    k = -23;
  }
  k += static_cast<int>(bits >> 23) - 127;
  float m = bits_float((bits & 0x007fffffu) | 0x3f800000u);  // in [1, 2)
  if (m > 1.41421356f) {
    m *= 0.5f;
    k += 1;
  }
  float s = div_rn(m - 1.0f, m + 1.0f), s2 = s * s;
  float p = 2.0f / 13.0f;
  p = fma_rn(p, s2, 2.0f / 11.0f);
  p = fma_rn(p, s2, 2.0f / 9.0f);
  p = fma_rn(p, s2, 2.0f / 7.0f);
  p = fma_rn(p, s2, 2.0f / 5.0f);
  p = fma_rn(p, s2, 2.0f / 3.0f);
  float ln_m = fma_rn(p * s2, s, 2.0f * s);
  const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682e-6f;
  return fma_rn(static_cast<float>(k), ln2_hi, fma_rn(static_cast<float>(k), ln2_lo, ln_m));
}

// σ(x) = 1 / (1 + e^−x).
CF_INLINE float sigmoid(float x) { return div_rn(1.0f, 1.0f + exp(-x)); }

// Philox4x32-10, bit for bit as src/CudaFinetune.Core/Numerics/Philox.cs: the four words for
// counter (c0..c3) under key (k0, k1).
struct Philox4 {
  unsigned w[4];
};
CF_INLINE Philox4 philox(unsigned c0, unsigned c1, unsigned c2, unsigned c3, unsigned k0, unsigned k1) {
  for (int round = 0; round < 10; ++round) {
    unsigned hi0 = mul_hi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    unsigned hi1 = mul_hi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Whether element i survives dropout, as the CPU backend decides: the top 24 bits of Philox word i (key: the seed;
// counter: i / 4 as 64 bits, hi0, hi1) reach `threshold` (round(p · 2^24)).
CF_INLINE bool dropout_keep(unsigned long long i, unsigned long long seed, unsigned hi0, unsigned hi1, unsigned threshold) {
  unsigned long long block = i >> 2;
  Philox4 r = philox((unsigned)block, (unsigned)(block >> 32), hi0, hi1, (unsigned)seed, (unsigned)(seed >> 32));
  // Selected, not indexed: r.w[i & 3] would put the four words in local memory (an array indexed at run time).
  unsigned word = (i & 3) == 0 ? r.w[0] : (i & 3) == 1 ? r.w[1] : (i & 3) == 2 ? r.w[2] : r.w[3];
  return (word >> 8) >= threshold;
}

}  // namespace cf
