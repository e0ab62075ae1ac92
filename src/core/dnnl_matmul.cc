#include "core/dnnl_matmul.h"

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>

#include <ATen/ATen.h>
#include <ATen/record_function.h>

#include "core/gemm.h"
#include "mixpeft/error.h"

#ifdef MIXPEFT_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace mixpeft {

#ifdef MIXPEFT_HAVE_DNNL

namespace {

struct DnnlState {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mutex;
  std::unordered_map<std::string, dnnl::matmul> primitives;
};

DnnlState& dnnl_state() {
  static DnnlState* s = new DnnlState();  // never destroyed: may be used during static destruction
  return *s;
}

dnnl::memory::desc desc_of(const at::Tensor& t) {
  const auto type = t.scalar_type() == at::kBFloat16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
  return dnnl::memory::desc(dnnl::memory::dims(t.sizes().begin(), t.sizes().end()), type,
                            dnnl::memory::dims(t.strides().begin(), t.strides().end()));
}

void append_key(std::string& key, const at::Tensor& t) {
  key += t.scalar_type() == at::kBFloat16 ? 'b' : 'f';
  for (int64_t s : t.sizes()) key += std::to_string(s) + ',';
  key += ';';
  for (int64_t s : t.strides()) key += std::to_string(s) + ',';
  key += '|';
}

// The last two dimensions row- or column-major, as oneDNN's plain layouts need.
bool plain_matrix(const at::Tensor& t) {
  const int64_t d = t.dim();
  return t.stride(d - 1) == 1 || t.stride(d - 2) == 1 || t.size(d - 1) == 1 || t.size(d - 2) == 1;
}

}  // namespace

bool dnnl_matmul_available() {
  static const bool available = [] {
    const char* env = std::getenv("MIXPEFT_GEMM");
    if (env && std::string(env) == "aten") return false;
    try {
      at::Tensor a = at::ones({1, 2, 3}), b = at::ones({1, 3, 2}), c = at::empty({1, 2, 2});
      dnnl_matmul(a, b, c, 1.0f, 0.0f);
      return c.eq(3.0f).all().item<bool>();
    } catch (const std::exception&) {
      return false;
    }
  }();
  return available;
}

void dnnl_matmul(const at::Tensor& a_in, const at::Tensor& b_in, const at::Tensor& c, float alpha, float beta) {
  RECORD_FUNCTION("mixpeft::dnnl_matmul", std::vector<c10::IValue>{});  // visible to LibTorch's profiler
  const int64_t d = a_in.dim();
  MIXPEFT_CHECK(d >= 2 && b_in.dim() == d && c.dim() == d && a_in.size(d - 1) == b_in.size(d - 2) &&
                    c.size(d - 2) == a_in.size(d - 2) && c.size(d - 1) == b_in.size(d - 1),
                ErrorKind::kInvalidArgument, "dnnl_matmul: shapes ", a_in.sizes(), " x ", b_in.sizes(), " -> ",
                c.sizes(), " do not multiply");
  for (int64_t i = 0; i + 2 < d; ++i)
    MIXPEFT_CHECK(a_in.size(i) == c.size(i) && b_in.size(i) == c.size(i), ErrorKind::kInvalidArgument,
                  "dnnl_matmul: batch sizes differ: ", a_in.sizes(), " x ", b_in.sizes(), " -> ", c.sizes());
  MIXPEFT_CHECK(a_in.scalar_type() == b_in.scalar_type() &&
                    (a_in.scalar_type() == at::kFloat || a_in.scalar_type() == at::kBFloat16) &&
                    c.scalar_type() == at::kFloat && a_in.is_cpu() && b_in.is_cpu() && c.is_cpu(),
                ErrorKind::kInvalidArgument, "dnnl_matmul: needs CPU fp32 or bf16 operands and an fp32 output, got ",
                a_in.scalar_type(), " x ", b_in.scalar_type(), " -> ", c.scalar_type());
  MIXPEFT_CHECK(plain_matrix(c) && c.stride(d - 1) == 1, ErrorKind::kInvalidArgument,
                "dnnl_matmul: the output's rows must be contiguous");
  if (c.numel() == 0) return;
  const at::Tensor a = plain_matrix(a_in) ? a_in : a_in.contiguous();
  const at::Tensor b = plain_matrix(b_in) ? b_in : b_in.contiguous();
  std::string key = std::to_string(alpha) + '/' + std::to_string(beta) + '/';
  append_key(key, a);
  append_key(key, b);
  append_key(key, c);
  DnnlState& s = dnnl_state();
  dnnl::matmul prim;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.primitives.find(key);
    if (it == s.primitives.end()) {
      dnnl::primitive_attr attr;
      if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
      if (beta != 0.0f) {
        dnnl::post_ops ops;
        ops.append_sum(beta);
        attr.set_post_ops(ops);
      }
      const dnnl::matmul::desc md(desc_of(a), desc_of(b), desc_of(c));
      it = s.primitives.emplace(key, dnnl::matmul(dnnl::matmul::primitive_desc(md, attr, s.engine))).first;
    }
    prim = it->second;
  }
  dnnl::memory am(desc_of(a), s.engine, a.data_ptr()), bm(desc_of(b), s.engine, b.data_ptr()),
      cm(desc_of(c), s.engine, c.data_ptr());
  prim.execute(s.stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  s.stream.wait();
}

#else  // !MIXPEFT_HAVE_DNNL

bool dnnl_matmul_available() { return false; }

void dnnl_matmul(const at::Tensor&, const at::Tensor&, const at::Tensor&, float, float) {
  fail(ErrorKind::kInternal, "dnnl_matmul: mixpeft was built without oneDNN's headers (libdnnl-dev); callers "
                             "check dnnl_matmul_available() first");
}

#endif

}  // namespace mixpeft
