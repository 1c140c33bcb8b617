// Shared helpers of the `segrec generate` tests: temporary paths, CSV reading,
// parameters, and the comparison of a parallel run with a serial one.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scratch_dir.hpp"
#include "segrec/core/comm.hpp"
#include "segrec/ingest/generate.hpp"

namespace segrec::gen_test {

namespace fs = std::filesystem;
using Row = std::vector<std::string>;

inline constexpr const char* kEventsHeader = "user_id,item_id,category,event,timestamp,value,price";
inline constexpr const char* kItemsHeader = "item_id,category,name,price";

inline std::string tmp_path(const std::string& name) {
  const fs::path dir = testing_tmp::scratch_dir("generate");  // (every rank may race to it)
  EXPECT_TRUE(fs::is_directory(dir)) << dir;
  return (dir / name).string();
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

inline std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream in(slurp(path));
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

inline Row fields_of(const std::string& line) {
  Row out;
  std::size_t pos = 0;
  for (;;) {
    const auto comma = line.find(',', pos);
    out.push_back(line.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) return out;
    pos = comma + 1;
  }
}

// Data rows of a CSV (header checked and dropped).
inline std::vector<Row> read_csv(const std::string& path, const std::string& header) {
  const auto lines = lines_of(path);
  std::vector<Row> rows;
  EXPECT_FALSE(lines.empty()) << path;
  if (lines.empty()) return rows;
  EXPECT_EQ(lines[0], header) << path;
  for (std::size_t i = 1; i < lines.size(); ++i) rows.push_back(fields_of(lines[i]));
  return rows;
}

inline std::int64_t id_number(const std::string& id, char prefix) {
  EXPECT_GE(id.size(), 2u);
  EXPECT_EQ(id[0], prefix) << id;
  return std::stoll(id.substr(1));
}

inline GenerateParams base_params(const std::string& tag, std::int64_t users) {
  GenerateParams p;
  p.users = users;
  p.items = 600;
  p.categories = 12;
  p.segments = 6;
  p.events_per_user = 30;
  p.seed = 7;
  p.events_out = tmp_path(tag + "_events.csv");
  p.truth_out = tmp_path(tag + "_truth.csv");
  p.items_out = tmp_path(tag + "_items.csv");
  return p;
}

inline GenerateParams with_paths(GenerateParams p, const std::string& tag) {
  p.events_out = tmp_path(tag + "_events.csv");
  p.truth_out = tmp_path(tag + "_truth.csv");
  p.items_out = tmp_path(tag + "_items.csv");
  return p;
}

inline void expect_same_summary(const GenerateSummary& a, const GenerateSummary& b) {
  EXPECT_EQ(a.users, b.users);
  EXPECT_EQ(a.items, b.items);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.duplicates, b.duplicates);
  EXPECT_EQ(a.missing_values, b.missing_values);
  EXPECT_EQ(a.broken, b.broken);
  EXPECT_EQ(a.bytes, b.bytes);
}

// Runs `p` on the world, then the same parameters serially on rank 0 only, and
// checks that the three files are byte-identical.
inline void check_matches_serial(const GenerateParams& p, const std::string& tag) {
  const Comm world = Comm::world();
  const GenerateSummary par = generate(p, world);
  int same = 1;
  if (world.is_root()) {
    const GenerateParams q = with_paths(p, tag + "_serial");
    const Comm serial;
    const GenerateSummary ser = generate(q, serial);
    expect_same_summary(par, ser);
    for (auto [a, b] : {std::pair{p.events_out, q.events_out}, std::pair{p.truth_out, q.truth_out},
                        std::pair{p.items_out, q.items_out}}) {
      const std::string x = slurp(a), y = slurp(b);
      EXPECT_FALSE(x.empty()) << a;
      EXPECT_EQ(x.size(), y.size()) << a;
      if (x != y) same = 0;
    }
  }
  EXPECT_EQ(world.allreduce_value(same, Op::kMin), 1) << tag << " differs from the serial run";
}

}  // namespace segrec::gen_test
