// swiglu.cu: the SwiGLU activation of Llama's MLP, fp32 and bf16 (math in fp32), as the CPU backend:
//   out = silu(g) ⊙ u,  silu(g) = g · σ(g)
//   backward (overwrites): du = dout ⊙ silu(g),  dg = dout ⊙ u ⊙ σ(g) · (1 + g · (1 − σ(g)))
// Launch: any grid of 1-D blocks; each thread strides over the n elements.
#include "common.cuh"

namespace {

template <typename T>
CF_INLINE void forward(const T* gate, const T* up, T* out, long long n) {
  for (long long i = cf::global_index(); i < n; i += cf::global_stride()) {
    float g = cf::load(gate + i);
    cf::store(out + i, cf::sigmoid(g) * g * cf::load(up + i));
  }
}

template <typename T>
CF_INLINE void backward(const T* d_out, const T* gate, const T* up, T* d_gate, T* d_up, long long n) {
  for (long long i = cf::global_index(); i < n; i += cf::global_stride()) {
    float g = cf::load(gate + i), u = cf::load(up + i), d = cf::load(d_out + i), s = cf::sigmoid(g);
    cf::store(d_up + i, g * s * d);
    cf::store(d_gate + i, (1.0f + g * (1.0f - s)) * s * u * d);
  }
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
