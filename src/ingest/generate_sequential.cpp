// `segrec generate --sequential`: planted item-to-item transitions within sessions.
#include "generate_sequential.hpp"

#include <numeric>
#include <utility>

namespace segrec {
namespace gen {
namespace {

// Its own stream, apart from generate_model.hpp's (one Rng per segment).
constexpr std::uint64_t kSequenceStream = 101;

}  // namespace

Sequence::Sequence(const GenerateParams& p, const Model& m) : m_(m) {
  const auto C = static_cast<std::int64_t>(m.category_items.size());
  place_.assign(m.item_category.size(), 0);
  for (const ItemList& list : m.category_items)
    for (std::size_t k = 0; k < list.items.size(); ++k)
      place_[static_cast<std::size_t>(list.items[k])] = static_cast<std::int64_t>(k);
  for (int s = 0; s < p.segments; ++s) {
    Rng r(p.seed, kSequenceStream, static_cast<std::uint64_t>(s));
    std::vector<std::int32_t> order(static_cast<std::size_t>(C));
    std::iota(order.begin(), order.end(), 0);
    for (std::int64_t j = C - 1; j > 0; --j)  // Fisher-Yates
      std::swap(order[static_cast<std::size_t>(j)],
                order[static_cast<std::size_t>(r.below(j + 1))]);
    std::vector<std::int32_t> next(static_cast<std::size_t>(C));
    for (std::int64_t j = 0; j < C; ++j)
      next[static_cast<std::size_t>(order[static_cast<std::size_t>(j)])] =
          order[static_cast<std::size_t>((j + 1) % C)];
    std::vector<std::int64_t> shift(static_cast<std::size_t>(C));
    for (std::int64_t c = 0; c < C; ++c) {
      const auto n = static_cast<std::int64_t>(
          m.category_items[static_cast<std::size_t>(next[static_cast<std::size_t>(c)])]
              .items.size());
      // Staying in the category (one category only): an offset of at least 1.
      shift[static_cast<std::size_t>(c)] =
          next[static_cast<std::size_t>(c)] == c && n > 1 ? 1 + r.below(n - 1) : r.below(n);
    }
    next_.push_back(std::move(next));
    shift_.push_back(std::move(shift));
  }
}

std::int32_t Sequence::successor(std::size_t segment, std::int32_t item) const {
  const auto c = static_cast<std::size_t>(m_.item_category[static_cast<std::size_t>(item)]);
  const auto c2 = static_cast<std::size_t>(next_[segment][c]);
  const auto& list = m_.category_items[c2].items;
  const auto n = static_cast<std::int64_t>(list.size());
  return list[static_cast<std::size_t>(
      (place_[static_cast<std::size_t>(item)] + shift_[segment][c]) % n)];
}

}  // namespace gen

std::vector<std::int32_t> planted_successors(const GenerateParams& p, int segment) {
  const gen::Model m = gen::build_model(p, p.validate());
  const gen::Sequence seq(p, m);
  std::vector<std::int32_t> out(m.item_category.size());
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = seq.successor(static_cast<std::size_t>(segment), static_cast<std::int32_t>(i));
  return out;
}

}  // namespace segrec
