#include "segrec/pipeline/models.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>

#include "segrec/core/params.hpp"
#include "segrec/io/h5.hpp"

namespace segrec::pipeline {

std::vector<std::string> parse_models(const std::string& text) {
  static const std::set<std::string> kKinds = {"mlp", "ease", "popularity", "sequence"};
  const std::string rule = "a comma list of distinct kinds: mlp, ease, popularity, sequence";
  std::vector<std::string> kinds;
  if (text.empty()) return kinds;
  std::set<std::string> seen;
  std::string item;
  std::istringstream in(text + ",");
  while (std::getline(in, item, ',')) {
    require(kKinds.count(item) > 0, "models", item.empty() ? text : item,
            item.empty() ? rule + " (an empty entry)" : rule);
    require(seen.insert(item).second, "models", text, rule + " ('" + item + "' twice)");
    kinds.push_back(item);
  }
  return kinds;
}

std::string model_file(const std::string& kind) { return "model-" + kind + ".h5"; }

ModelRow read_model_row(const std::string& path, const std::string& kind, const Comm& comm) {
  ModelRow r;
  r.kind = kind;
  r.split = kind == "sequence" ? "sequence" : "users";
  r.val_ndcg = std::numeric_limits<double>::quiet_NaN();
  const h5::File f = h5::File::open_any(path, comm);
  if (f.exists("/validation") && f.has_attr("/validation", "best_ndcg")) {
    r.val_ndcg = f.attr_double("/validation", "best_ndcg");
    for (const char* k : {"k", "ndcg_k"})  // train's model.h5 / the sequence model
      if (f.has_attr("/validation", k)) r.ndcg_k = f.attr_int("/validation", k);
  }
  return r;
}

void choose_kept(std::vector<ModelRow>& rows) {
  bool any_users = false;
  for (const auto& r : rows) any_users = any_users || r.split == "users";
  int best = -1;
  for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
    const ModelRow& r = rows[static_cast<std::size_t>(i)];
    rows[static_cast<std::size_t>(i)].kept = false;
    if (any_users && r.split != "users") continue;
    if (best < 0 ||
        (!std::isnan(r.val_ndcg) && (std::isnan(rows[static_cast<std::size_t>(best)].val_ndcg) ||
                                     r.val_ndcg > rows[static_cast<std::size_t>(best)].val_ndcg)))
      best = i;
  }
  if (best >= 0) rows[static_cast<std::size_t>(best)].kept = true;
}

std::string models_csv(const std::vector<ModelRow>& rows) {
  std::string s = "kind,ndcg_k,val_ndcg,fit_seconds,split,kept\n";
  char buf[256];
  for (const auto& r : rows) {
    std::snprintf(buf, sizeof buf, "%s,%lld,%.17g,%.6f,%s,%d\n", r.kind.c_str(), r.ndcg_k,
                  r.val_ndcg, r.fit_seconds, r.split.c_str(), r.kept ? 1 : 0);
    s += buf;
  }
  return s;
}

std::vector<ModelRow> parse_models_csv(const std::string& text) {
  std::vector<ModelRow> rows;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream ls(line);
    for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
    if (f.size() != 6) continue;
    try {
      ModelRow r;
      r.kind = f[0];
      r.ndcg_k = std::stoll(f[1]);
      r.val_ndcg = f[2] == "nan" || f[2] == "-nan" ? std::numeric_limits<double>::quiet_NaN()
                                                   : std::stod(f[2]);
      r.fit_seconds = std::stod(f[3]);
      r.split = f[4];
      r.kept = f[5] == "1";
      rows.push_back(r);
    } catch (const std::exception&) {
    }
  }
  return rows;
}

}  // namespace segrec::pipeline
