// Which recommender a model.h5 holds (`segrec train --model-kind`): the MLP, the sequence
// model (sequence/model.hpp), EASE (a closed-form item-item matrix, ease.hpp) or item
// popularity. Parsed once, in TrainParams::validate(); stored as the root attribute
// model_kind of model.h5.
#pragma once

#include <string>

#include "segrec/core/params.hpp"

namespace segrec {

enum class ModelKind { kMlp, kEase, kPopularity, kSequence };

// The spellings, in one place (parse and print use them).
#define SEGREC_MODEL_KIND_NAMES                                                        \
  {                                                                                    \
    {"mlp", ModelKind::kMlp}, {"bag", ModelKind::kMlp}, {"ease", ModelKind::kEase},    \
        {"popularity", ModelKind::kPopularity}, { "sequence", ModelKind::kSequence }   \
  }

/// "mlp" | "ease" | "popularity" | "sequence".
inline std::string to_string(ModelKind k) {
  return std::string(mode_name<ModelKind>(k, SEGREC_MODEL_KIND_NAMES));
}

/// Throws UsageError naming --model-kind and the value.
inline ModelKind parse_model_kind(const std::string& text) {
  return parse_mode<ModelKind>(text, SEGREC_MODEL_KIND_NAMES, "model-kind",
                               "use mlp (or bag), sequence, ease or popularity");
}

#undef SEGREC_MODEL_KIND_NAMES

}  // namespace segrec
