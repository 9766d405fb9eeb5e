#include "core/model/cpu_kernels.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace r2rec {

namespace {

void check(const torch::Tensor& a, const torch::Tensor& b, int64_t inner_a, int64_t inner_b, const char* name) {
  if (!cpu_kernel_applies(a, b) || a.dim() != 3 || b.dim() != 3 || a.size(0) != b.size(0) ||
      a.size(inner_a) != b.size(inner_b)) {
    throw std::invalid_argument(std::string(name) + ": operands " + std::to_string(a.dim()) + "-d and " +
                                std::to_string(b.dim()) +
                                "-d do not fit (need [N, M, K] and a matching [N, ., .], CPU float32, last dimension "
                                "contiguous)");
  }
}

}  // namespace

bool cpu_kernel_applies(const torch::Tensor& a, const torch::Tensor& b) {
  const bool grad = torch::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad());
  return !grad && a.device().is_cpu() && b.device().is_cpu() && a.scalar_type() == torch::kFloat &&
         b.scalar_type() == torch::kFloat && a.dim() >= 1 && b.dim() >= 1 && a.stride(-1) == 1 && b.stride(-1) == 1;
}

// The loops below are compiled twice on x86-64: for AVX2 with FMA and for the baseline, chosen when the
// program loads (GCC's target_clones; one baseline build elsewhere).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define R2REC_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define R2REC_SIMD_CLONES
#endif

namespace {

// c[s] = x . y_s for S rows y_s = y + s * ys of length K; four rows at a time, so four independent sums.
R2REC_SIMD_CLONES void dots(const float* x, const float* y, int64_t ys, int64_t S, int64_t K, float* c) {
  int64_t s = 0;
  for (; s + 4 <= S; s += 4) {
    const float *y0 = y + s * ys, *y1 = y0 + ys, *y2 = y1 + ys, *y3 = y2 + ys;
    float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
    for (int64_t k = 0; k < K; ++k) {
      a0 += x[k] * y0[k];
      a1 += x[k] * y1[k];
      a2 += x[k] * y2[k];
      a3 += x[k] * y3[k];
    }
    c[s] = a0, c[s + 1] = a1, c[s + 2] = a2, c[s + 3] = a3;
  }
  for (; s < S; ++s) {
    const float* y0 = y + s * ys;
    float a0 = 0.f;
#pragma omp simd reduction(+ : a0)
    for (int64_t k = 0; k < K; ++k) a0 += x[k] * y0[k];
    c[s] = a0;
  }
}

// c[0, K) = sum_s p[s] * y_s: a block of 32 outputs stays in registers over all s.
R2REC_SIMD_CLONES void combine(const float* p, const float* y, int64_t ys, int64_t S, int64_t K, float* c) {
  constexpr int64_t kBlock = 32;
  int64_t k0 = 0;
  for (; k0 + kBlock <= K; k0 += kBlock) {
    float acc[kBlock] = {};
    for (int64_t s = 0; s < S; ++s) {
      const float w = p[s];
      const float* row = y + s * ys + k0;
#pragma omp simd
      for (int64_t k = 0; k < kBlock; ++k) acc[k] += w * row[k];
    }
    for (int64_t k = 0; k < kBlock; ++k) c[k0 + k] = acc[k];
  }
  if (k0 < K) {
    for (int64_t k = k0; k < K; ++k) c[k] = 0.f;
    for (int64_t s = 0; s < S; ++s) {
      const float w = p[s];
      const float* row = y + s * ys;
      for (int64_t k = k0; k < K; ++k) c[k] += w * row[k];
    }
  }
}

// The largest of x[0, n) above `floor` (`floor` if none), NaN never counting (a comparison with NaN is false).
R2REC_SIMD_CLONES float chunk_max(const float* x, int64_t n, float floor) {
  float m = floor;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// y = w * x * inv for one row of length d.
R2REC_SIMD_CLONES void scale_row(const float* x, const float* w, float inv, int64_t d, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) y[i] = w[i] * (x[i] * inv);
}

R2REC_SIMD_CLONES float sum_squares(const float* x, int64_t d) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < d; ++i) acc += x[i] * x[i];
  return acc;
}

// One head: y[i] = x[i] c[i] - x[i+h] s[i], y[i+h] = x[i+h] c[i+h] + x[i] s[i+h] for i < h = dh/2.
R2REC_SIMD_CLONES void rotate_head(const float* x, const float* c, const float* s, int64_t half, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    y[i] = x[i] * c[i] - x[i + half] * s[i];
    y[i + half] = x[i + half] * c[i + half] + x[i] * s[i + half];
  }
}

