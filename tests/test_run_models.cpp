// run --models: the list's parsing (bad values with their exact message), the kept-kind rule
// and the models.csv round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "segrec/core/error.hpp"
#include "segrec/pipeline/models.hpp"

namespace segrec::pipeline {
namespace {

const std::string kRule = "a comma list of distinct kinds: mlp, ease, popularity, sequence";

TEST(RunModels, ParsesAList) {
  EXPECT_TRUE(parse_models("").empty());
  EXPECT_EQ(parse_models("mlp,ease"), (std::vector<std::string>{"mlp", "ease"}));
  EXPECT_EQ(parse_models("sequence"), (std::vector<std::string>{"sequence"}));
}

TEST(RunModels, BadValuesNameTheValue) {
  const std::vector<std::pair<std::string, std::string>> table = {
      {"mlp,knn", "invalid value 'knn' for --models: " + kRule},
      {"MLP", "invalid value 'MLP' for --models: " + kRule},
      {"mlp,,ease", "invalid value 'mlp,,ease' for --models: " + kRule + " (an empty entry)"},
      {"ease,", "invalid value 'ease,' for --models: " + kRule + " (an empty entry)"},
      {"ease,mlp,ease", "invalid value 'ease,mlp,ease' for --models: " + kRule + " ('ease' twice)"},
  };
  for (const auto& [value, message] : table) {
    try {
      parse_models(value);
      ADD_FAILURE() << value << " accepted";
    } catch (const UsageError& e) {
      EXPECT_EQ(e.what(), message) << value;
    }
  }
}

ModelRow row(const std::string& kind, double ndcg) {
  ModelRow r;
  r.kind = kind;
  r.ndcg_k = 10;
  r.val_ndcg = ndcg;
  r.split = kind == "sequence" ? "sequence" : "users";
  return r;
}

std::string kept(std::vector<ModelRow> rows) {
  choose_kept(rows);
  std::string k;
  for (const auto& r : rows)
    if (r.kept) k += (k.empty() ? "" : "+") + r.kind;
  return k;
}

TEST(RunModels, KeepsTheHighestComparableNdcg) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(kept({row("mlp", 0.3), row("ease", 0.4)}), "ease");
  EXPECT_EQ(kept({row("mlp", 0.5), row("ease", 0.4)}), "mlp");
  EXPECT_EQ(kept({row("ease", 0.4), row("mlp", 0.4)}), "ease");  // a tie: the first listed
  EXPECT_EQ(kept({row("mlp", nan), row("ease", 0.1)}), "ease");
  EXPECT_EQ(kept({row("mlp", 0.1), row("popularity", nan)}), "mlp");
  // The sequence split is another task: never compared with the others.
  EXPECT_EQ(kept({row("mlp", 0.1), row("sequence", 0.9)}), "mlp");
  EXPECT_EQ(kept({row("sequence", 0.2)}), "sequence");
}

TEST(RunModels, CsvRoundTrip) {
  std::vector<ModelRow> rows = {row("mlp", 0.25), row("ease", 0.5),
                                row("popularity", std::numeric_limits<double>::quiet_NaN())};
  rows[1].fit_seconds = 1.5;
  choose_kept(rows);
  const auto back = parse_models_csv(models_csv(rows));
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[1].kind, "ease");
  EXPECT_EQ(back[1].val_ndcg, 0.5);
  EXPECT_EQ(back[1].fit_seconds, 1.5);
  EXPECT_EQ(back[1].ndcg_k, 10);
  EXPECT_TRUE(back[1].kept && !back[0].kept && !back[2].kept);
  EXPECT_TRUE(std::isnan(back[2].val_ndcg));
}

}  // namespace
}  // namespace segrec::pipeline
