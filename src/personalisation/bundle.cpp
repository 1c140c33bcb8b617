// The serving bundle in model.h5: profile constants, projection, centroids,
// per-segment item counts and the item co-occurrence table.
#include "segrec/personalisation/bundle.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <numeric>

#include "segrec/core/error.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/io/companion.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/segmentation/project.hpp"

namespace segrec {
namespace {

std::vector<std::string> read_all_strings(const h5::File& f, const std::string& name) {
  return f.read_strings(name, 0, f.shape(name)[0]);
}

void write_profile_model(h5::File& f, const ProfileModel& m) {
  for (const char* g : {"/profile", "/profile/items", "/profile/dense", "/profile/event_types"})
    f.create_group(g);
  f.set_attr("/profile", "n_users", m.n_users);
  f.set_attr("/profile", "n_items", m.n_items());
  f.set_attr("/profile", "dense_weight", m.dense_weight);
  f.set_attr("/profile", "half_life_days", m.half_life_days);
  f.set_attr("/profile", "reference_time", m.reference_time);
  f.write_strings("/profile/items/ids", m.item_ids, false);
  f.write_replicated<double>("/profile/items/idf", m.idf);
  f.write_strings("/profile/dense/names", m.dense_names, false);
  f.write_replicated<double>("/profile/dense/mean", m.dense_mean);
  f.write_replicated<double>("/profile/dense/std", m.dense_std);
  f.write_replicated<std::uint8_t>("/profile/dense/log1p", m.dense_log);
  f.write_strings("/profile/event_types/names", m.event_types, false);
  f.write_replicated<double>("/profile/event_types/weights", m.event_weights);
  if (!m.categories.empty()) {
    f.create_group("/profile/categories");
    f.write_strings("/profile/categories/names", m.categories, false);
    f.write_replicated<std::int32_t>("/profile/items/category", m.item_category);
  }
  if (!m.item_price_position.empty())
    f.write_replicated<double>("/profile/items/price_position", m.item_price_position);
}

ProfileModel read_profile_group(const h5::File& f) {
  ProfileModel m;
  m.n_users = f.attr_int("/profile", "n_users");
  m.dense_weight = f.attr_double("/profile", "dense_weight");
  m.half_life_days = f.attr_double("/profile", "half_life_days");
  m.reference_time = f.attr_double("/profile", "reference_time");
  m.item_ids = read_all_strings(f, "/profile/items/ids");
  m.idf = f.read_all<double>("/profile/items/idf");
  m.dense_names = read_all_strings(f, "/profile/dense/names");
  m.dense_mean = f.read_all<double>("/profile/dense/mean");
  m.dense_std = f.read_all<double>("/profile/dense/std");
  m.dense_log = f.read_all<std::uint8_t>("/profile/dense/log1p");
  m.dense_block = dense_blocks(m.dense_names);
  m.event_types = read_all_strings(f, "/profile/event_types/names");
  m.event_weights = f.read_all<double>("/profile/event_types/weights");
  if (f.exists("/profile/categories")) {
    m.categories = read_all_strings(f, "/profile/categories/names");
    m.item_category = f.read_all<std::int32_t>("/profile/items/category");
  }
  if (f.exists("/profile/items/price_position"))
    m.item_price_position = f.read_all<double>("/profile/items/price_position");
  const auto ni = m.item_ids.size(), d = m.dense_names.size();
  const bool ok = f.attr_int("/profile", "n_items") == m.n_items() && m.idf.size() == ni &&
                  m.dense_mean.size() == d && m.dense_std.size() == d && m.dense_log.size() == d &&
                  known_dense_transforms(m.dense_log) &&
                  m.event_weights.size() == m.event_types.size() &&
                  (m.item_category.empty() || m.item_category.size() == ni) &&
                  (m.item_price_position.empty() || m.item_price_position.size() == ni);
  if (!ok) throw DataError("'" + f.path() + "': inconsistent /profile shapes", true);
  return m;
}

// Co-occurrence counts of anchor items [a0, a1) against all items, in blocks
// whose count matrix stays under 64 MiB; keeps the top C per anchor.
void count_cooccurrence(ServingParts& s, const std::vector<std::int64_t>& indptr,
                        const std::vector<std::int32_t>& indices, const Comm& comm) {
  const std::int64_t n = s.n_items(), C = std::min<std::int64_t>(kCoocWidth, n - 1);
  s.cooc_width = 0;
  s.cooc_items.clear();
  s.cooc_counts.clear();
  if (n > kCoocMaxItems || C <= 0) return;
  s.cooc_width = C;
  s.cooc_items.assign(static_cast<std::size_t>(n * C), -1);
  s.cooc_counts.assign(static_cast<std::size_t>(n * C), 0);
  const std::int64_t block = std::max<std::int64_t>(1, (std::int64_t{16} << 20) / n);
  const std::int64_t rows = static_cast<std::int64_t>(indptr.size()) - 1;
  std::vector<std::int32_t> cnt;
  std::vector<std::int32_t> order;
  for (std::int64_t a0 = 0; a0 < n; a0 += block) {
    const std::int64_t a1 = std::min(n, a0 + block);
    cnt.assign(static_cast<std::size_t>((a1 - a0) * n), 0);
    for (std::int64_t u = 0; u < rows; ++u) {
      const std::int64_t b = indptr[u], e = indptr[u + 1];
      if (e - b > kCoocMaxHistory) continue;
      // Indices ascend within a row: the anchors of this block are a contiguous run.
      const auto lo = std::lower_bound(indices.begin() + b, indices.begin() + e, a0);
      const auto hi = std::lower_bound(lo, indices.begin() + e, a1);
      for (auto it = lo; it != hi; ++it) {
        std::int32_t* row = cnt.data() + (*it - a0) * n;
        for (std::int64_t q = b; q < e; ++q)
          if (indices[q] != *it) ++row[indices[q]];
      }
    }
    comm.allreduce(cnt);
    for (std::int64_t a = a0; a < a1; ++a) {
      const std::int32_t* row = cnt.data() + (a - a0) * n;
      order.clear();
      for (std::int32_t j = 0; j < n; ++j)
        if (row[j] > 0) order.push_back(j);
      const auto kk = std::min<std::ptrdiff_t>(C, std::ssize(order));
      const auto better = [row](std::int32_t x, std::int32_t y) {
        return row[x] > row[y] || (row[x] == row[y] && x < y);
      };
      std::partial_sort(order.begin(), order.begin() + kk, order.end(), better);
      for (std::ptrdiff_t j = 0; j < kk; ++j) {
        s.cooc_items[static_cast<std::size_t>(a * C + j)] = order[j];
        s.cooc_counts[static_cast<std::size_t>(a * C + j)] = row[order[j]];
      }
    }
  }
}

}  // namespace

std::int64_t ServingParts::item_total(std::int64_t i) const {
  std::int64_t t = 0;
  for (std::int64_t g = 0; g < k; ++g) t += item_users[static_cast<std::size_t>(g * n_items() + i)];
  return t;
}

std::int64_t ServingParts::n_users() const {
  return std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0});
}