inline float exp_np(float x) {
  const bool under = x < -87.33654f;
  x = under ? -87.33654f : x;
  // x / ln 2 rounded to the nearest integer n by adding 1.5 * 2^23 (float's spacing is 1 there): n sits in
  // the low bits of `shifted`, which also builds 2^n.
  const float shifted = x * 1.44269504088896341f + 12582912.f;
  const float n = shifted - 12582912.f;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // ln 2 in two parts: exact first product
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.f;
  // 2^n, n <= 0: the biased exponent n + 127 shifted into place, in unsigned arithmetic (where n < -127 the value is
  // not used, and a signed shift would overflow: UBSan found it).
  const uint32_t bits = static_cast<uint32_t>(__builtin_bit_cast(int32_t, shifted) - 0x4B400000 + 127) << 23;
  return under ? 0.f : p * __builtin_bit_cast(float, bits);
}

// The largest of a[0, n) + m[0, n) above `floor` (NaN never counting, as in chunk_max).
R2REC_SIMD_CLONES float masked_max(const float* a, const float* m, int64_t n, float floor) {
  float top = floor;
#pragma omp simd reduction(max : top)
  for (int64_t i = 0; i < n; ++i) top = a[i] + m[i] > top ? a[i] + m[i] : top;
  return top;
}

// a[i] = exp(a[i] + m[i] - top) (m may be null); returns their sum.
R2REC_SIMD_CLONES float exp_shift(float* a, const float* m, int64_t n, float top) {
  float sum = 0.f;
  if (m != nullptr) {
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) {
      a[i] = exp_np(a[i] + m[i] - top);
      sum += a[i];
    }
  } else {
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) {
      a[i] = exp_np(a[i] - top);
      sum += a[i];
    }
  }
  return sum;
}

// sum_i exp(a[i] - top), a untouched.
R2REC_SIMD_CLONES float sum_exp_shift(const float* a, int64_t n, float top) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += exp_np(a[i] - top);
  return sum;
}

R2REC_SIMD_CLONES void scale_in_place(float* a, int64_t n, float by) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) a[i] *= by;
}

}  // namespace

float exp_nonpositive(float x) { return exp_np(x); }

R2REC_SIMD_CLONES void sampling_weights(const float* logits, int64_t n, float top, float inv_t, float* w) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float d = logits[i] - top;            // <= 0, or NaN
    const float x = d < 0.f ? d * inv_t : 0.f;  // the maximum stays at 0 even when inv_t is +inf
    w[i] = d == d ? exp_np(x) : 0.f;            // NaN logits weigh nothing
  }
}

void softmax_two_part_(torch::Tensor& shared, const torch::Tensor& mask, int64_t rows_per_mask, torch::Tensor& own) {
  const bool fits = shared.dim() == 2 && own.dim() == 2 && mask.dim() == 2 && shared.is_contiguous() &&
                    own.is_contiguous() && mask.is_contiguous() && cpu_kernel_applies(shared, own) &&
                    cpu_kernel_applies(mask, mask) && shared.size(0) == own.size(0) && rows_per_mask > 0 &&
                    mask.size(0) * rows_per_mask == shared.size(0) && mask.size(1) == shared.size(1);
  if (!fits) {
    throw std::invalid_argument(
        "softmax_two_part_: needs contiguous CPU float32 shared [R, Pp], own [R, S], mask [R / rows_per_mask, Pp]");
  }
  const int64_t R = shared.size(0), Pp = shared.size(1), S = own.size(1);
  float* A = shared.data_ptr<float>();
  float* Bo = own.data_ptr<float>();
  const float* Mk = mask.data_ptr<float>();
  at::parallel_for(0, R, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      float* a = A + r * Pp;
      float* b = Bo + r * S;
      const float* m = Mk + (r / rows_per_mask) * Pp;
      const float top = chunk_max(b, S, masked_max(a, m, Pp, -std::numeric_limits<float>::infinity()));
      const float sum = exp_shift(a, m, Pp, top) + exp_shift(b, nullptr, S, top);
      scale_in_place(a, Pp, 1.f / sum);
      scale_in_place(b, S, 1.f / sum);
    }
  });
}

torch::Tensor row_logsumexp(const torch::Tensor& logits) {
  if (logits.dim() != 2 || !logits.is_contiguous() || !cpu_kernel_applies(logits, logits))
    throw std::invalid_argument("row_logsumexp: needs contiguous CPU float32 logits [R, V]");
  const int64_t R = logits.size(0), V = logits.size(1);
  torch::Tensor out = torch::empty({R}, logits.options());
  const float* X = logits.data_ptr<float>();
  float* Y = out.data_ptr<float>();
  at::parallel_for(0, R, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* x = X + r * V;
      const float top = chunk_max(x, V, -std::numeric_limits<float>::infinity());
      // Every entry -inf (or none): the log of an empty sum, as torch.logsumexp gives; +inf stays +inf.
      Y[r] = std::isfinite(top) ? top + std::log(sum_exp_shift(x, V, top)) : top;
    }
  });
  return out;
}

