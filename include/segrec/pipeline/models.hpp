// `segrec run --models mlp,ease`: several model kinds trained into OUT/model-KIND.h5, compared
// on their validation NDCG@K, the better one kept as OUT/model.h5; the comparison is
// OUT/models.csv (kind,ndcg_k,val_ndcg,fit_seconds,split,kept), read back by the report.
#pragma once

#include <string>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec::pipeline {

/// One trained kind of a comparison.
struct ModelRow {
  std::string kind;        ///< mlp, ease, popularity or sequence
  long long ndcg_k = 0;    ///< K of the validation NDCG@K
  double val_ndcg = -1;    ///< best validation NDCG@K (NaN: none recorded)
  double fit_seconds = 0;  ///< wall seconds of the train stage for this kind (max over ranks)
  std::string split;       ///< "users": train's validation users; "sequence": next-item split
  bool kept = false;       ///< copied to model.h5
};

/// Parses --models ("" = none): a comma list of distinct kinds. Throws UsageError
/// "invalid value 'V' for --models: ..." naming the first bad value.
std::vector<std::string> parse_models(const std::string& text);

/// The file of one kind: "model-KIND.h5".
std::string model_file(const std::string& kind);

/// Collective. Reads the validation NDCG@K of a model file into a row.
ModelRow read_model_row(const std::string& path, const std::string& kind, const Comm& comm);

/// Marks the row to keep: the highest validation NDCG among the rows on the validation users'
/// split (the sequence split ranks other users and other items, so it competes only when no
/// other kind was trained); the first listed wins a tie, and a NaN never wins.
void choose_kept(std::vector<ModelRow>& rows);

/// The CSV text of a comparison (header and one line per row).
std::string models_csv(const std::vector<ModelRow>& rows);

/// Parses models_csv() text (rows of a malformed line are left out).
std::vector<ModelRow> parse_models_csv(const std::string& text);

}  // namespace segrec::pipeline