void write_serving_parts(h5::File& f, const ServingParts& s) {
  write_profile_model(f, s.profile);
  f.create_group("/projection");
  f.set_attr("/projection", "dims", s.dims);
  f.write_replicated<float>("/projection/W", s.W, s.dims);
  f.write_replicated<double>("/projection/mean", s.mean);
  f.create_group("/segments");
  f.set_attr("/segments", "k", s.k);
  f.set_attr("/segments", "spherical", static_cast<std::int64_t>(s.spherical));
  write_view(f, "/segments", s.view);
  f.write_replicated<float>("/segments/centroids", s.centroids, s.dims);
  f.write_replicated<std::int64_t>("/segments/sizes", s.sizes);
  if (std::any_of(s.descriptions.begin(), s.descriptions.end(),
                  [](const std::string& d) { return !d.empty(); }))
    f.write_strings("/segments/descriptions", s.descriptions, false);
  f.write_replicated<std::int64_t>("/segments/item_users", s.item_users, s.n_items());
  if (s.cooc_width > 0) {
    f.create_group("/cooc");
    f.write_replicated<std::int32_t>("/cooc/items", s.cooc_items, s.cooc_width);
    f.write_replicated<std::int32_t>("/cooc/counts", s.cooc_counts, s.cooc_width);
  }
}

bool has_serving_parts(const h5::File& f) {
  return f.exists("/profile") && f.exists("/projection") && f.exists("/segments");
}

