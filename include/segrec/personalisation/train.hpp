// `segrec train`: the personalisation model, trained data-parallel.
//
// Every rank holds an even block of users and trains on its own. Each epoch
// draws a seeded permutation of the global training-user indices, cut into
// global batches of at most --batch-size users; the permutation is stratified
// (every batch takes one user from each run of consecutive global indices), so
// that each rank holds an even share of every batch. A rank computes the
// gradient of its members of the batch, one allreduce sums the flat gradient
// buffer, and every rank takes the identical optimiser step. Batches, dropout masks and the
// validation split are keyed by the seed and GLOBAL user indices, so the
// result does not depend on the rank count (up to float rounding).
//
//
// The parts: train/params.hpp (options and modes), train/data.hpp (the data),
// train/batches.hpp, train/optimiser.hpp, train/validation.hpp,
// train/grad_sync.hpp (how the ranks combine gradients) and train/trainer.hpp
// (train()); the trained model is model.hpp.
#pragma once

#include "segrec/personalisation/model.hpp"
#include "segrec/personalisation/train/batches.hpp"
#include "segrec/personalisation/train/data.hpp"
#include "segrec/personalisation/train/params.hpp"
#include "segrec/personalisation/train/trainer.hpp"
#include "segrec/personalisation/train/validation.hpp"
