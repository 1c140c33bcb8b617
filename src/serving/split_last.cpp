// `segrec split --temporal-last`: leave-last-out of dataset.h5's time-ordered event log,
// for next-item (sequence) evaluation.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "segrec/core/error.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/io/textio.hpp"
#include "segrec/serving/split.hpp"

namespace segrec {
namespace {

constexpr std::int64_t kRoundUsers = 65536;  // users per rank per write round

// Where an event goes (bits: foldin.csv also repeats train.csv's rows of scored users).
enum Dest : std::uint8_t { kDrop = 0, kTrain = 1, kFoldin = 2, kValid = 4, kTest = 8 };

// Unix seconds as the shortest fixed-point text that reads back exactly ("1704067200").
void append_time(std::string& out, double t) {
  char buf[400];
  const auto r = std::to_chars(buf, buf + sizeof buf, t, std::chars_format::fixed);
  out.append(buf, r.ptr);
}

void append_float(std::string& out, float v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

LeaveLastOut leave_last_out(std::span<const std::int32_t> items) {
  LeaveLastOut r;
  // (item, position) sorted: the first entry of each item's run is its first event.
  std::vector<std::pair<std::int32_t, std::int64_t>> v;
  v.reserve(items.size());
  for (std::size_t j = 0; j < items.size(); ++j)
    v.emplace_back(items[j], static_cast<std::int64_t>(j));
  std::sort(v.begin(), v.end());
  std::int64_t last = -1, before = -1;  // the two latest first events
  for (std::size_t j = 0; j < v.size(); ++j) {
    if (j > 0 && v[j].first == v[j - 1].first) continue;
    ++r.distinct;
    const std::int64_t pos = v[j].second;
    if (pos > last) {
      before = last;
      last = pos;
    } else if (pos > before) {
      before = pos;
    }
  }
  if (r.distinct >= 3) {
    r.test = last;
    r.valid = before;
  }
  return r;
}

SplitSummary run_split_temporal_last(const SplitParams& p, const Comm& comm) {
  const Dataset ds = read_dataset(p.data, comm);
  std::string err;
  if (comm.is_root()) {
    std::error_code ec;
    std::filesystem::create_directories(p.out, ec);
    if (ec) err = "cannot create the directory '" + p.out + "': " + ec.message();
  }
  comm.check_all(err, kExitIo);

  const bool price = !ds.log_price.empty(), category = ds.has_categories();
  std::string header = "user_id,item_id,event,timestamp,value";
  if (price) header += ",price";
  if (category) header += ",category";
  header += '\n';

  OrderedWriter train(p.out + "/train.csv", comm), valid(p.out + "/valid.csv", comm),
      foldin(p.out + "/foldin.csv", comm), test(p.out + "/test.csv", comm);
  OrderedWriter* const outs[] = {&train, &foldin, &valid, &test};  // by Dest bit
  std::int64_t counts[4] = {0, 0, 0, 0};
  std::int64_t scored = 0, dropped = 0;

  const std::int64_t n = ds.n_local();
  const std::int64_t rounds = comm.allreduce_value<std::int64_t>(
      std::max<std::int64_t>(1, (n + kRoundUsers - 1) / kRoundUsers), Op::kMax);
  std::string text[4], row;
  for (std::int64_t k = 0; k < rounds; ++k) {
    for (auto& t : text) t.clear();
    if (k == 0 && comm.is_root())
      for (auto& t : text) t = header;
    const std::int64_t u1 = std::min(n, (k + 1) * kRoundUsers);
    for (std::int64_t u = k * kRoundUsers; u < u1; ++u) {
      const std::int64_t b = ds.log_ptr[u], e = ds.log_ptr[u + 1];
      const LeaveLastOut cut = leave_last_out(
          std::span<const std::int32_t>(ds.log_item.data() + b, static_cast<std::size_t>(e - b)));
      scored += cut.test >= 0;
      for (std::int64_t j = 0; j < e - b; ++j) {
        std::uint8_t d = kTrain;
        if (cut.test >= 0) {
          if (j < cut.valid)
            d = kTrain | kFoldin;
          else if (j == cut.valid)
            d = kValid | kFoldin;
          else if (j < cut.test)
            d = kFoldin;
          else if (j == cut.test)
            d = kTest;
          else
            d = kDrop;
        }
        if (d == kDrop) {
          ++dropped;
          continue;
        }
        const std::int64_t q = b + j;
        const std::int32_t item = ds.log_item[q];
        row.clear();
        append_csv_field(row, ds.user_ids[u]);
        row += ',';
        append_csv_field(row, ds.item_ids[item]);
        row += ',';
        append_csv_field(row, ds.event_types[ds.log_type[q]]);
        row += ',';
        append_time(row, ds.log_time[q]);
        row += ',';
        append_float(row, ds.log_value[q]);
        if (price) {
          row += ',';
          if (!std::isnan(ds.log_price[q])) append_float(row, ds.log_price[q]);
        }
        if (category) {
          row += ',';
          const std::int32_t c = ds.item_category[item];
          if (c >= 0) append_csv_field(row, ds.categories[c]);
        }
        row += '\n';
        for (int bit = 0; bit < 4; ++bit)
          if (d & (1 << bit)) {
            text[bit] += row;
            ++counts[bit];
          }
      }
    }
    for (int bit = 0; bit < 4; ++bit) outs[bit]->append(text[bit]);
  }
  for (OrderedWriter* o : outs) o->commit();

  std::vector<std::int64_t> v = {static_cast<std::int64_t>(ds.log_item.size()),
                                 scored,
                                 counts[0],
                                 counts[1],
                                 counts[2],
                                 counts[3],
                                 dropped};
  comm.allreduce(v);
  SplitSummary s;
  s.rows = v[0];
  s.users = ds.n_users;
  s.heldout_users = v[1];
  s.train_rows = v[2];
  s.foldin_rows = v[3];
  s.valid_rows = v[4];
  s.test_rows = v[5];
  s.dropped_rows = v[6];
  return s;
}

}  // namespace segrec
