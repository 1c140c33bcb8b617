#include "segrec/personalisation/train/optimiser.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace segrec {

OptimiserParams OptimiserParams::from(const TrainParams& p, const TrainModes& modes) {
  return {.kind = modes.optimizer,
          .momentum = p.momentum,
          .beta1 = p.beta1,
          .beta2 = p.beta2,
          .adam_eps = p.adam_eps,
          .weight_decay = p.weight_decay,
          .clip = p.clip,
          .lr = p.lr,
          .schedule = modes.lr_schedule,
          .warmup_steps = p.warmup_steps,
          .step_epochs = p.lr_step_epochs,
          .gamma = p.lr_gamma};
}

// g * scale (the batch mean, clipped to the global norm, from global_sumsq = sum of g^2 over
// all parameters when g is a shard); t is the 1-based step (Adam's bias correction); decayed:
// the [a, b) ranges weight decay applies to, relative to w. Plain loops with exact IEEE
// operations only (this file is built with -fno-math-errno so that the square root vectorises):
// every element gets the same result whatever the alignment of the arrays, so ranks never drift
// apart.
void optimiser_update(const OptimiserParams& p, float* __restrict g, float* __restrict w,
                      float* __restrict m, float* __restrict v, std::int64_t n,
                      const std::vector<std::pair<std::int64_t, std::int64_t>>& decayed, double t,
                      double scale, double lr, const double* global_sumsq) {
  if (p.clip > 0) {
    double ss = 0;
    if (global_sumsq != nullptr)
      ss = *global_sumsq;
    else
      for (std::int64_t k = 0; k < n; ++k) ss += static_cast<double>(g[k]) * g[k];
    const double norm = scale * std::sqrt(ss);
    if (norm > p.clip) scale *= p.clip / norm;
  }
  if (p.kind == TrainModes::Optimizer::kAdam) {
    if (p.weight_decay > 0) {  // decoupled (AdamW)
      const auto f = static_cast<float>(1.0 - lr * p.weight_decay);
      for (const auto& [a, b] : decayed)
        for (std::int64_t k = a; k < b; ++k) w[k] *= f;
    }
    // w -= lr * (m / bc1) / (sqrt(v / bc2) + eps), with bc = 1 - beta^t.
    const auto b1 = static_cast<float>(p.beta1), b2 = static_cast<float>(p.beta2);
    const auto c1 = static_cast<float>((1.0 - p.beta1) * scale);
    const auto c2 = static_cast<float>((1.0 - p.beta2) * scale * scale);
    const auto step = static_cast<float>(lr / (1.0 - std::pow(p.beta1, t)));
    const auto inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(p.beta2, t)));
    const auto eps = static_cast<float>(p.adam_eps);
    for (std::int64_t k = 0; k < n; ++k) {
      const float gk = g[k];
      const float mk = b1 * m[k] + c1 * gk;
      const float vk = b2 * v[k] + c2 * (gk * gk);
      m[k] = mk;
      v[k] = vk;
      w[k] -= step * mk / (std::sqrt(vk) * inv_sqrt_bc2 + eps);
    }
  } else {
    const auto sc = static_cast<float>(scale);
    if (p.weight_decay > 0) {  // L2: g += wd * w, in units of the scaled gradient
      const auto f = static_cast<float>(p.weight_decay / scale);
      for (const auto& [a, b] : decayed)
        for (std::int64_t k = a; k < b; ++k) g[k] += f * w[k];
    }
    const auto mu = static_cast<float>(p.momentum);
    const auto lrf = static_cast<float>(lr);
    for (std::int64_t k = 0; k < n; ++k) {
      const float mk = mu * m[k] + sc * g[k];
      m[k] = mk;
      w[k] -= lrf * mk;
    }
  }
}

double learning_rate(const OptimiserParams& p, std::int64_t step, std::int64_t epoch,
                     std::int64_t total_steps) {
  if (step < p.warmup_steps)
    return p.lr * static_cast<double>(step + 1) / static_cast<double>(p.warmup_steps);
  if (p.schedule == TrainModes::LrSchedule::kCosine) {
    const double total = static_cast<double>(total_steps - p.warmup_steps);
    const double t = static_cast<double>(step - p.warmup_steps) / std::max(1.0, total);
    return p.lr * 0.5 * (1.0 + std::cos(std::numbers::pi * std::min(1.0, t)));
  }
  if (p.schedule == TrainModes::LrSchedule::kStep)
    return p.lr * std::pow(p.gamma, static_cast<double>(epoch / p.step_epochs));
  return p.lr;
}

}  // namespace segrec
