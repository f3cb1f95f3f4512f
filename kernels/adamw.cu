// adamw.cu: one AdamW step on fp32 master weights, PyTorch's single-tensor AdamW in the CPU
// backend's order of operations (decoupled weight decay):
//   g = grad · grad_scale;  p = p · decay (= 1 − lr·wd)
//   m = β1·m + (1−β1)·g;    v = β2·v + (1−β2)·g²
//   p = p − step_size · m / (√v / √bc2 + ε)        (step_size = lr / bc1)
// The three updates are fused multiply-adds (cf::fma_rn: one rounding, as PyTorch's CUDA kernels compute them); the
// decay and the other products are rounded on their own, as in the CPU backend.
// grad is fp32 or bf16; when weights_bf16 is not null it also receives p rounded to bf16 (the
// compute copy of the weights). Launch: any grid of 1-D blocks striding over n.
#include "common.cuh"

namespace {

template <typename G>
CF_INLINE void adamw(float* p, const G* grad, float* m, float* v, cf::bf16* weights_bf16, long long n, float decay, float beta1, float beta2,
                     float one_minus_beta1, float one_minus_beta2, float step_size, float bias_correction2_sqrt, float eps, float grad_scale) {
  for (long long i = cf::global_index(); i < n; i += cf::global_stride()) {
    float g = cf::load(grad + i) * grad_scale;
    float param = p[i] * decay;
    float mi = cf::fma_rn(one_minus_beta1, g, beta1 * m[i]);
    float vi = cf::fma_rn(one_minus_beta2 * g, g, beta2 * v[i]);
    m[i] = mi;
    v[i] = vi;
    param = cf::fma_rn(-step_size, cf::div_rn(mi, cf::div_rn(cf::sqrt_rn(vi), bias_correction2_sqrt) + eps), param);
    p[i] = param;
    if (weights_bf16 != nullptr) weights_bf16[i] = cf::to_bf16(param);
  }
}

}  // namespace

#define CF_ADAMW(G, suffix)                                                                                                      \
  extern "C" __global__ void adamw_##suffix(float* p, const G* grad, float* m, float* v, cf::bf16* weights_bf16, long long n,    \
                                            float decay, float beta1, float beta2, float one_minus_beta1, float one_minus_beta2, \
                                            float step_size, float bias_correction2_sqrt, float eps, float grad_scale) {          \
    adamw(p, grad, m, v, weights_bf16, n, decay, beta1, beta2, one_minus_beta1, one_minus_beta2, step_size, bias_correction2_sqrt, \
          eps, grad_scale);                                                                                                      \
  }                                                                                                                              \
  CF_EMULATOR_ENTRY(adamw_##suffix)

CF_ADAMW(float, f32)
CF_ADAMW(cf::bf16, bf16_grad)
