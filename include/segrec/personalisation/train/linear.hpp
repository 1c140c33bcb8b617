// Training the models without a network: EASE (ease.hpp) and popularity. The users
// are split into training and validation users exactly as for the MLP (seed and global
// user index); popularity counts the training users of each item; EASE sums their Gram
// matrix and solves B for each lambda of --l2, keeping the one with the best NDCG@K on
// the validation users.
#pragma once

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/train/data.hpp"
#include "segrec/personalisation/train/params.hpp"
#include "segrec/personalisation/train/trainer.hpp"

namespace segrec {

/// Collective. Trains --model-kind ease or popularity (train() dispatches here).
/// TrainResult::epochs stays empty; the model holds the lambdas tried and their NDCG.
TrainResult train_linear(const TrainParams& p, const TrainModes& modes, const TrainData& d,
                         const Comm& comm);

}  // namespace segrec
