// swiglu.cu: the SwiGLU activation of Llama's MLP, fp32 and bf16 (math in fp32), as the CPU backend:
//   out = silu(g) ⊙ u,  silu(g) = g · σ(g)
//   backward (overwrites): du = dout ⊙ silu(g),  dg = dout ⊙ u ⊙ σ(g) · (1 + g · (1 − σ(g)))
// Launch: any grid of 1-D blocks; each thread strides over the n elements, 16 bytes at a time (kVec<T> elements) where
// every array is 16-byte aligned at the same index, element by element otherwise (the same values either way).
#include "common.cuh"

namespace {

template <typename T>
CF_INLINE void forward(const T* gate, const T* up, T* out, long long n) {
  constexpr int V = cf::kVec<T>;
  auto value = [](float g, float u) { return cf::sigmoid(g) * g * u; };
  long long head = cf::aligned_prefix(out, n);
  if (!cf::aligned16(gate + head) || !cf::aligned16(up + head)) head = n;
  cf::grid_vectorised<V>(
      n, head,
      [&](long long i) {
        float g[V], u[V];
        cf::load_vec<V>(gate + i, g);
        cf::load_vec<V>(up + i, u);
        CF_UNROLL
        for (int k = 0; k < V; ++k) g[k] = value(g[k], u[k]);
        cf::store_vec<V>(out + i, g);
      },
      [&](long long i) { cf::store(out + i, value(cf::load(gate + i), cf::load(up + i))); });
}

template <typename T>
CF_INLINE void backward(const T* d_out, const T* gate, const T* up, T* d_gate, T* d_up, long long n) {
  constexpr int V = cf::kVec<T>;
  long long head = cf::aligned_prefix(d_gate, n);
  if (!cf::aligned16(d_out + head) || !cf::aligned16(gate + head) || !cf::aligned16(up + head) || !cf::aligned16(d_up + head)) head = n;
  cf::grid_vectorised<V>(
      n, head,
      [&](long long i) {
        float g[V], u[V], d[V];
        cf::load_vec<V>(gate + i, g);
        cf::load_vec<V>(up + i, u);
        cf::load_vec<V>(d_out + i, d);
        CF_UNROLL
        for (int k = 0; k < V; ++k) {
          float s = cf::sigmoid(g[k]);
          u[k] = (1.0f + g[k] * (1.0f - s)) * s * u[k] * d[k];  // d_gate
          g[k] = g[k] * s * d[k];                                // d_up
        }
        cf::store_vec<V>(d_up + i, g);
        cf::store_vec<V>(d_gate + i, u);
      },
      [&](long long i) {
        float g = cf::load(gate + i), u = cf::load(up + i), d = cf::load(d_out + i), s = cf::sigmoid(g);
        cf::store(d_up + i, g * s * d);
        cf::store(d_gate + i, (1.0f + g * (1.0f - s)) * s * u * d);
      });
}

}  // namespace

extern "C" __global__ void swiglu_forward_f32(const float* gate, const float* up, float* out, long long n) { forward(gate, up, out, n); }
CF_EMULATOR_ENTRY(swiglu_forward_f32)
extern "C" __global__ void swiglu_forward_bf16(const cf::bf16* gate, const cf::bf16* up, cf::bf16* out, long long n) { forward(gate, up, out, n); }
CF_EMULATOR_ENTRY(swiglu_forward_bf16)
extern "C" __global__ void swiglu_backward_f32(const float* d_out, const float* gate, const float* up, float* d_gate, float* d_up, long long n) {
  backward(d_out, gate, up, d_gate, d_up, n);
}
CF_EMULATOR_ENTRY(swiglu_backward_f32)
extern "C" __global__ void swiglu_backward_bf16(const cf::bf16* d_out, const cf::bf16* gate, const cf::bf16* up, cf::bf16* d_gate, cf::bf16* d_up,
                                                long long n) {
  backward(d_out, gate, up, d_gate, d_up, n);
}
CF_EMULATOR_ENTRY(swiglu_backward_bf16)
