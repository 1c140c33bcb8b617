// The optimiser: Adam (AdamW decay) or SGD with momentum, gradient clipping,
// and the learning-rate schedule (warmup, then constant, cosine or step).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "segrec/personalisation/train/params.hpp"

namespace segrec {

/// The optimiser's settings (from TrainParams).
struct OptimiserParams {
  TrainModes::Optimizer kind = TrainModes::Optimizer::kAdam;
  double momentum = 0.9;                               ///< SGD momentum
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;  ///< Adam constants
  double weight_decay = 0;                             ///< AdamW decay / SGD L2; not on biases
  double clip = 0;                                     ///< global L2 norm (0 = off)
  // The learning-rate schedule.
  double lr = 5e-4;  ///< peak learning rate
  TrainModes::LrSchedule schedule = TrainModes::LrSchedule::kCosine;
  std::int64_t warmup_steps = 0;  ///< linear warmup steps
  std::int64_t step_epochs = 10;  ///< step schedule: decay every this many epochs
  double gamma = 0.1;             ///< step schedule: decay factor

  static OptimiserParams from(const TrainParams& p, const TrainModes& modes);
};

/// One update of n parameters w (moments m, v; v unused by SGD) from the gradient sum g
/// (overwritten by SGD's weight decay): the gradient is g * scale, clipped to p.clip
/// (global_sumsq: the sum of g^2 over all parameters when g is a shard); t: the 1-based
/// step; decayed: the [a, b) ranges weight decay applies to, relative to w; lr: this step's
/// learning rate.
void optimiser_update(const OptimiserParams& p, float* __restrict g, float* __restrict w,
                      float* __restrict m, float* __restrict v, std::int64_t n,
                      const std::vector<std::pair<std::int64_t, std::int64_t>>& decayed, double t,
                      double scale, double lr, const double* global_sumsq = nullptr);

/// The learning rate of 0-based global step `step` in 0-based `epoch`, of total_steps steps.
double learning_rate(const OptimiserParams& p, std::int64_t step, std::int64_t epoch,
                     std::int64_t total_steps);

}  // namespace segrec
