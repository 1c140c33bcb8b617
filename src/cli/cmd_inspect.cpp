// segrec inspect FILE.h5: what a segrec file holds.
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>

#include "command.hpp"
#include "segrec/core/params.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/io/h5.hpp"

namespace segrec::cli {
namespace {

class Inspect final : public Command {
 public:
  std::string name() const override { return "inspect"; }
  std::string summary() const override { return "summarise any segrec HDF5 file"; }
  std::string usage() const override { return "example: segrec inspect out/dataset.h5"; }
  void add_options(po::options_description& d) override {
    d.add_options()("file", po::value(&file_), "segrec HDF5 file (also positional)")(
        "digest", po::bool_switch(&digest_),
        "print a content digest of every dataset (compare two runs; provenance excluded)");
  }
  std::vector<std::string> positional() const override { return {"file"}; }

  int run(const Context& ctx) override {
    require(!file_.empty(), "file", file_, "give the file to inspect");
    const h5::File f = h5::File::open_any(file_, ctx.comm);
    std::ostringstream os;
    const auto fmt = f.format();
    os << file_ << ": " << fmt.name << " version " << fmt.version << "\n";
    for (const char* a : {"segrec_version", "command_line"})
      if (f.has_attr("/", a)) os << "  " << a << ": " << f.attr_string("/", a) << "\n";
    if (f.has_attr("/", "ranks")) os << "  written by " << f.attr_int("/", "ranks") << " rank(s)\n";
    std::function<void(const std::string&)> walk = [&](const std::string& g) {
      for (const auto& n : f.list(g)) {
        const std::string path = (g == "/" ? "/" : g + "/") + n;
        if (!f.is_dataset(path)) {
          os << "  " << path << "/\n";
          walk(path);
        } else {
          const auto s = f.shape(path);
          os << "  " << path << "  [" << s[0];
          if (s.size() == 2) os << " x " << s[1];
          os << "]";
          if (digest_) os << "  digest " << digest(f.read_bytes(path));
          os << "\n";
        }
      }
    };
    walk("/");
    if (fmt.name == kDatasetFormat.name) {
      os << item_attributes(f);
      os << read_report(f).table();
    }
    ctx.say(os.str());
    return 0;
  }

 private:
  // Which optional item attributes a dataset holds, and for how many items.
  static std::string item_attributes(const h5::File& f) {
    const std::int64_t n = f.attr_int("/", "n_items");
    std::ostringstream os;
    os << "  item attributes:";
    bool any = false;
    if (f.exists("/items/price")) {
      std::int64_t known = 0;
      for (double p : f.read_all<double>("/items/price")) known += !std::isnan(p);
      os << " prices (" << known << " of " << n << " items)";
      any = true;
    }
    if (f.exists("/items/name")) {
      std::int64_t named = 0;
      for (const auto& s : f.read_strings("/items/name", 0, f.shape("/items/name")[0]))
        named += !s.empty();
      os << (any ? "," : "") << " names (" << named << " of " << n << " items)";
      any = true;
    }
    if (f.exists("/items/category")) {
      std::int64_t with = 0;
      for (auto c : f.read_all<std::int32_t>("/items/category")) with += c >= 0;
      os << (any ? "," : "") << " categories (" << with << " of " << n << " items, "
         << f.shape("/categories/names")[0] << " categories)";
      any = true;
    }
    if (!any) os << " none (the log had no price, item-name or category column)";
    os << "\n";
    return os.str();
  }

  // FNV-1a over the bytes, as 16 hex digits.
  static std::string digest(const std::vector<char>& bytes) {
    std::uint64_t h = 1469598103934665603ULL;
    for (char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
  std::string file_;
  bool digest_ = false;
};

}  // namespace

std::unique_ptr<Command> make_inspect() { return std::make_unique<Inspect>(); }

}  // namespace segrec::cli
