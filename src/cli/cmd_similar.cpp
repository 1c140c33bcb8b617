// segrec similar: the K most similar users of every user (lookalikes, friend suggestions).
#include <cstdio>
#include <sstream>

#include "command.hpp"
#include "segrec/ingest/pseudonym.hpp"
#include "segrec/serving/similar.hpp"

namespace segrec::cli {
namespace {

class SimilarCommand final : public Command {
 public:
  std::string name() const override { return "similar"; }
  std::string summary() const override {
    return "the K most similar users of every user (exact, distributed) from projection.h5";
  }
  std::string usage() const override {
    return "examples:\n"
           "  segrec similar --projection projection.h5 --top 10 --out similar.csv\n"
           "  mpirun -n 4 segrec similar --projection projection.h5 --metric cosine --out s.csv\n"
           "  segrec similar --projection projection.h5 --query-users 17,42 --metric l2 --out "
           "s.csv\n"
           "CSV columns: user_id,rank,neighbour_id,score; score is the inner product, the\n"
           "squared distance (l2) or the cosine; ties go to the neighbour earlier in the data\n"
           "set's user order.";
  }
  void add_options(po::options_description& d) override {
    SimilarParams& p = p_;
    d.add_options()("projection", po::value(&p.projection),
                    "projection.h5 (from segrec project): the vectors /H")("out", po::value(&p.out),
                                                                           "CSV to write")(
        "top", po::value(&p.top)->default_value(p.top),
        "neighbours per user (below the number of users; the user itself is excluded)")(
        "metric", po::value(&p.metric)->default_value(p.metric),
        "ip (inner product) | l2 (squared Euclidean distance) | cosine")(
        "query-users", po::value(&p.users),
        "only these users: a file (one id a line) or ID,ID,... (default: every user)")(
        "pseudonymize", po::value(&p.pseudonymize),
        "the --query-users ids are raw: hash them with this key, as ingest --pseudonymize did "
        "(KEY, env:NAME or file:PATH)")("tile-rows",
                                        po::value(&p.tile_rows)->default_value(p.tile_rows),
                                        "query users per score tile")(
        "tile-cols", po::value(&p.tile_cols)->default_value(p.tile_cols),
        "compared users per score tile (tile-rows x tile-cols floats are scored at once)");
  }

  void check(const Context&) override {
    p_.validate();
    if (!p_.pseudonymize.empty())
      (void)Pseudonymizer(resolve_secret(p_.pseudonymize, "pseudonymize"));  // short key: 2
  }

  int run(const Context& ctx) override {
    check(ctx);
    const SimilarSummary s = run_similar(p_, ctx.comm);
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", s.seconds_search);
    std::ostringstream os;
    os << "wrote " << p_.out << ": " << s.rows << " neighbours (" << p_.top << " each) of "
       << s.queried << " users among " << s.users << " (" << s.dims << " dims, " << p_.metric
       << "); search " << secs << " s on " << ctx.comm.size() << " ranks";
    ctx.say(os.str());
    return 0;
  }

 private:
  SimilarParams p_;
};

}  // namespace

std::unique_ptr<Command> make_similar() { return std::make_unique<SimilarCommand>(); }

}  // namespace segrec::cli