torch::Tensor rms_norm_rows(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  const int64_t d = x.size(-1);
  if (!cpu_kernel_applies(x, weight) || !x.is_contiguous() || !weight.is_contiguous() || weight.dim() != 1 ||
      weight.size(0) != d) {
    throw std::invalid_argument("rms_norm_rows: needs contiguous CPU float32 x [..., d] and weight [d]");
  }
  torch::Tensor y = torch::empty_like(x);
  const int64_t rows = d > 0 ? x.numel() / d : 0;
  const float* X = x.data_ptr<float>();
  const float* W = weight.data_ptr<float>();
  float* Y = y.data_ptr<float>();
  at::parallel_for(0, rows, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float mean = sum_squares(X + r * d, d) / static_cast<float>(d);
      scale_row(X + r * d, W, 1.f / std::sqrt(mean + static_cast<float>(eps)), d, Y + r * d);
    }
  });
  return y;
}

void rotary_into(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, torch::Tensor& out) {
  const bool fits = out.dim() == 4 && x.dim() == 3 && cos.dim() == 4 && x.is_contiguous() && cos.is_contiguous() &&
                    sin.is_contiguous() && cpu_kernel_applies(x, cos) && cpu_kernel_applies(sin, out) &&
                    out.size(0) == x.size(0) && out.size(2) == x.size(1) && out.size(1) * out.size(3) == x.size(2) &&
                    out.size(3) % 2 == 0 && cos.sizes() == sin.sizes() && cos.size(0) == x.size(0) &&
                    cos.size(2) == x.size(1) && cos.size(3) == out.size(3);
  if (!fits) {
    throw std::invalid_argument(
        "rotary_into: needs x [B, T, n*dh], cos/sin [B, 1, T, dh] contiguous and out [B, n, T, dh], CPU float32");
  }
  const int64_t B = x.size(0), T = x.size(1), n = out.size(1), dh = out.size(3);
  const float* X = x.data_ptr<float>();
  const float* C = cos.data_ptr<float>();
  const float* S = sin.data_ptr<float>();
  float* Y = out.data_ptr<float>();
  const int64_t o0 = out.stride(0), o1 = out.stride(1), o2 = out.stride(2);
  at::parallel_for(0, B * T, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t bt = lo; bt < hi; ++bt) {
      const int64_t b = bt / T, t = bt % T;
      for (int64_t h = 0; h < n; ++h) {
        rotate_head(X + (bt * n + h) * dh, C + bt * dh, S + bt * dh, dh / 2, Y + b * o0 + h * o1 + t * o2);
      }
    }
  });
}

int64_t first_argmax(const float* x, int64_t n) {
  // Chunks of 256: a vectorised maximum per chunk; only a chunk that raises the best so far is scanned for its
  // first entry equal to that maximum.
  constexpr int64_t kChunk = 256;
  float best = -std::numeric_limits<float>::infinity();
  int64_t at = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t len = std::min(kChunk, n - i0);
    const float m = chunk_max(x + i0, len, best);
    if (m > best) {
      best = m;
      for (int64_t i = i0; i < i0 + len; ++i) {
        if (x[i] == m) {
          at = i;
          break;
        }
      }
    }
  }
  return at;
}

namespace {

// out [N, M, cols]: row (n, m) is row_kernel(a's row (n, m), b's matrix n, its row stride, out's row).
template <class RowKernel>
torch::Tensor batched_rows(const torch::Tensor& a, const torch::Tensor& b, int64_t cols, RowKernel row_kernel) {
  const int64_t N = a.size(0), M = a.size(1);
  torch::Tensor out = torch::empty({N, M, cols}, a.options());
  const float* A = a.data_ptr<float>();
  const float* Bm = b.data_ptr<float>();
  float* C = out.data_ptr<float>();
  const int64_t as0 = a.stride(0), as1 = a.stride(1), bs0 = b.stride(0), bs1 = b.stride(1);
  at::parallel_for(0, N, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      for (int64_t m = 0; m < M; ++m) row_kernel(A + n * as0 + m * as1, Bm + n * bs0, bs1, C + (n * M + m) * cols);
    }
  });
  return out;
}

}  // namespace

torch::Tensor small_bmm_nt(const torch::Tensor& a, const torch::Tensor& b) {
  check(a, b, 2, 2, "small_bmm_nt");
  const int64_t K = a.size(2), S = b.size(1);
  return batched_rows(a, b, S, [&](const float* x, const float* y, int64_t ys, float* c) { dots(x, y, ys, S, K, c); });
}

torch::Tensor small_bmm_nn(const torch::Tensor& a, const torch::Tensor& b) {
  check(a, b, 2, 1, "small_bmm_nn");
  const int64_t S = a.size(2), K = b.size(2);
  return batched_rows(a, b, K,
                      [&](const float* p, const float* y, int64_t ys, float* c) { combine(p, y, ys, S, K, c); });
}

}  // namespace r2rec
