// segrec recommend: top-N recommendations for the users of a run or for new users.
#include <sstream>

#include "command.hpp"
#include "ingest_options.hpp"
#include "segrec/serving/recommend.hpp"

namespace segrec::cli {
namespace {

class RecommendCommand final : public Command {
 public:
  std::string name() const override { return "recommend"; }
  std::string summary() const override {
    return "top-N recommendations for the users of a run or for new users";
  }
  std::string usage() const override {
    return "examples:\n"
           "  segrec recommend --model model.h5 --data dataset.h5 --top 20 --out recs.csv\n"
           "  mpirun -n 4 segrec recommend --model model.h5 --data dataset.h5 --out recs.h5\n"
           "  segrec recommend --model model.h5 --events new_users.csv --top 10 --explain \\\n"
           "                   --exclude out_of_stock.txt --out recs.csv\n"
           "  segrec recommend --model model.h5 --events u.data --format movielens --explain \\\n"
           "                   --item-info u.item --item-info-format movielens --out recs.csv\n"
           "CSV columns: user_id,rank,item_id,score,segment,source[,reason]; source is model,\n"
           "or popular-in-segment for users with fewer than --min-events known events.";
  }
  void add_options(po::options_description& d) override {
    RecommendParams& p = p_;
    d.add_options()("model", po::value(&p.model), "model.h5 (from segrec train)")(
        "data", po::value(&p.data), "dataset.h5: recommend for every user of the run")(
        "projection", po::value(&p.projection),
        "with --data: projection.h5 (/H) instead of projecting with the model's bundle")(
        "segments", po::value(&p.segments),
        "with --data: segments.h5 (/labels) instead of the nearest bundle centroid")(
        "events", po::value(&p.events.events)->composing()->multitoken(),
        "event files of new users (read like segrec ingest; repeatable)")(
        "out", po::value(&p.out), "recommendations to write: .csv, or .h5")(
        "top", po::value(&p.top)->default_value(p.top), "items per user")(
        "min-events", po::value(&p.min_events)->default_value(p.min_events),
        "users with fewer events on known items get their segment's popular items (0 = never)")(
        "exclude", po::value(&p.exclude), "file of item ids (one per line) never to recommend")(
        "explain", po::bool_switch(&p.explain),
        "add a reason column: the history items that raised the item's score most (leave-one-out: "
        "score and rank without them), then the segment lift")(
        "item-info", po::value(&p.item_info),
        "with --explain: item attributes file (id plus name/title, category/genre, price, brand) "
        "whose names the reasons use (default: the names of the log's own name column, "
        "else the ids)")("item-info-format",
                         po::value(&p.item_info_format)->default_value(p.item_info_format),
                         "csv (delimited, with a header) | movielens (u.item: '|', latin-1)")(
        "block-users", po::value(&p.block_users)->default_value(p.block_users),
        "users scored and written per block");
    add_ingest_read_options(d, p.events, /*filters=*/false);
  }

  void check(const Context&) override { p_.validate(); }

  int run(const Context& ctx) override {
    check(ctx);
    const RecommendSummary s = run_recommend(p_, ctx.comm);
    std::ostringstream os;
    os << "wrote " << p_.out << ": " << s.rows << " recommendations for " << s.users << " users ("
       << s.cold_users << " cold users served popular-in-segment, --min-events " << p_.min_events
       << ")";
    if (p_.new_users())
      os << "; " << s.unknown_items << " items unknown to the model (" << s.unknown_events
         << " events ignored)";
    if (!p_.exclude.empty())
      os << "; excluded " << s.excluded_items << " items (" << s.exclude_unknown
         << " ids of --exclude unknown to the model)";
    if (!s.bundle) os << "; the model holds no serving bundle";
    ctx.say(os.str());
    if (!s.segment_users.empty()) {
      std::ostringstream seg;
      seg << "users per segment:";
      std::int64_t in_segments = 0;
      for (std::size_t g = 0; g < s.segment_users.size(); ++g) {
        seg << " " << g << ":" << s.segment_users[g];
        in_segments += s.segment_users[g];
      }
      if (s.users > in_segments) seg << " unsegmented:" << s.users - in_segments;  // -1: noise
      ctx.say(seg.str());
    }
    return 0;
  }

 private:
  RecommendParams p_;
};

}  // namespace

std::unique_ptr<Command> make_recommend() { return std::make_unique<RecommendCommand>(); }

}  // namespace segrec::cli
