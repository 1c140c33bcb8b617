// segrec profile: one feature vector per user (item interactions + behaviour).
#include <sstream>

#include "command.hpp"
#include "segrec/segmentation/profile.hpp"

namespace segrec::cli {
namespace {

class ProfileCommand final : public Command {
 public:
  std::string name() const override { return "profile"; }
  std::string summary() const override {
    return "build user profiles (tf-idf interactions + behaviour statistics) into profiles.h5";
  }
  std::string usage() const override {
    return "examples:\n"
           "  segrec profile --data dataset.h5 --out profiles.h5\n"
           "  segrec profile --data dataset.h5 --out profiles.h5 --half-life-days 30 \\\n"
           "                 --item-categories items.csv";
  }
  void add_options(po::options_description& d) override {
    ProfileParams& p = p_;
    d.add_options()("data", po::value(&p.data), "dataset.h5 to read")("out", po::value(&p.out),
                                                                      "profiles.h5 to write")(
        "half-life-days", po::value(&p.half_life_days)->default_value(p.half_life_days),
        "half-life of the exponential time decay of event weights, days (0 = no decay)")(
        "dense-weight", po::value(&p.dense_weight)->default_value(p.dense_weight, "auto"),
        "scale of the standardised behaviour statistics (auto, or any negative value = "
        "0.5/sqrt(d): half the norm "
        "of the interaction part)")(
        "item-categories", po::value(&p.item_categories),
        "CSV item_id,category (with header): adds each user's share of events per category");
  }

  void check(const Context&) override { p_.validate(); }

  int run(const Context& ctx) override {
    check(ctx);
    const ProfileSummary s = run_profile(p_, ctx.comm);
    std::ostringstream os;
    os << "wrote " << p_.out << ": " << s.users << " users x (" << s.items << " items + " << s.dense
       << " behaviour statistics), " << s.nnz << " non-zero interactions, dense weight "
       << s.dense_weight;
    ctx.say(os.str());
    return 0;
  }

 private:
  ProfileParams p_;
};

}  // namespace

std::unique_ptr<Command> make_profile() { return std::make_unique<ProfileCommand>(); }

}  // namespace segrec::cli
