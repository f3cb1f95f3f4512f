// rope.cu: rotary position embedding in place, Hugging Face's rotate-half layout, as the CPU
// backend: for i < d/2 the pair (x[i], x[i + d/2]) of every head is rotated by the angle of
// frequency i at the token's position (token n sits at n mod seq_len):
//   x[i] ← x[i]·cos − x[i+d/2]·sin,   x[i+d/2] ← x[i+d/2]·cos + x[i]·sin
// `inverse` rotates by −angle (the transpose, which is the backward). x is [tokens, heads·d] in
// fp32 or bf16; cos and sin are fp32 [seq_len, d/2] (llama3 frequency scaling is in the tables).
// Launch: any grid of 1-D blocks; each thread strides over the tokens·heads·d/2 pairs.
#include "common.cuh"

namespace {

template <typename T>
CF_INLINE void rope(T* x, const float* cos, const float* sin, int tokens, int heads, int head_dim, int seq_len, int inverse) {
  int half = head_dim / 2;
  long long pairs = (long long)tokens * heads * half;
  for (long long p = cf::global_index(); p < pairs; p += cf::global_stride()) {
    int i = (int)(p % half);
    long long token_head = p / half;
    int token = (int)(token_head / heads);
    int position = token % seq_len;
    T* v = x + token_head * head_dim;
    float c = cos[(long long)position * half + i], s = sin[(long long)position * half + i];
    if (inverse) s = -s;
    float x1 = cf::load(v + i), x2 = cf::load(v + i + half);
    cf::store(v + i, x1 * c - x2 * s);
    cf::store(v + i + half, x2 * c + x1 * s);
  }
}

}  // namespace

extern "C" __global__ void rope_f32(float* x, const float* cos, const float* sin, int tokens, int heads, int head_dim, int seq_len, int inverse) {
  rope(x, cos, sin, tokens, heads, head_dim, seq_len, inverse);
}
CF_EMULATOR_ENTRY(rope_f32)
extern "C" __global__ void rope_bf16(cf::bf16* x, const float* cos, const float* sin, int tokens, int heads, int head_dim, int seq_len, int inverse) {
  rope(x, cos, sin, tokens, heads, head_dim, seq_len, inverse);
}
CF_EMULATOR_ENTRY(rope_bf16)
