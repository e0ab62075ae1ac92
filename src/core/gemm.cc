#include "core/gemm.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include <ATen/ATen.h>
#include <ATen/record_function.h>

#include "core/blas_info.h"
#include "mixpeft/error.h"

namespace mixpeft {

namespace {

// dnnl.h: dnnl_status_t dnnl_sgemm(char transa, char transb, dnnl_dim_t M,
// dnnl_dim_t N, dnnl_dim_t K, float alpha, const float* A, dnnl_dim_t lda,
// const float* B, dnnl_dim_t ldb, float beta, float* C, dnnl_dim_t ldc),
// row-major; dnnl_dim_t is int64_t and dnnl_status_t an enum (0 = success).
using DnnlSgemm = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t);
// dnnl_gemm_bf16bf16f32: the same, with bf16 A and B (uint16_t bit patterns)
// and an fp32 C; exported by oneDNN 2.x though not declared in dnnl.h.
using DnnlGemmBf16 = int (*)(char, char, int64_t, int64_t, int64_t, float, const uint16_t*, int64_t,
                             const uint16_t*, int64_t, float, float*, int64_t);
struct DnnlVersion {
  int major, minor, patch;
  const char* hash;
  unsigned cpu_runtime, gpu_runtime;
};
using DnnlVersionFn = const DnnlVersion* (*)();

struct Backend {
  DnnlSgemm sgemm = nullptr;
  DnnlGemmBf16 gemm_bf16 = nullptr;
  std::string name, bf16_name;
};

const Backend& backend() {
  static const Backend b = [] {
    Backend r;
    const char* env = std::getenv("MIXPEFT_GEMM");
    if (env && std::string(env) == "aten") {
      r.name = r.bf16_name = "ATen (MIXPEFT_GEMM=aten)";
      return r;
    }
    // RTLD_DEFAULT: the libraries already loaded (LibTorch brings libdnnl.so.2).
    r.sgemm = reinterpret_cast<DnnlSgemm>(dlsym(RTLD_DEFAULT, "dnnl_sgemm"));
    if (!r.sgemm) {
      r.name = r.bf16_name = "ATen (no dnnl_sgemm in the loaded libraries)";
      return r;
    }
    r.name = "oneDNN";
    r.gemm_bf16 = reinterpret_cast<DnnlGemmBf16>(dlsym(RTLD_DEFAULT, "dnnl_gemm_bf16bf16f32"));
    if (!r.gemm_bf16) {
      r.bf16_name = "ATen (no dnnl_gemm_bf16bf16f32 in the loaded libraries)";
    } else if (const CpuInfo cpu = detect_cpu(); !cpu.avx512_bf16 && !cpu.amx) {
      // oneDNN emulates bf16 products with plain AVX-512 there (slower than
      // fp32) and refuses them without AVX-512.
      r.gemm_bf16 = nullptr;
      r.bf16_name = "ATen (this CPU has no AVX-512 BF16 or AMX)";
    } else {
      // A first product tells whether this oneDNN runs it here at all.
      const uint16_t one = 0x3f80;  // 1.0 in bf16
      float c = 0.0f;
      if (r.gemm_bf16('N', 'N', 1, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, &c, 1) != 0 || c != 1.0f) {
        r.gemm_bf16 = nullptr;
        r.bf16_name = "ATen (dnnl_gemm_bf16bf16f32 refused a 1x1 product)";
      }
    }
    if (auto version = reinterpret_cast<DnnlVersionFn>(dlsym(RTLD_DEFAULT, "dnnl_version"))) {
      const DnnlVersion* v = version();
      r.name += " " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
    }
    if (r.gemm_bf16) r.bf16_name = r.name;
    return r;
  }();
  return b;
}

// The oneDNN operand of a 2-D tensor: 'N' with its row stride when rows are
// contiguous, 'T' over the transposed storage when columns are, and
// whether either holds (otherwise a copy is needed).
struct Operand {
  bool ok = false, trans = false;
  int64_t ld = 0;
};

Operand operand_of(const at::Tensor& t) {
  const int64_t rows = t.size(0), cols = t.size(1);
  if (t.stride(1) == 1 && t.stride(0) >= std::max<int64_t>(cols, 1)) return {true, false, t.stride(0)};
  if (t.stride(0) == 1 && t.stride(1) >= std::max<int64_t>(rows, 1)) return {true, true, t.stride(1)};
  // A single row or column may carry any stride for its size-1 dimension.
  if (rows == 1 && t.stride(1) == 1) return {true, false, std::max<int64_t>(cols, 1)};
  if (cols == 1 && t.stride(0) == 1) return {true, true, std::max<int64_t>(rows, 1)};
  return {};
}

}  // namespace

bool onednn_gemm_available() { return backend().sgemm != nullptr; }

const char* cpu_gemm_backend() { return backend().name.c_str(); }

bool onednn_bf16_gemm_available() { return backend().gemm_bf16 != nullptr; }

