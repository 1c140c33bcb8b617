// segrec info: version and build options, for bug reports.
#include <H5public.h>
#include <mpi.h>

#include <Eigen/Core>
#include <boost/version.hpp>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "command.hpp"
#include "segrec/core/blas.hpp"
#include "segrec/core/env.hpp"

namespace segrec::cli {
namespace {

class Info final : public Command {
 public:
  std::string name() const override { return "info"; }
  std::string summary() const override { return "print the version and build options"; }
  void add_options(po::options_description&) override {}
  int run(const Context& ctx) override {
    std::ostringstream os;
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(mpi, &len);
    std::string mpi_s(mpi, static_cast<std::size_t>(len));
    if (auto nl = mpi_s.find_first_of("\r\n,"); nl != std::string::npos) mpi_s.resize(nl);
    os << "segrec " SEGREC_VERSION "\n"
       << "compiler      "
#if defined(__clang__)
       << "clang "
#elif defined(__GNUC__)
       << "gcc "
#endif
       << __VERSION__ << "\n"
       << "build         " << SEGREC_BUILD_FLAGS << "\n"
       << "cpu features  "
#ifdef __AVX512F__
       << "avx512f "
#endif
#ifdef __AVX2__
       << "avx2 "
#endif
#ifdef __FMA__
       << "fma "
#endif
       << "\n"
       << "eigen         " << EIGEN_WORLD_VERSION << "." << EIGEN_MAJOR_VERSION << "."
       << EIGEN_MINOR_VERSION << " (" << Eigen::SimdInstructionSetsInUse() << ")\n"
       << "blas          " << blas::describe() << "\n"
       << "hdf5          " << maj << "." << min << "." << rel
#ifdef H5_HAVE_PARALLEL
       << " (parallel)\n"
#else
       << " (serial)\n"
#endif
       << "boost         " << BOOST_VERSION / 100000 << "." << BOOST_VERSION / 100 % 1000 << "\n"
       << "mpi           " << mpi_s << " (MPI " << SEGREC_MPI_CXX_VERSION << ")\n"
       << "ranks         " << ctx.comm.size() << "\n"
       << "threads/rank  " << env::default_threads() << " (" << env::default_threads_source()
       << "; --threads overrides)\n"
       << "hw threads    " << std::thread::hardware_concurrency() << "\n";
    if (const std::string job = env::job_id(); !job.empty()) os << "slurm job     " << job << "\n";
    ctx.say(os.str());
    return 0;
  }
};

}  // namespace

std::unique_ptr<Command> make_info() { return std::make_unique<Info>(); }

}  // namespace segrec::cli