ServingParts read_serving_parts(const h5::File& f) {
  ServingParts s;
  s.profile = read_profile_group(f);
  s.dims = f.attr_int("/projection", "dims");
  s.W = f.read_all<float>("/projection/W");
  s.mean = f.read_all<double>("/projection/mean");
  s.k = f.attr_int("/segments", "k");
  s.spherical = f.attr_int("/segments", "spherical") != 0;
  s.view = read_view(f, "/segments");
  s.centroids = f.read_all<float>("/segments/centroids");
  s.sizes = f.read_all<std::int64_t>("/segments/sizes");
  if (f.exists("/segments/descriptions"))
    s.descriptions = read_all_strings(f, "/segments/descriptions");
  s.item_users = f.read_all<std::int64_t>("/segments/item_users");
  if (f.exists("/cooc")) {
    s.cooc_width = f.shape("/cooc/items")[1];
    s.cooc_items = f.read_all<std::int32_t>("/cooc/items");
    s.cooc_counts = f.read_all<std::int32_t>("/cooc/counts");
  }
  const std::int64_t D = s.n_features(), n = s.n_items();
  const bool ok = s.dims > 0 && s.k > 0 && std::ssize(s.W) == D * s.dims &&
                  std::ssize(s.mean) == D && std::ssize(s.centroids) == s.k * s.dims &&
                  std::ssize(s.sizes) == s.k && std::ssize(s.item_users) == s.k * n &&
                  (s.descriptions.empty() || std::ssize(s.descriptions) == s.k) &&
                  std::ssize(s.cooc_items) == n * s.cooc_width &&
                  s.cooc_counts.size() == s.cooc_items.size();
  if (!ok) throw DataError("'" + f.path() + "': inconsistent serving bundle shapes", true);
  return s;
}

