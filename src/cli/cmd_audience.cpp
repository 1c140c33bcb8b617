// segrec audience: the users the model scores highest for given items.
#include <sstream>

#include "command.hpp"
#include "segrec/ingest/pseudonym.hpp"
#include "segrec/serving/audience.hpp"

namespace segrec::cli {
namespace {

class AudienceCommand final : public Command {
 public:
  std::string name() const override { return "audience"; }
  std::string summary() const override {
    return "for given items, the users the model scores highest (targeted marketing)";
  }
  std::string usage() const override {
    return "examples:\n"
           "  segrec audience --model model.h5 --data dataset.h5 --items i42,i7 --top 1000 \\\n"
           "                  --out audience.csv\n"
           "  mpirun -n 4 segrec audience --model model.h5 --data dataset.h5 --segments s.h5 \\\n"
           "                  --items-file campaign.txt --segment 2,5 --out audience.csv\n"
           "CSV columns: item_id,rank,user_id,score,segment (score: the model's logit), grouped\n"
           "by item in the order given; the segment summary goes to <out>_summary.json.";
  }
  void add_options(po::options_description& d) override {
    AudienceParams& p = p_;
    d.add_options()("model", po::value(&p.model), "model.h5 (from segrec train)")(
        "data", po::value(&p.data), "dataset.h5: the users to choose from")(
        "projection", po::value(&p.projection),
        "projection.h5 (/H) instead of projecting with the model's bundle")(
        "segments", po::value(&p.segments),
        "segments.h5 (/labels) instead of the nearest bundle centroid")(
        "items", po::value(&p.items), "item ids, comma-separated: one audience each")(
        "items-file", po::value(&p.items_file), "file of item ids, one per line")(
        "top", po::value(&p.top)->default_value(p.top), "users per item")(
        "segment", po::value(&p.segment),
        "only users of these segments, comma-separated (needs --segments)")(
        "min-events", po::value(&p.min_events)->default_value(p.min_events),
        "only users with at least this many events on the model's items")(
        "exclude-owned",
        po::value(&p.exclude_owned)->default_value(p.exclude_owned)->implicit_value(true),
        "leave out users whose history holds the item (--exclude-owned=false keeps them)")(
        "pseudonymize", po::value(&p.pseudonymize),
        "write user ids as HMAC-SHA256(KEY, id): KEY, env:NAME or file:PATH (see "
        "docs/privacy.md)")("min-report-users",
                            po::value(&p.min_report_users)->default_value(p.min_report_users),
                            "segment summary: segments with fewer users in an audience are pooled")(
        "out", po::value(&p.out), "audience CSV to write")(
        "block-users", po::value(&p.block_users)->default_value(p.block_users),
        "users scored per block");
  }

  void check(const Context&) override {
    if (!p_.pseudonymize.empty())
      (void)Pseudonymizer(resolve_secret(p_.pseudonymize, "pseudonymize"));
    p_.validate();
  }

  int run(const Context& ctx) override {
    check(ctx);
    AudienceParams p = p_;
    if (!p.pseudonymize.empty()) p.pseudonymize = resolve_secret(p.pseudonymize, "pseudonymize");
    const AudienceSummary s = run_audience(p, ctx.comm);
    ctx.say(s.table());
    std::ostringstream os;
    os << "wrote " << p.out << ": " << s.rows << " rows for " << s.items.size() << " item(s) of "
       << s.users << " users; segment summary " << p.summary_path();
    ctx.say(os.str());
    return 0;
  }

 private:
  AudienceParams p_;
};

}  // namespace

std::unique_ptr<Command> make_audience() { return std::make_unique<AudienceCommand>(); }

}  // namespace segrec::cli
