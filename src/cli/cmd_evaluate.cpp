// segrec evaluate: top-N quality of a model and of popularity baselines.
#include "command.hpp"
#include "ingest_options.hpp"
#include "segrec/serving/evaluate.hpp"

namespace segrec::cli {
namespace {

class EvaluateCommand final : public Command {
 public:
  std::string name() const override { return "evaluate"; }
  std::string summary() const override {
    return "Recall/NDCG/HitRate@K, MRR, full-ranking HR/NDCG@10, coverage, novelty of a model "
           "against popularity";
  }
  std::string usage() const override {
    return "examples:\n"
           "  segrec evaluate --model model.h5 --foldin split/foldin.csv --test split/test.csv\n"
           "  mpirun -n 4 segrec evaluate --model model.h5 --foldin f.csv --test t.csv \\\n"
           "                  --k 10,20,50,100 --json metrics.json";
  }
  void add_options(po::options_description& d) override {
    EvaluateParams& p = p_;
    d.add_options()("model", po::value(&p.model), "model.h5 (with its serving bundle)")(
        "foldin", po::value(&p.foldin.events)->composing(),
        "fold-in events of the held-out users (the input to score them)")(
        "test", po::value(&p.test), "held-out events to find")(
        "k", po::value(&p.k)->default_value(p.k), "cut-offs K, comma-separated")(
        "json", po::value(&p.json), "also write the metrics as JSON to this file")(
        "min-events", po::value(&p.min_events)->default_value(p.min_events),
        "system 'served': users with fewer known events get their segment's popular items "
        "(as segrec recommend; 0 = leave out)")(
        "block-users", po::value(&p.block_users)->default_value(p.block_users),
        "users scored per block")(
        "rank-k", po::value(&p.rank_k)->default_value(p.rank_k),
        "N of the full-ranking HR@N and NDCG@N (beside MRR over the full ranking); 0 = rank the "
        "top max K only (faster, no full-ranking metrics)");
    add_ingest_read_options(d, p.foldin, /*filters=*/false);
  }

  void check(const Context&) override { p_.validate(); }

  int run(const Context& ctx) override {
    check(ctx);
    const EvaluateResult r = run_evaluate(p_, ctx.comm);
    ctx.say(r.table());
    return 0;
  }

 private:
  EvaluateParams p_;
};

}  // namespace

std::unique_ptr<Command> make_evaluate() { return std::make_unique<EvaluateCommand>(); }

}  // namespace segrec::cli