ServingParts load_serving_parts(const std::string& profiles, const std::string& projection,
                                const std::string& segments, const std::string& data,
                                const Comm& comm) {
  ServingParts s;
  {
    const h5::File f = h5::File::open(profiles, comm, kProfilesFormat);
    s.profile = read_profile_model(f);
  }
  {
    const h5::File f = h5::File::open(projection, comm, kProjectionFormat);
    const auto shape = f.shape("/W");
    if (shape.size() != 2 || shape[0] != s.n_features())
      throw DataError("'" + projection + "': /W has " + std::to_string(shape[0]) +
                          " rows; the profiles of '" + profiles + "' have " +
                          std::to_string(s.n_features()) + " features",
                      true);
    s.dims = shape[1];
    s.W = f.read_all<float>("/W");
    s.mean = f.read_all<double>("/mean");
  }
  std::vector<std::int32_t> labels;
  Dataset ds = read_dataset(data, comm, /*with_log=*/false);
  if (ds.item_ids != s.profile.item_ids)
    throw DataError("'" + profiles + "' was made from other items than '" + data + "'", true);
  {
    const h5::File f = h5::File::open(segments, comm, kSegmentsFormat);
    const auto shape = f.shape("/centroids");
    if (shape.size() != 2 || shape[1] != s.dims)
      throw DataError("'" + segments + "': centroids of " +
                          std::to_string(shape.size() == 2 ? shape[1] : 0) + " dims; '" +
                          projection + "' has " + std::to_string(s.dims),
                      true);
    s.k = shape[0];
    s.centroids = f.read_all<float>("/centroids");
    s.spherical = f.has_attr("/", "spherical") && f.attr_int("/", "spherical") != 0;
    s.view = read_view(f, "/");
    UserRowsSpec spec;  // a label per user of the data set
    spec.path = segments;
    spec.name = "/labels";
    spec.users = ds.n_users;
    spec.source = data;
    const Block b = block_partition(ds.n_users, comm.size(), comm.rank());
    labels = read_user_rows<std::int32_t>(f, spec, b, comm);
  }
  count_training_items(s, ds.indptr, ds.indices, labels, comm);
  // The segment report written by the cluster stage next to segments.h5, if any.
  std::string report;
  if (comm.is_root()) {
    std::string path = segments;
    if (path.size() > 3 && path.compare(path.size() - 3, 3, ".h5") == 0)
      path.resize(path.size() - 3);
    std::ifstream in(path + ".json", std::ios::binary);
    if (in) report.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  comm.broadcast(report);
  s.descriptions = report_descriptions(report, s.k);
  if (std::all_of(s.descriptions.begin(), s.descriptions.end(),
                  [](const std::string& d) { return d.empty(); }))
    s.descriptions.clear();
  return s;
}

void count_training_items(ServingParts& s, const std::vector<std::int64_t>& indptr,
                          const std::vector<std::int32_t>& indices,
                          const std::vector<std::int32_t>& labels, const Comm& comm) {
  const std::int64_t n = s.n_items();
  s.sizes.assign(static_cast<std::size_t>(s.k), 0);
  s.item_users.assign(static_cast<std::size_t>(s.k * n), 0);
  std::string err;
  for (std::size_t u = 0; u + 1 < indptr.size(); ++u) {
    const std::int32_t g = labels[u];
    if (g == -1) continue;  // no segment (DBSCAN noise): counted in no segment
    if (g < 0 || g >= s.k) {
      err = "segment label " + std::to_string(g) + " outside [0, " + std::to_string(s.k) + ")";
      break;
    }
    ++s.sizes[static_cast<std::size_t>(g)];
    for (std::int64_t q = indptr[u]; q < indptr[u + 1]; ++q)
      ++s.item_users[static_cast<std::size_t>(g * n + indices[q])];
  }
  comm.check_all(err, kExitData);
  comm.allreduce(s.sizes);
  comm.allreduce(s.item_users);
  count_cooccurrence(s, indptr, indices, comm);
}

std::vector<std::string> report_descriptions(const std::string& json, std::int64_t k) {
  std::vector<std::string> out(static_cast<std::size_t>(std::max<std::int64_t>(k, 0)));
  const std::string id_key = "{\"id\": ", desc_key = "\"description\": \"";
  std::size_t at = json.find("\"segments\"");
  while (at != std::string::npos) {
    at = json.find(id_key, at);
    if (at == std::string::npos) break;
    at += id_key.size();
    const long long id = std::strtoll(json.c_str() + at, nullptr, 10);
    const std::size_t next = json.find(id_key, at);
    std::size_t d = json.find(desc_key, at);
    if (d == std::string::npos || d > next || id < 0 || id >= k) continue;
    std::string text;
    for (d += desc_key.size(); d < json.size() && json[d] != '"'; ++d) {
      if (json[d] == '\\' && d + 1 < json.size()) {
        const char e = json[++d];
        text += e == 'n' ? ' ' : e == 't' ? ' ' : e == 'r' ? ' ' : e == 'u' ? '?' : e;
        if (e == 'u') d += 4;
      } else {
        text += json[d];
      }
    }
    out[static_cast<std::size_t>(id)] = text;
  }
  return out;
}

std::vector<float> project_profiles(const ServingParts& s, const ProfileBlock& b) {
  const std::int64_t H = s.dims, ni = s.n_items(), d = s.profile.n_dense();
  const std::int64_t rows = b.n_local();
  // The centring term mu^T W, in double.
  std::vector<double> muW(static_cast<std::size_t>(H), 0.0);
  for (std::int64_t j = 0; j < ni + d; ++j)
    if (s.mean[j] != 0)
      for (std::int64_t c = 0; c < H; ++c) muW[c] += s.mean[j] * s.W[j * H + c];
  std::vector<float> h(static_cast<std::size_t>(rows * H), 0.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    float* y = h.data() + r * H;
    for (std::int64_t q = b.indptr[r]; q < b.indptr[r + 1]; ++q) {
      const float v = b.values[q];
      const float* w = s.W.data() + static_cast<std::int64_t>(b.indices[q]) * H;
      for (std::int64_t c = 0; c < H; ++c) y[c] += v * w[c];
    }
    for (std::int64_t j = 0; j < d; ++j) {
      const float v = b.dense_values[r * d + j];
      const float* w = s.W.data() + (ni + j) * H;
      for (std::int64_t c = 0; c < H; ++c) y[c] += v * w[c];
    }
    for (std::int64_t c = 0; c < H; ++c) y[c] -= static_cast<float>(muW[c]);
  }
  return h;
}

std::vector<std::int32_t> nearest_segments(const ServingParts& s, const std::vector<float>& h) {
  const std::int64_t H = s.dims, rows = std::ssize(h) / std::max<std::int64_t>(1, H);
  std::vector<std::int32_t> out(static_cast<std::size_t>(rows), 0);
  std::vector<double> x(static_cast<std::size_t>(H));
  std::vector<float> row(static_cast<std::size_t>(H));
  for (std::int64_t r = 0; r < rows; ++r) {
    std::copy(h.begin() + r * H, h.begin() + (r + 1) * H, row.begin());
    s.view.apply(row.data(), H);
    double norm = 0;
    for (std::int64_t c = 0; c < H; ++c) {
      x[c] = row[c];
      norm += x[c] * x[c];
    }
    if (s.spherical && norm > 0)
      for (auto& v : x) v /= std::sqrt(norm);
    double best = std::numeric_limits<double>::infinity();
    for (std::int64_t g = 0; g < s.k; ++g) {
      double dist = 0;
      for (std::int64_t c = 0; c < H; ++c) {
        const double t = x[c] - s.centroids[g * H + c];
        dist += t * t;
      }
      if (dist < best) {
        best = dist;
        out[r] = static_cast<std::int32_t>(g);
      }
    }
  }
  return out;
}

}  // namespace segrec
