// segrec split: train / fold-in / test files for offline evaluation.
#include <sstream>

#include "command.hpp"
#include "ingest_options.hpp"
#include "segrec/core/params.hpp"
#include "segrec/serving/split.hpp"

namespace segrec::cli {
namespace {

class SplitCommand final : public Command {
 public:
  std::string name() const override { return "split"; }
  bool out_is_directory() const override { return true; }
  std::string summary() const override {
    return "split an event file into train / fold-in / test files (strong, weak, temporal)";
  }
  std::string usage() const override {
    return "examples:\n"
           "  segrec split --events events.csv --protocol strong --out split/\n"
           "  segrec split --format movielens --events u.data --min-value 4 --out split/\n"
           "  segrec split --events events.csv --protocol temporal --last-n 2 --out split/\n"
           "  segrec split --temporal-last --data dataset.h5 --out split/\n"
           "Writes OUT/train.EXT, OUT/foldin.EXT and OUT/test.EXT with the input's columns and "
           "its\n"
           "extension EXT (.csv when it has none), so --format movielens reads them back.\n"
           "--temporal-last (leave-last-out of dataset.h5's event log: each user's last new item\n"
           "is the test target, the one before the validation target) writes OUT/train.csv,\n"
           "valid.csv, foldin.csv and test.csv as user_id,item_id,event,timestamp,value[,price]\n"
           "[,category]; users with fewer than 3 distinct items are in train.csv only.";
  }
  std::vector<std::string> positional() const override { return {"events"}; }
  void add_options(po::options_description& d) override {
    SplitParams& p = p_;
    d.add_options()("events", po::value(&p.input.events)->composing()->multitoken(),
                    "the event file to split")("out", po::value(&p.out), "output directory")(
        "protocol", po::value(&p.protocol)->default_value(p.protocol),
        "strong (held-out users) | weak (per-user items) | temporal (last events) | "
        "temporal-last (dataset.h5: last new item per user)")(
        "temporal-last", po::bool_switch(&temporal_last_), "the same as --protocol temporal-last")(
        "data", po::value(&p.data), "temporal-last: the dataset.h5 whose event log is split")(
        "holdout-share", po::value(&p.holdout_share)->default_value(p.holdout_share),
        "strong: share of users held out")(
        "test-share", po::value(&p.test_share)->default_value(p.test_share),
        "strong/weak: share of a user's items scored (the rest is folded in)")(
        "last-n", po::value(&p.last_n)->default_value(p.last_n),
        "temporal: each user's last events scored")(
        "min-user-items", po::value(&p.min_user_items)->default_value(p.min_user_items),
        "drop users with fewer distinct items");
    add_ingest_read_options(d, p.input, /*filters=*/false);
  }

  void check(const Context& ctx) override {
    p_.seed = ctx.common.seed;
    if (temporal_last_) {
      require(p_.protocol == "strong" || p_.protocol == "temporal-last", "protocol", p_.protocol,
              "--temporal-last is --protocol temporal-last; give one of them");
      p_.protocol = "temporal-last";
    }
    p_.validate();
  }

  int run(const Context& ctx) override {
    check(ctx);
    const SplitSummary s = run_split(p_, ctx.comm);
    std::ostringstream os;
    if (p_.protocol == "temporal-last") {
      os << "wrote " << p_.out << "/{train,valid,foldin,test}.csv (temporal-last): " << s.rows
         << " events of " << s.users << " users; " << s.heldout_users << " users scored ("
         << s.users - s.heldout_users
         << " with fewer than 3 distinct items in train only); rows: " << s.train_rows << " train, "
         << s.valid_rows << " valid, " << s.foldin_rows << " fold-in, " << s.test_rows << " test, "
         << s.dropped_rows << " after the test target dropped";
      ctx.say(os.str());
      return 0;
    }
    os << "wrote " << p_.out << "/{train,foldin,test}.csv (" << p_.protocol << "): " << s.rows
       << " rows read (" << s.bad_rows << " malformed, " << s.below_min << " under --min-value); "
       << s.users << " users kept, " << s.dropped_users << " with fewer than " << p_.min_user_items
       << " items dropped; " << s.heldout_users << " users scored; rows: " << s.train_rows
       << " train, " << s.foldin_rows << " fold-in, " << s.test_rows << " test";
    ctx.say(os.str());
    return 0;
  }

 private:
  SplitParams p_;
  bool temporal_last_ = false;
};

}  // namespace

std::unique_ptr<Command> make_split() { return std::make_unique<SplitCommand>(); }

}  // namespace segrec::cli
