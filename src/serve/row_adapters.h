// Per-row adapters: the hooks that let one forward pass serve rows of
// different profiles. They sit in the model's existing adapter hooks
// (nn::LinearAdapter on every Linear, nn::SiteAdapter after each block's
// feed-forward) and do nothing until a batch puts groups on them: a group is
// a set of batch rows (an int64 index tensor) and what their profile adds at
// this place. Rows of no group get the frozen model's output.
//
//   Linear:  y[rows] = (W_g ? x[rows] W_g^T + b_g : base[rows]) + (x[rows] A_g^T) B_g^T
//   block:   h[rows] = h[rows] + up_g(act(down_g(h[rows])))
//
// Rows of one group are gathered, transformed with their group's tensors and
// scattered back (index_select / index_copy_), so a row's result does not
// depend on which other rows share its batch, up to float rounding.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "mixpeft/nn.h"

namespace mixpeft::serve {

// What a profile adds at one Linear. Any part may be undefined.
struct RowLinearDelta {
  at::Tensor A, B;          // LoRA: [r, in], [out, r] with the scaling folded into B
  at::Tensor weight, bias;  // head replacement: [out, in], [out]
};

class RowLinearHook : public nn::LinearAdapter {
 public:
  struct Group {
    at::Tensor rows;
    RowLinearDelta delta;
  };
  explicit RowLinearHook(bool conv1d) : conv1d_(conv1d) {}
  bool conv1d() const { return conv1d_; }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out) override {
    if (groups.empty()) return base_out;
    at::Tensor out = base_out.clone();
    for (const auto& g : groups) {
      at::Tensor xr = x.index_select(0, g.rows);
      at::Tensor yr = g.delta.weight.defined() ? at::linear(xr, g.delta.weight, g.delta.bias)
                                               : base_out.index_select(0, g.rows);
      if (g.delta.A.defined()) yr = yr + at::matmul(at::matmul(xr, g.delta.A.t()), g.delta.B.t());
      out.index_copy_(0, g.rows, yr.to(out.scalar_type()));
    }
    return out;
  }

  std::vector<Group> groups;  // set for one forward pass by the backend

 private:
  bool conv1d_;
};

// A combined bottleneck adapter (X-PEFT's per-layer combination of the bank).
struct RowBottleneck {
  at::Tensor down_weight, down_bias, up_weight, up_bias;  // [m, d], [m], [d, m], [d]
  std::string activation;
};

class RowSiteHook : public nn::SiteAdapter {
 public:
  struct Group {
    at::Tensor rows;
    RowBottleneck adapter;
  };

  at::Tensor forward(const at::Tensor& h) override {
    if (groups.empty()) return h;
    at::Tensor out = h.clone();
    for (const auto& g : groups) {
      at::Tensor hr = h.index_select(0, g.rows);
      const auto& a = g.adapter;
      at::Tensor z = nn::activation(a.activation, at::linear(hr, a.down_weight, a.down_bias));
      out.index_copy_(0, g.rows, (hr + at::linear(z, a.up_weight, a.up_bias)).to(out.scalar_type()));
    }
    return out;
  }

  std::vector<Group> groups;  // set for one forward pass by the backend
};

}  // namespace mixpeft::serve
