// segrec ingest: collect and clean behaviour events into dataset.h5.
#include <cstdio>
#include <sstream>

#include "command.hpp"
#include "segrec/h5.hpp"
#include "segrec/ingest.hpp"
#include "segrec/pseudonym.hpp"

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
        "format", po::value(&p.format)->default_value(p.format),
        "auto | movielens (u.data, ratings.dat, ratings.csv)")(
        "no-header", po::bool_switch(&p.no_header), "files have no header line (needs --columns)")(
        "columns", po::value(&p.columns), "column names of header-less files, in order")(
        "delimiter", po::value(&p.delimiter),
        "field delimiter: , tab ; | or :: (default: detected from the first line)")(
        "col-user", po::value(&p.col_user), "header name of the user column")(
        "col-item", po::value(&p.col_item), "header name of the item column")(
        "col-event", po::value(&p.col_event), "header name of the event-type column")(
        "col-time", po::value(&p.col_time), "header name of the timestamp column")(
        "col-value", po::value(&p.col_value), "header name of the value column")(
        "event-name", po::value(&p.event_name),
        "event type of rows without one (default: interaction; rating for movielens)")(
        "event-weight", po::value(&p.event_weights)->composing(),
        "NAME=W weight of an event type (repeatable); defaults: view/pv/click 1, "
        "cart/add_to_cart/fav/favorite 3, purchase/buy/transaction 5, rate/rating 1")(
        "default-event-weight",
        po::value(&p.default_event_weight)->default_value(p.default_event_weight),
        "weight of other event types (they are listed in the report)")(
        "fill-value", po::value(&p.fill_values)->composing(),
        "NAME=V value filled in where a row of that type has none "
        "(default: the type's mean value, or 0)")(
        "min-value", po::value(&p.min_value),
        "keep only rows whose value is at least this (e.g. 4 to binarise ratings)")(
        "max-bad-fraction", po::value(&p.max_bad_fraction)->default_value(p.max_bad_fraction),
        "fail when a larger share of rows is malformed")(
        "min-user-events", po::value(&p.min_user_events)->default_value(p.min_user_events),
        "drop users with fewer events")(
        "min-item-users", po::value(&p.min_item_users)->default_value(p.min_item_users),
        "drop items with fewer distinct users")(
        "max-line-bytes", po::value(&p.max_line_bytes)->default_value(p.max_line_bytes),
        "longer lines are malformed")("examples", po::value(&p.examples)->default_value(p.examples),
                                      "malformed rows shown in the report")(
        "pseudonymize", po::value(&p.pseudonymize),
        "replace every user id by HMAC-SHA256(KEY, id) as it is read: KEY, env:NAME or "
        "file:PATH (at least 16 bytes; see docs/privacy.md)");
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
    ctx.say(os.str());
    return 0;
  }

 private:
  IngestParams p_;
};

}  // namespace

std::unique_ptr<Command> make_ingest() { return std::make_unique<IngestCommand>(); }

}  // namespace segrec::cli
