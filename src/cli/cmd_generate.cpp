// segrec generate: a synthetic behaviour log with planted segments.
#include <charconv>
#include <chrono>
#include <cstdio>

#include "command.hpp"
#include "segrec/ingest/generate.hpp"

namespace segrec::cli {
namespace {

// Shortest text that reads back as v ("1.1", not "1.1000000000000001").
std::string shortest(double v) {
  char buf[32];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

class Generate final : public Command {
 public:
  std::string name() const override { return "generate"; }
  std::string summary() const override {
    return "write a synthetic e-commerce event log with planted user segments";
  }
  std::string usage() const override {
    return "example: mpirun -n 4 segrec generate --users 1000000 --events out/events.csv "
           "--truth out/truth.csv --items-out out/items.csv\n"
           "The files are byte-identical for any rank count (randomness is keyed by --seed and "
           "the user index).\n"
           "Events: user_id,item_id,category,event,timestamp,value,price (value: dwell seconds "
           "for a view, quantity for a cart or purchase; price: the item's unit price).";
  }
  void add_options(po::options_description& d) override {
    d.add_options()("users", po::value(&p_.users)->default_value(p_.users), "number of users")(
        "items", po::value(&p_.items)->default_value(p_.items), "number of items")(
        "segments", po::value(&p_.segments)->default_value(p_.segments), "planted segments")(
        "categories", po::value(&p_.categories)->default_value(p_.categories), "item categories")(
        "events-per-user",
        po::value(&p_.events_per_user)
            ->default_value(p_.events_per_user, shortest(p_.events_per_user)),
        "mean events (views, carts, purchases) per user")(
        "zipf", po::value(&p_.zipf)->default_value(p_.zipf, shortest(p_.zipf)),
        "item popularity exponent within a category")(
        "affinity", po::value(&p_.affinity)->default_value(p_.affinity, shortest(p_.affinity)),
        "share of a user's views in its segment's categories")(
        "days", po::value(&p_.days)->default_value(p_.days, shortest(p_.days)),
        "days the timestamps span")(
        "start", po::value(&p_.start)->default_value(p_.start, shortest(p_.start)),
        "first timestamp, unix seconds")(
        "noise", po::value(&p_.noise)->default_value(p_.noise, shortest(p_.noise)),
        "share of rows duplicated (1/2), left without value (1/4) or broken (1/4)")(
        "structure", po::value(&p_.structure)->default_value(p_.structure),
        "what the planted segments differ in: taste (preferred categories and items; "
        "activity, funnel, price tier, quantity and recency drawn per user alike for all "
        "segments), behaviour (activity, funnel depth, price tier, quantity and recency; "
        "every user the same taste), or both")(
        "sequential", po::bool_switch(&p_.sequential),
        "plant order: within a session a view follows the previous view's planted successor "
        "(per segment, item to item) with probability --sequence-strength")(
        "sequence-strength",
        po::value(&p_.sequence_strength)
            ->default_value(p_.sequence_strength, shortest(p_.sequence_strength)),
        "--sequential: share of the views after a session's first that are planted successors")(
        "events", po::value(&p_.events_out), "events CSV to write (required)")(
        "truth", po::value(&p_.truth_out), "user_id,segment CSV to write")(
        "items-out", po::value(&p_.items_out), "item_id,category,name,price CSV to write");
  }

  int run(const Context& ctx) override {
    p_.seed = ctx.common.seed;
    p_.validate();
    const auto t0 = std::chrono::steady_clock::now();
    const GenerateSummary s = generate(p_, ctx.comm);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double mb = static_cast<double>(s.bytes) / 1e6;
    char line[512];
    std::snprintf(line, sizeof line,
                  "generate: %lld users, %lld items, %lld events in %lld rows (%lld duplicated, "
                  "%lld without value, %lld broken) -> %s: %.1f MB in %.2f s (%.0f MB/s)",
                  static_cast<long long>(s.users), static_cast<long long>(s.items),
                  static_cast<long long>(s.events), static_cast<long long>(s.rows),
                  static_cast<long long>(s.duplicates), static_cast<long long>(s.missing_values),
                  static_cast<long long>(s.broken), p_.events_out.c_str(), mb, secs,
                  secs > 0 ? mb / secs : 0.0);
    ctx.say(line);
    return 0;
  }

 private:
  GenerateParams p_;
};

}  // namespace

std::unique_ptr<Command> make_generate() { return std::make_unique<Generate>(); }

}  // namespace segrec::cli
