// The trained sequence model (`segrec train --model-kind sequence`) and its model.h5.
//
// model.h5 (format "segrec-model", version 1, root attribute kind = "sequence"):
//   /items/ids                 string[n_items]
//   /event_types/names         string[n_types]   (the dataset's, in its order)
//   /sequence/params           f32[P]            flat, in seq::Layout order
//   /sequence (attributes)     dim, max_len, n_items, n_types, tied (1: the output scores
//                              with the input item embedding; absent = 0), n_gaps (time-gap
//                              buckets of the input, seq::gap_bucket; absent = 0)
//   /config (attributes)       every training option
//   /curves/train_loss, val_ndcg, val_recall, lr, seconds   f64[epochs]
//   /validation (attributes)   best_epoch, best_ndcg, ndcg_k, recall_k, n_users, n_train_users
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/sequence/gru.hpp"

namespace segrec {

struct SeqModel {
  seq::Shape shape;
  std::int64_t max_len = 0;  ///< L: events read per user
  std::vector<std::string> item_ids, event_types;
  std::vector<float> params;  ///< seq::Layout(shape).size
  std::vector<std::pair<std::string, std::string>> config;
  std::vector<double> train_loss, val_ndcg, val_recall, lr, seconds;  ///< per epoch
  std::int64_t best_epoch = -1;  ///< 1-based epoch of the kept weights (-1: the last)
  double best_ndcg = std::numeric_limits<double>::quiet_NaN();
  std::int64_t ndcg_k = 0, recall_k = 0, n_val_users = 0, n_train_users = 0;
};

/// Collective. True when `path` is a model.h5 of kind "sequence".
bool is_sequence_model(const std::string& path, const Comm& comm);

/// Collective. Writes / reads a sequence model.h5.
void write_sequence_model(const std::string& path, const SeqModel& m, const Comm& comm);
SeqModel read_sequence_model(const std::string& path, const Comm& comm);

/// The window of a user's time-ordered events that the model reads: the last
/// min(n, L) of them ([begin, end) into the log).
inline std::pair<std::int64_t, std::int64_t> last_window(std::int64_t begin, std::int64_t end,
                                                         std::int64_t L) {
  return {end - begin > L ? end - L : begin, end};
}

}  // namespace segrec
