// segrec project: reduce profiles to H dimensions (randomized PCA or random projection).
#include <cstdio>
#include <sstream>

#include "command.hpp"
#include "segrec/segmentation/project.hpp"

namespace segrec::cli {
namespace {

class ProjectCommand final : public Command {
 public:
  std::string name() const override { return "project"; }
  std::string summary() const override {
    return "project profiles to H dimensions (distributed randomized PCA) into projection.h5";
  }
  std::string usage() const override {
    return "examples:\n"
           "  segrec project --profiles profiles.h5 --dims 64 --out projection.h5\n"
           "  segrec project --profiles profiles.h5 --dims 64 --method random --out proj.h5";
  }
  void add_options(po::options_description& d) override {
    ProjectParams& p = p_;
    d.add_options()("profiles", po::value(&p.profiles), "profiles.h5 to read")(
        "out", po::value(&p.out), "projection.h5 to write")(
        "dims", po::value(&p.dims)->default_value(p.dims),
        "output dimensions H (clamped to the number of features, with a warning)")(
        "value-dims", po::value(&p.value_dims)->default_value(p.value_dims),
        "dimensions of H given to the behaviour and value statistics (-1: automatic, "
        "dims/4; 0: one block over all features)")(
        "method", po::value(&p.method)->default_value(p.method),
        "pca (randomized SVD of the centred profiles) | random (very sparse random projection)")(
        "oversampling", po::value(&p.oversampling)->default_value(p.oversampling),
        "pca: extra random directions (rounded up to whole SIMD vectors)")(
        "power-iterations", po::value(&p.power_iterations)->default_value(p.power_iterations),
        "pca: subspace iterations (more = more accurate on flat spectra)")(
        "precision", po::value(&p.precision)->default_value(p.precision),
        "float | double: scalar of the large products");
  }

  void check(const Context& ctx) override {
    p_.seed = ctx.common.seed;
    p_.validate();
  }

  int run(const Context& ctx) override {
    check(ctx);
    const ProjectSummary s = run_project(p_, ctx.comm);
    const ProjectionModel& m = s.model;
    std::ostringstream os;
    os << "wrote " << p_.out << ": " << s.users << " users x " << s.dims << " dims (" << m.method
       << ", from " << s.features << " features)\n";
    os << "  component  singular value  explained variance  cumulative\n";
    double cum = 0;
    char line[128];
    for (Eigen::Index c = 0; c < m.singular_values.size(); ++c) {
      cum += m.explained_variance_ratio[c];
      std::snprintf(line, sizeof line, "  %9lld  %14.6g  %17.4f%%  %9.4f%%\n",
                    static_cast<long long>(c + 1), m.singular_values[c],
                    100 * m.explained_variance_ratio[c], 100 * cum);
      os << line;
    }
    std::snprintf(line, sizeof line, "  total explained variance: %.4f%%", 100 * cum);
    os << line;
    if (ctx.common.verbose && m.method == "pca") {
      const PcaStats& st = m.stats;
      os << "\n  block k = " << st.block << ", products X: " << st.x_products
         << ", X^T: " << st.xt_products << ", Gram allreduces: " << st.gram_allreduces
         << " (shifted " << st.shifted << ")\n  bytes sent per X^T pass: " << st.xt_pass_bytes
         << ", allreduce bytes in total: " << st.total_bytes;
    }
    if (ctx.common.verbose) {
      std::snprintf(line, sizeof line, "\n  seconds: read %.3f, fit %.3f, project %.3f, write %.3f",
                    s.read_s, s.fit_s, s.project_s, s.write_s);
      os << line;
    }
    ctx.say(os.str());
    return 0;
  }

 private:
  ProjectParams p_;
};

}  // namespace

std::unique_ptr<Command> make_project() { return std::make_unique<ProjectCommand>(); }

}  // namespace segrec::cli
