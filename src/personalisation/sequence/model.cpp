#include "segrec/personalisation/sequence/model.hpp"

#include <span>

#include "segrec/core/error.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"

namespace segrec {

namespace {
bool is_sequence(const h5::File& f) {
  return f.has_attr("/", "model_kind") && f.attr_string("/", "model_kind") == "sequence";
}
}  // namespace

bool is_sequence_model(const std::string& path, const Comm& comm) {
  return is_sequence(h5::File::open(path, comm, kModelFormat));
}

void write_sequence_model(const std::string& path, const SeqModel& m, const Comm& comm) {
  h5::File f = h5::File::create(path, comm, kModelFormat);
  for (const char* g : {"/items", "/event_types", "/sequence", "/config", "/curves", "/validation"})
    f.create_group(g);
  f.set_attr("/", "model_kind", std::string("sequence"));
  f.write_strings("/items/ids", m.item_ids, false);
  f.write_strings("/event_types/names", m.event_types, false);
  f.write_replicated<float>("/sequence/params", std::span<const float>(m.params));
  f.set_attr("/sequence", "encoder", std::string("gru"));
  f.set_attr("/sequence", "dim", m.shape.dim);
  f.set_attr("/sequence", "max_len", m.max_len);
  f.set_attr("/sequence", "n_items", m.shape.n_items);
  f.set_attr("/sequence", "n_types", m.shape.n_types);
  f.set_attr("/sequence", "tied", static_cast<std::int64_t>(m.shape.tied));
  f.set_attr("/sequence", "n_gaps", m.shape.n_gaps);
  for (const auto& [k, v] : m.config) f.set_attr("/config", k, v);
  const std::pair<const char*, const std::vector<double>*> curves[] = {
      {"train_loss", &m.train_loss},
      {"val_ndcg", &m.val_ndcg},
      {"val_recall", &m.val_recall},
      {"lr", &m.lr},
      {"seconds", &m.seconds}};
  for (const auto& [name, v] : curves)
    f.write_replicated<double>(std::string("/curves/") + name, std::span<const double>(*v));
  f.set_attr("/validation", "best_epoch", m.best_epoch);
  f.set_attr("/validation", "best_ndcg", m.best_ndcg);
  f.set_attr("/validation", "ndcg_k", m.ndcg_k);
  f.set_attr("/validation", "recall_k", m.recall_k);
  f.set_attr("/validation", "n_users", m.n_val_users);
  f.set_attr("/validation", "n_train_users", m.n_train_users);
  f.commit();
}

SeqModel read_sequence_model(const std::string& path, const Comm& comm) {
  const h5::File f = h5::File::open(path, comm, kModelFormat);
  if (!is_sequence(f))
    throw DataError("'" + path + "' is not a sequence model (segrec train --model-kind sequence)",
                    true);
  SeqModel m;
  m.shape.dim = f.attr_int("/sequence", "dim");
  m.shape.n_items = f.attr_int("/sequence", "n_items");
  m.shape.n_types = f.attr_int("/sequence", "n_types");
  m.shape.tied = f.has_attr("/sequence", "tied") && f.attr_int("/sequence", "tied") != 0;
  m.shape.n_gaps = f.has_attr("/sequence", "n_gaps") ? f.attr_int("/sequence", "n_gaps") : 0;
  if (m.shape.n_gaps != 0 && m.shape.n_gaps != seq::kGapBuckets)
    throw DataError("'" + path + "': /sequence n_gaps is " + std::to_string(m.shape.n_gaps) +
                        "; this segrec reads 0 or " + std::to_string(seq::kGapBuckets),
                    true);
  m.max_len = f.attr_int("/sequence", "max_len");
  m.item_ids = f.read_strings("/items/ids", 0, m.shape.n_items);
  m.event_types = f.read_strings("/event_types/names", 0, m.shape.n_types);
  m.params = f.read_all<float>("/sequence/params");
  if (static_cast<std::int64_t>(m.params.size()) != seq::Layout(m.shape).size || m.max_len < 1)
    throw DataError("'" + path + "': /sequence/params holds " + std::to_string(m.params.size()) +
                        " values, not the " + std::to_string(seq::Layout(m.shape).size) +
                        " of its shape",
                    true);
  m.train_loss = f.read_all<double>("/curves/train_loss");
  m.val_ndcg = f.read_all<double>("/curves/val_ndcg");
  m.val_recall = f.read_all<double>("/curves/val_recall");
  m.lr = f.read_all<double>("/curves/lr");
  m.seconds = f.read_all<double>("/curves/seconds");
  m.best_epoch = f.attr_int("/validation", "best_epoch");
  m.best_ndcg = f.attr_double("/validation", "best_ndcg");
  m.ndcg_k = f.attr_int("/validation", "ndcg_k");
  m.recall_k = f.attr_int("/validation", "recall_k");
  m.n_val_users = f.attr_int("/validation", "n_users");
  m.n_train_users = f.attr_int("/validation", "n_train_users");
  return m;
}

}  // namespace segrec
