// A LayerNorm over the last axis in one CPU kernel forward and one backward: an experiment that
// measures what fused kernels would buy the PaSST-S train step and eval latency on CPU (see
// fused_layer_norm_ab.py and docs/benchmarks.md). Not part of the library: float32 only, no GPU
// kernel, sums in float32 (the build's -ffast-math lets the compiler vectorize them).
//
// FusedLayerNorm(x [..., D], gamma [D], beta [D]) -> y [..., D], mean [...], rstd [...]
// FusedLayerNormGrad(dy, x, mean, rstd, gamma) -> dx [..., D], dgamma [D], dbeta [D]

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

using namespace tensorflow;

REGISTER_OP("FusedLayerNorm")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("y: float")
    .Output("mean: float")
    .Output("rstd: float")
    .Attr("epsilon: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      shape_inference::ShapeHandle rows;
      TF_RETURN_IF_ERROR(c->Subshape(c->input(0), 0, -1, &rows));
      c->set_output(1, rows);
      c->set_output(2, rows);
      return absl::OkStatus();
    });

REGISTER_OP("FusedLayerNormGrad")
    .Input("dy: float")
    .Input("x: float")
    .Input("mean: float")
    .Input("rstd: float")
    .Input("gamma: float")
    .Output("dx: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(4));
      c->set_output(2, c->input(4));
      return absl::OkStatus();
    });

class FusedLayerNormOp : public OpKernel {
 public:
  explicit FusedLayerNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &eps_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const int64_t d = x.dim_size(x.dims() - 1);
    const int64_t n = x.NumElements() / d;
    Tensor *y, *mean, *rstd;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    TensorShape rows = x.shape();
    rows.RemoveLastDims(1);
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, rows, &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, rows, &rstd));
    const float* px = x.flat<float>().data();
    const float* pg = ctx->input(1).flat<float>().data();
    const float* pb = ctx->input(2).flat<float>().data();
    float* py = y->flat<float>().data();
    float* pm = mean->flat<float>().data();
    float* pr = rstd->flat<float>().data();
    const float eps = eps_;
    // PyTorch's arithmetic: the variance of the centred row, then (x - mean) * rstd * g + b.
    auto rows_fn = [&](int64_t start, int64_t end) {
      for (int64_t r = start; r < end; ++r) {
        const float* xr = px + r * d;
        float* yr = py + r * d;
        float sum = 0.f;
        for (int64_t i = 0; i < d; ++i) sum += xr[i];
        const float m = sum / d;
        float var = 0.f;
        for (int64_t i = 0; i < d; ++i) var += (xr[i] - m) * (xr[i] - m);
        const float inv = 1.f / std::sqrt(var / d + eps);
        for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - m) * inv * pg[i] + pb[i];
        pm[r] = m;
        pr[r] = inv;
      }
    };
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    Shard(pool->NumThreads(), pool, n, 4 * d, rows_fn);
  }

 private:
  float eps_;
};

class FusedLayerNormGradOp : public OpKernel {
 public:
  explicit FusedLayerNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(1);
    const Tensor& gamma = ctx->input(4);
    const int64_t d = x.dim_size(x.dims() - 1);
    const int64_t n = x.NumElements() / d;
    Tensor *dx, *dgamma, *dbeta;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, gamma.shape(), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, gamma.shape(), &dbeta));
    const float* pdy = ctx->input(0).flat<float>().data();
    const float* px = x.flat<float>().data();
    const float* pm = ctx->input(2).flat<float>().data();
    const float* pr = ctx->input(3).flat<float>().data();
    const float* pg = gamma.flat<float>().data();
    float* pdx = dx->flat<float>().data();
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    // One block of rows per thread, each with its own dgamma/dbeta partial sums.
    const int64_t blocks = std::max(1, pool->NumThreads());
    const int64_t per_block = (n + blocks - 1) / blocks;
    std::vector<float> partial(2 * blocks * d, 0.f);
    auto blocks_fn = [&](int64_t start, int64_t end) {
      for (int64_t block = start; block < end; ++block) {
        float* pdg = partial.data() + 2 * block * d;
        float* pdb = pdg + d;
        for (int64_t r = block * per_block; r < std::min(n, (block + 1) * per_block); ++r) {
          const float* xr = px + r * d;
          const float* dyr = pdy + r * d;
          float* dxr = pdx + r * d;
          const float m = pm[r], inv = pr[r];
          float mean_g = 0.f, mean_gx = 0.f;
          for (int64_t i = 0; i < d; ++i) {
            const float xhat = (xr[i] - m) * inv;
            const float g = dyr[i] * pg[i];
            mean_g += g;
            mean_gx += g * xhat;
            pdg[i] += dyr[i] * xhat;
            pdb[i] += dyr[i];
          }
          mean_g /= d;
          mean_gx /= d;
          for (int64_t i = 0; i < d; ++i) {
            const float xhat = (xr[i] - m) * inv;
            dxr[i] = (dyr[i] * pg[i] - mean_g - xhat * mean_gx) * inv;
          }
        }
      }
    };
    Shard(pool->NumThreads(), pool, blocks, /*cost_per_unit=*/1 << 20, blocks_fn);
    float* pdgo = dgamma->flat<float>().data();
    float* pdbo = dbeta->flat<float>().data();
    std::fill(pdgo, pdgo + d, 0.f);
    std::fill(pdbo, pdbo + d, 0.f);
    for (int64_t block = 0; block < blocks; ++block) {
      for (int64_t i = 0; i < d; ++i) {
        pdgo[i] += partial[2 * block * d + i];
        pdbo[i] += partial[2 * block * d + d + i];
      }
    }
  }
};

REGISTER_KERNEL_BUILDER(Name("FusedLayerNorm").Device(DEVICE_CPU), FusedLayerNormOp);
REGISTER_KERNEL_BUILDER(Name("FusedLayerNormGrad").Device(DEVICE_CPU), FusedLayerNormGradOp);