const char* cpu_bf16_gemm_backend() { return backend().bf16_name.c_str(); }

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const c10::BFloat16* A,
               int64_t lda, const c10::BFloat16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const DnnlGemmBf16 f = backend().gemm_bf16;
  MIXPEFT_CHECK(f != nullptr, ErrorKind::kInternal, "mixpeft::gemm_bf16 called without oneDNN's bf16 GEMM (",
                cpu_bf16_gemm_backend(), "): callers check onednn_bf16_gemm_available() first");
  if (M == 0 || N == 0) return;
  static_assert(sizeof(c10::BFloat16) == sizeof(uint16_t), "bf16 is 16 bits");
  const int status = f(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha,
                       reinterpret_cast<const uint16_t*>(A), lda, reinterpret_cast<const uint16_t*>(B), ldb, beta,
                       C, ldc);
  MIXPEFT_CHECK(status == 0, ErrorKind::kInternal, "dnnl_gemm_bf16bf16f32 failed with status ", status, " (M ", M,
                ", N ", N, ", K ", K, ", lda ", lda, ", ldb ", ldb, ", ldc ", ldc, ")");
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const DnnlSgemm f = backend().sgemm;
  MIXPEFT_CHECK(f != nullptr, ErrorKind::kInternal, "mixpeft::sgemm called without oneDNN (", cpu_gemm_backend(),
                "): callers check onednn_gemm_available() first");
  if (M == 0 || N == 0) return;
  const int status = f(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  MIXPEFT_CHECK(status == 0, ErrorKind::kInternal, "dnnl_sgemm failed with status ", status, " (M ", M, ", N ", N,
                ", K ", K, ", lda ", lda, ", ldb ", ldb, ", ldc ", ldc, ")");
}

bool mm_cpu_applies(const at::Tensor& a, const at::Tensor& b) {
  if (!a.device().is_cpu() || !b.device().is_cpu() || a.dim() != 2 || b.dim() != 2 || a.is_sparse() ||
      b.is_sparse() || a.is_conj() || b.is_conj() || a.scalar_type() != b.scalar_type())
    return false;
  if (a.scalar_type() == at::kFloat) return onednn_gemm_available();
  return a.scalar_type() == at::kBFloat16 && onednn_bf16_gemm_available();
}

at::Tensor mm_cpu(const at::Tensor& a_in, const at::Tensor& b_in, const at::Tensor& bias) {
  const bool applies = mm_cpu_applies(a_in, b_in) &&
                       (!bias.defined() || bias.scalar_type() == at::kFloat || bias.scalar_type() == a_in.scalar_type());
  if (!applies) {
    at::Tensor y = bias.defined() ? at::addmm(bias, a_in, b_in) : at::mm(a_in, b_in);
    return a_in.scalar_type() == at::kBFloat16 && b_in.scalar_type() == at::kBFloat16 ? y.to(at::kFloat) : y;
  }
  RECORD_FUNCTION("mixpeft::mm_cpu", std::vector<c10::IValue>{});  // visible to LibTorch's profiler
  MIXPEFT_CHECK(a_in.size(1) == b_in.size(0), ErrorKind::kInvalidArgument, "mm_cpu: shapes ", a_in.sizes(),
                " and ", b_in.sizes(), " cannot be multiplied");
  Operand oa = operand_of(a_in), ob = operand_of(b_in);
  const at::Tensor a = oa.ok ? a_in : a_in.contiguous();
  const at::Tensor b = ob.ok ? b_in : b_in.contiguous();
  if (!oa.ok) oa = operand_of(a);
  if (!ob.ok) ob = operand_of(b);
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  at::Tensor c = at::empty({M, N}, a.options().dtype(at::kFloat));
  float beta = 0.0f;
  if (bias.defined()) {
    // A copy, never a view: expand(...).contiguous() of one row is the bias
    // itself, which the product below would then overwrite.
    c.copy_(bias.expand({M, N}));
    beta = 1.0f;
  }
  if (K == 0) return bias.defined() ? c : c.zero_();
  if (a.scalar_type() == at::kBFloat16)
    gemm_bf16(oa.trans, ob.trans, M, N, K, 1.0f, a.data_ptr<c10::BFloat16>(), oa.ld, b.data_ptr<c10::BFloat16>(),
              ob.ld, beta, c.data_ptr<float>(), N);
  else
    sgemm(oa.trans, ob.trans, M, N, K, 1.0f, a.data_ptr<float>(), oa.ld, b.data_ptr<float>(), ob.ld, beta,
          c.data_ptr<float>(), N);
  return c;
}

at::Tensor gemm_layout_empty(int64_t rows, int64_t cols, const at::TensorOptions& options) {
  const auto element = static_cast<int64_t>(c10::elementSize(c10::typeMetaToScalarType(options.dtype())));
  if (rows < 2 || cols == 0 || cols * element % 4096 != 0) return at::empty({rows, cols}, options);
  return at::empty({rows, cols + 64 / element}, options).narrow(1, 0, cols);
}

}  // namespace mixpeft
