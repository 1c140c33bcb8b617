// `segrec generate --sequential`: the planted item-to-item transitions. Private to
// src/ingest/.
#pragma once

#include <cstdint>
#include <vector>

#include "generate_model.hpp"

namespace segrec::gen {

/// Replicated, derived from the seed alone: per segment s a cycle next_s over the
/// categories (a seed-chosen order; next_s(c) = c only with one category) and, per
/// (segment, category), an offset into the next category's popularity order. The
/// successor of item i (category c, place k in c's popularity order) for a user of
/// segment s is the item at place (k + offset_s(c)) mod n_{c'} of category c' = next_s(c):
/// never i itself when the catalogue has two items or more.
class Sequence {
 public:
  Sequence(const GenerateParams& p, const Model& m);
  std::int32_t successor(std::size_t segment, std::int32_t item) const;

 private:
  const Model& m_;
  std::vector<std::vector<std::int32_t>> next_;   // [segment][category]: next category
  std::vector<std::vector<std::int64_t>> shift_;  // [segment][category]: place offset
  std::vector<std::int64_t> place_;               // per item: place in its category's order
};

}  // namespace segrec::gen
