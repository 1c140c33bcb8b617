// A 200-user data set with known segment figures, for the segment report tests.
//   segments: users 0..99 -> 0, 100..159 -> 1, 160..199 -> 2 (under the 50-user floor)
//   items:    a: users 0..109;  b: 110..129;  c: 0..2;  d: 50..59 and 160..199
//   stats:    spend = 10 (segment 0), 0 (segment 1), undefined (segment 2);
//             visits = 3 in segment 1, else 1
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "segrec/ingest/dataset.hpp"
#include "segrec/segmentation/segment_report.hpp"

namespace segrec::report_fixture {

constexpr std::int64_t kUsers = 200;

inline std::int32_t segment_of(std::int64_t u) { return u < 100 ? 0 : (u < 160 ? 1 : 2); }

inline std::vector<std::int64_t> sizes() { return {100, 60, 40}; }

inline std::vector<std::int32_t> labels(std::int64_t begin, std::int64_t end) {
  std::vector<std::int32_t> out;
  for (std::int64_t u = begin; u < end; ++u) out.push_back(segment_of(u));
  return out;
}

/// Users [begin, end) of the data set (items replicated).
inline Dataset dataset(std::int64_t begin, std::int64_t end) {
  Dataset ds;
  ds.n_users = kUsers;
  ds.user_begin = begin;
  ds.item_ids = {"a", "b", "c", "d"};
  ds.item_users = {110, 20, 3, 50};
  ds.event_types = {"view"};
  ds.event_weights = {1.0};
  ds.event_fill = {0.0};
  ds.indptr = {0};
  for (std::int64_t u = begin; u < end; ++u) {
    ds.user_ids.push_back("user" + std::to_string(u));
    auto add = [&](std::int32_t item) {
      ds.indices.push_back(item);
      ds.weights.push_back(1.0f);
      ds.counts.push_back(1);
    };
    if (u < 110) add(0);
    if (u >= 110 && u < 130) add(1);
    if (u < 3) add(2);
    if ((u >= 50 && u < 60) || u >= 160) add(3);
    ds.indptr.push_back(static_cast<std::int64_t>(ds.indices.size()));
    ds.first_time.push_back(0);
    ds.last_time.push_back(0);
  }
  // An ingest report with one entry of each kind (h5::File cannot yet write a dataset of
  // zero elements under MPI-IO, so no list is left empty).
  ds.report.bad = {{"bad field", 1}};
  ds.report.unknown_types = {{"click", 1}};
  ds.report.examples = {"in.csv:3: bad field"};
  // One logged event per user (the event log is not used by the report).
  for (std::int64_t u = begin; u <= end; ++u) ds.log_ptr.push_back(u - begin);
  for (std::int64_t u = begin; u < end; ++u) {
    ds.log_item.push_back(ds.indices.empty() ? 0 : ds.indices[ds.indptr[u - begin]]);
    ds.log_type.push_back(0);
    ds.log_time.push_back(1.7e9);
    ds.log_value.push_back(1.0f);
  }
  return ds;
}

inline LocalStats stats(std::int64_t begin, std::int64_t end) {
  LocalStats st;
  st.names = {"spend", "visits"};
  st.raw.resize(end - begin, 2);
  for (std::int64_t u = begin; u < end; ++u) {
    const auto s = segment_of(u);
    st.raw(u - begin, 0) =
        s == 0 ? 10.0f : (s == 1 ? 0.0f : std::numeric_limits<float>::quiet_NaN());
    st.raw(u - begin, 1) = s == 1 ? 3.0f : 1.0f;
  }
  return st;
}

}  // namespace segrec::report_fixture
