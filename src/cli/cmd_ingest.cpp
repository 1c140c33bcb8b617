// segrec ingest: collect and clean behaviour events into dataset.h5.
#include <cstdio>
#include <sstream>

#include "command.hpp"
#include "ingest_options.hpp"
#include "segrec/ingest/ingest.hpp"
#include "segrec/ingest/pseudonym.hpp"
#include "segrec/io/h5.hpp"

namespace segrec::cli {
namespace {

class IngestCommand final : public Command {
 public:
  std::string name() const override { return "ingest"; }
  std::string summary() const override {
    return "read, clean and partition behaviour events into dataset.h5";
  }
  std::string usage() const override {
    return "examples:\n"
           "  segrec ingest --events events.csv --out dataset.h5\n"
           "  segrec ingest --format movielens --events u.data --min-value 4 --out ml.h5\n"
           "  segrec ingest --no-header --columns user_id,item_id,category,event,timestamp \\\n"
           "                --events a.tsv --events b.tsv --out dataset.h5";
  }
  std::vector<std::string> positional() const override { return {"events"}; }
  void add_options(po::options_description& d) override {
    IngestParams& p = p_;
    d.add_options()("events", po::value(&p.events)->composing()->multitoken(),
                    "input event files (CSV/TSV/..., repeatable)")("out", po::value(&p.out),
                                                                   "dataset.h5 to write")(
        "pseudonymize", po::value(&p.pseudonymize),
        "replace every user id by HMAC-SHA256(KEY, id) as it is read: KEY, env:NAME or "
        "file:PATH (at least 16 bytes; see docs/privacy.md)");
    add_ingest_read_options(d, p);
  }

  void check(const Context&) override {
    if (!p_.pseudonymize.empty())
      (void)Pseudonymizer(resolve_secret(p_.pseudonymize, "pseudonymize"));  // short key: 2
    p_.validate();
  }

  int run(const Context& ctx) override {
    check(ctx);
    IngestParams p = p_;
    if (!p.pseudonymize.empty()) {
      // The key never reaches a file: the command line recorded in the outputs is redacted.
      std::string cmd = h5::command_line();
      for (auto pos = cmd.find(p.pseudonymize); pos != std::string::npos;
           pos = cmd.find(p.pseudonymize, pos))
        cmd.replace(pos, p.pseudonymize.size(), "<redacted>");
      h5::set_command_line(cmd);
      p.pseudonymize = resolve_secret(p.pseudonymize, "pseudonymize");
    }
    const Dataset ds = ingest(p, ctx.comm);
    write_dataset(p_.out, ds, ctx.comm);
    const std::int64_t nnz = ctx.comm.allreduce_value(static_cast<std::int64_t>(ds.indices.size()));
    ctx.say(ds.report.table());
    std::ostringstream os;
    os << "wrote " << p_.out << ": " << ds.n_users << " users, " << ds.n_items() << " items, "
       << ds.report.rows_kept << " events, " << nnz << " user-item pairs, " << ds.n_types()
       << " event types";
    if (ds.has_prices() || ds.has_names() || ds.has_categories()) {
      os << "; item attributes:";
      if (ds.has_prices()) os << " price";
      if (ds.has_names()) os << " name";
      if (ds.has_categories()) os << " category (" << ds.categories.size() << ")";
    }
    ctx.say(os.str());
    return 0;
  }

 private:
  IngestParams p_;
};

}  // namespace

std::unique_ptr<Command> make_ingest() { return std::make_unique<IngestCommand>(); }

}  // namespace segrec::cli
